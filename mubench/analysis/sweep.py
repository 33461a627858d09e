"""Run one method at several parameter points through the ordinary runner (sensitivity, the
budgeted forget vector): one config per point, planned with `build_plan`, merged, executed.

Each point is an ordinary `[methods.NAME]` override, so its jobs are the same typed, cached
jobs `mubench run --set NAME.FIELD=V` would make: originals, splits and Retrain are shared
by every point, a point already run is read from the store, and a default point is the grid's
own run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..config import ExperimentConfig
from ..store import Store


@dataclasses.dataclass(frozen=True)
class PointResult:
    """The records of one parameter point (one per cell and seed that finished ok)."""

    overrides: dict
    records: list[dict]


def with_method_params(config: ExperimentConfig, method: str, overrides: dict) -> ExperimentConfig:
    """`config` with `overrides` as `[methods.METHOD]` (the default point maker)."""
    return dataclasses.replace(config, method_params={**config.method_params, method: dict(overrides)})


def with_bank_params(config: ExperimentConfig, method: str, overrides: dict) -> ExperimentConfig:
    """`config` with `overrides` as its `[bank]` table (points of the forget-vector bank)."""
    return dataclasses.replace(config, bank={**config.bank, **overrides})


def run_points(config: ExperimentConfig, method: str, points: Sequence[dict],
               progress: bool | None = False, point_config=with_method_params) -> list[PointResult]:
    """Run `method` (and the methods already in `config`, e.g. a baseline) at every point;
    `point_config(config, method, overrides)` makes a point's config."""
    from ..planner import build_plan, merge_plans
    from ..runner import execute

    store = Store(config.out)
    plans, keys = [], []
    for overrides in points:
        plan = build_plan(point_config(config, method, overrides), store)
        plans.append(plan)
        keys.append([j.key for j in plan.evaluations() if j.method == method])
    execute(merge_plans(plans), config, progress=progress)
    out = []
    for overrides, point_keys in zip(points, keys, strict=True):
        records = [store.read_record("method", k) for k in point_keys]
        out.append(PointResult(dict(overrides), [r for r in records if r and r.get("status") == "ok"]))
    return out
