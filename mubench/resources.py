"""Resources: artifacts that a method or metric needs beyond the original model, registered by
the plugin that owns them (the forget-vector bank of mubench/methods/_fv_bank.py; an attack's
models are jobs of the attack instead, mubench/attacks/). The core names none of them: a method lists resource names in `requires`, the planner
asks the resource for its settings and plans one `Resource` job per (original model, settings),
and the worker hands the built artifact to the method as `task.resources[name]`.

A resource declares
- `settings(dataset, overrides, device, precision) -> dict`: everything that determines the
  artifact besides the original model (validated there; plain JSON values). `overrides` is the
  config's table of the same name as the resource's `section` (e.g. `[bank]`), so settings
  meant for one method never silently change a resource;
- `build(ctx) -> (artifact, info)`: the artifact (a dict of tensors, stored and loaded with
  `weights_only=True`) and facts for its record (e.g. its one-time cost in `seconds`);
- `load(artifact, device)`: what the method receives (default: the artifact itself);
- `synthetic(task)`: a stand-in of what `load` returns, shape-correct and seeded, built from a
  task alone, so the contract kit checks a method that requires the resource without building it.

A build function gets what it may use in a `ResourceContext`, tasks included (`ctx.task(scenario)`:
the original's task on the planner's own split), never the store or the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .registry import Registry

RESOURCES = Registry("resource")


@dataclass(frozen=True)
class ResourceContext:
    """What a resource's build function may use (on the worker)."""

    data: Any  # ImageData
    original: Any  # pipeline.OriginalModel (the frozen model and its key)
    seed: int
    device: torch.device
    settings: dict
    task: Callable[..., Any]  # (scenario, precision="auto") → UnlearnTask of this original on that split
    progress: bool | None = False

    @property
    def num_classes(self) -> int:
        return self.data.num_classes


@dataclass(frozen=True)
class Resource:
    name: str
    section: str  # the config table whose values override the settings, e.g. "bank"
    settings: Callable[..., dict]
    build: Callable[[ResourceContext], tuple[dict, dict]]
    load: Callable[[dict, torch.device], Any] | None = None
    version: str = "1"  # bump when the build changes its numbers: it is part of every key
    record_field: str = ""  # the `info` value copied into records of methods using it (e.g. bank_s)
    synthetic: Callable[[Any], Any] | None = None  # task → a stand-in of what `load` returns (contract kit)


def register_resource(name: str, *, section: str, settings, build, load=None, version: str = "1",
                      record_field: str = "", synthetic=None) -> Resource:
    """Register a resource under `name` (a duplicate name is an error naming both sources)."""
    resource = Resource(name, section, settings, build, load, version, record_field, synthetic)
    RESOURCES.add(name, resource, description=(build.__doc__ or "").strip().split("\n")[0])
    return resource
