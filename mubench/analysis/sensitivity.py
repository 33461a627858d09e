"""Sensitivity: the forget vector's β, λ, τ and epoch budget swept around the defaults, the
paper's per-run epoch selection (`select=best`, on a held-out slice of the training data,
never the test set) against mubench's global rule (`select=last`) (issue 16, item 4), and δ
learned with and without the training augmentation (issue 25).

Every point is an ordinary run of the grid's own config with one `[methods.forget_vector]`
override (sweep.run_points), so it is planned, cached and recorded like `mubench run`
jobs; the curves are Avg. Gap (to each seed's Retrain) and RTE, mean over seeds.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

from ..config import ExecutionConfig, ExperimentConfig
from ..errors import MubenchError
from ..presets import preset_for
from ..runs import run_configs
from .sweep import run_points

METHOD = "forget_vector"
FACTORS = {"beta": (0.5, 2.0), "lam": (0.1, 10.0), "tau": (0.5, 2.0), "epochs": (0.25, 0.5)}
# In this process, one thread: the points are small forget-vector jobs, and worker start-up
# plus a shared machine's load cost more than they gain (measured: a loky sweep on a loaded
# 2-core machine finished 1 job in 10 min).
SWEEP_EXECUTION = ExecutionConfig(backend="sequential", jobs=1, threads_per_worker=1)


def default_params(config: ExperimentConfig, dataset: str, model: str, scenario_kind: str) -> dict:
    """The forget vector's values in a cell of the grid: preset, the tuned settings the grid
    used (mubench/tuned.py), β by scenario kind — the point the sweep is centred on."""
    # Imported here, so registered, in a fresh `mubench analyze` process too.
    from ..methods.forget_vector import ForgetVector
    from ..planner import resolve_params
    from ..tuned import tuned_for, tuned_layer

    tuned = tuned_for(config.tuned, dataset, config.train_subset, model)
    values, _ = tuned_layer(tuned, METHOD, scenario_kind, {})
    params = resolve_params(METHOD, dataset, scenario_kind, {}, values)
    return dataclasses.asdict(ForgetVector.resolved(params, scenario_kind))


SWEPT = (*FACTORS, "select", "augment")


def sweep_points(defaults: dict, swept: tuple[str, ...] = SWEPT) -> list[tuple[str, object, dict]]:
    """(parameter, value, overrides): the defaults once, each parameter × its factors, select=best."""
    points = [("default", None, {})]
    for name, factors in FACTORS.items():
        for f in factors if name in swept else ():
            value = max(1, int(round(defaults[name] * f))) if name == "epochs" else defaults[name] * f
            points.append((name, value, {name: value}))
    if "select" in swept:
        points.append(("select", "best", {"select": "best"}))
    if "augment" in swept:  # learning δ on augmented batches or not (issue 25): the other setting
        points.append(("augment", not defaults["augment"], {"augment": not defaults["augment"]}))
    return points


def _grid_cells(root: str | Path, scenarios: tuple[str, ...]):
    """(run config, dataset, scenario) of every run written into `root` (mubench/runs.py)."""
    configs = run_configs(root)
    if not configs:
        raise MubenchError(f"no run config under {str(Path(root) / 'runs')!r}: the sweep re-runs the grid a "
                           f"`python -m mubench run --out {root}` wrote there; run the grid first")
    for config in configs:
        for dataset in config.datasets:
            for scenario in scenarios or config.scenarios:
                yield config, dataset, scenario


def analyze_sensitivity(root: str | Path, swept: tuple[str, ...] = SWEPT, scenarios: tuple[str, ...] = (),
                        progress: bool | None = False) -> list[dict]:
    """One row per (dataset, scenario, parameter, value): Avg. Gap and RTE, mean over seeds.
    swept: parameters to sweep (default all); scenarios: the grid's scenarios to sweep (default all)."""
    rows, seen = [], set()
    for config, dataset, scenario in _grid_cells(root, scenarios):
        if (dataset, scenario) in seen:  # two runs of one grid into the root: sweep it once
            continue
        seen.add((dataset, scenario))
        kind = scenario.split(":")[0]
        model = (config.models or (preset_for(dataset).model,))[0]
        defaults = default_params(config, dataset, model, kind)
        points = sweep_points(defaults, swept)
        cell = dataclasses.replace(config, datasets=(dataset,), scenarios=(scenario,), methods=(METHOD,),
                                   execution=SWEEP_EXECUTION)
        results = run_points(cell, METHOD, [o for _, _, o in points], progress=progress)
        for (name, value, _), res in zip(points, results, strict=True):
            if not res.records:
                continue
            shown = {"default": "—", "select": value}.get(name, value)
            rows.append({"dataset": dataset, "scenario": scenario, "param": name, "value": shown,
                         "default": {"default": "—", "select": "last"}.get(name, defaults.get(name)),
                         "avg_gap": statistics.fmean(r["avg_gap"] for r in res.records),
                         "rte_s": statistics.fmean(r["rte_s"] for r in res.records),
                         "seeds": len(res.records)})
    return rows
