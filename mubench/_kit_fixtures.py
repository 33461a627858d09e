"""What the contract kit runs its checks on, so plugin authors need no fixtures of their own: a
tiny digits task, synthetic resources a method may require, the method's quick Params, a
synthetic MetricContext (no model, no data), and the fingerprints the checks compare before and
after a run. Public through mubench.testing.

Speed: runs use the class's `test_params` (small overrides, e.g. one epoch); a method without
them runs with `epochs=1` when it has an `epochs` field. Methods that declare
`requires = ("fv_bank",)` get a synthetic bank (K small random vectors of the input's shape),
enough to exercise the contract; other unknown requirements must be supplied in
`task.resources`, else `missing_resources` names them (our tests skip such methods).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import warnings

import torch

from .unlearning import UnlearnTask

TINY_EPOCHS = 8  # the kit's own original model: enough for digits to reach ~97% train accuracy


# ---------------------------------------------------------------------------------------------
# A tiny task (for plugin authors without the test suite's fixtures)


@functools.lru_cache(maxsize=2)
def _tiny_original(seed: int):
    from mubench.pipeline import cached_dataset, get_original
    from mubench.presets import preset_for

    data = cached_dataset("digits")
    recipe = dataclasses.replace(preset_for("digits").recipe, epochs=TINY_EPOCHS, precision="fp32")
    with warnings.catch_warnings():  # short on purpose: the contract needs a model, not a fit one
        warnings.filterwarnings("ignore", message=".*under-fits its training set")
        original = get_original(None, data, "small_cnn", recipe, seed, torch.device("cpu"), progress=False)
    return data, recipe, original.model


def tiny_task(seed: int = 0, scenario: str = "class:0", resources: dict | None = None) -> UnlearnTask:
    """A digits task on CPU with a small CNN trained for a few epochs (seconds, cached)."""
    from mubench.pipeline import build_task, get_split

    data, recipe, original = _tiny_original(seed)
    split = get_split(None, data, scenario, seed)
    return build_task(data, split, original, "small_cnn", recipe, seed, torch.device("cpu"),
                      precision="fp32", resources=resources, progress=False)


def _synthetic(name: str):
    """The resource's own stand-in builder (`register_resource(..., synthetic=fn)`), or None."""
    from mubench.resources import RESOURCES

    return RESOURCES.get(name).synthetic if name in RESOURCES else None


def missing_resources(method_cls, task: UnlearnTask) -> list[str]:
    """Required resources the task lacks and that bring no synthetic stand-in."""
    return [r for r in getattr(method_cls, "requires", ()) if r not in task.resources and _synthetic(r) is None]


def with_resources(method_cls, task: UnlearnTask) -> UnlearnTask:
    """The task with the method's required resources, synthesised by each resource's stand-in."""
    resources = dict(task.resources)
    for r in getattr(method_cls, "requires", ()):
        if r not in resources and _synthetic(r) is not None:
            resources[r] = _synthetic(r)(task)
    return dataclasses.replace(task, resources=resources)


def params_for_tests(method_cls, overrides: dict | None = None):
    """The method's Params with its `test_params` (or epochs=1) and then `overrides` applied."""
    base = dict(getattr(method_cls, "test_params", {}) or {})
    if not base and "epochs" in {f.name for f in dataclasses.fields(method_cls.Params)}:
        base = {"epochs": 1}
    return method_cls.params_from({**base, **(overrides or {})})


# ---------------------------------------------------------------------------------------------
# Metrics: a synthetic context (no model, no data)


def synthetic_outputs(seed: int = 0, num_classes: int = 10, n: int = 120):
    """Seeded logits that favour the true label (accuracies strictly between 0 and 100) for a
    class-wise split: forget and test_forgotten are class 0, retain and test the other classes."""
    from .outputs import PartOutputs, SplitOutputs

    g = torch.Generator().manual_seed(seed)

    def part(labels: torch.Tensor) -> PartOutputs:
        logits = torch.randn(len(labels), num_classes, generator=g)
        logits[torch.arange(len(labels)), labels] += 2.0
        return PartOutputs(logits, labels)

    others = lambda m: 1 + torch.arange(m) % (num_classes - 1)  # noqa: E731
    zeros = lambda m: torch.zeros(m, dtype=torch.int64)  # noqa: E731
    return SplitOutputs(forget=part(zeros(n // 4)), retain=part(others(n)), test=part(others(n // 2)),
                        test_forgotten=part(zeros(n // 4)))


def synthetic_context(seed: int = 0):
    """A MetricContext with every field the kit knows filled: Retrain's default metrics and
    outputs as the reference, bypass and noise controls, a storage cost."""
    import types

    from .metrics import METRICS, MetricContext, applies, compute_metrics

    ref_outputs = synthetic_outputs(seed + 1)
    plain = MetricContext(outputs=ref_outputs)
    defaults = [e.name for e in METRICS.entries() if e.meta.get("default", True) and applies(e.name, plain)]
    bypass, noise = synthetic_outputs(seed + 2), synthetic_outputs(seed + 3)
    known = {"reference": compute_metrics(plain, defaults), "reference_outputs": ref_outputs,
             "bypass": bypass, "noise": noise, "controls": types.SimpleNamespace(bypass=bypass, noise=noise),
             "storage": (1000, 4000)}
    fields = {f.name for f in dataclasses.fields(MetricContext)}
    return MetricContext(outputs=synthetic_outputs(seed), **{k: v for k, v in known.items() if k in fields})


# ---------------------------------------------------------------------------------------------
# Fingerprints (to catch in-place edits)


def state_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def tensors_hash(obj) -> str:
    """A hash of every tensor reachable through dataclass fields (to catch in-place edits)."""
    h = hashlib.sha256()

    def visit(o):
        if isinstance(o, torch.Tensor):
            h.update(o.detach().cpu().contiguous().numpy().tobytes())
        elif dataclasses.is_dataclass(o) and not isinstance(o, type):
            for f in dataclasses.fields(o):
                visit(getattr(o, f.name))

    visit(obj)
    return h.hexdigest()
