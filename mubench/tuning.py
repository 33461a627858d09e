"""`mubench tune`: the references' per-scenario hyper-parameter search (SPEC §3), as runner jobs.

Every candidate of a method's grid becomes an ordinary config whose per-scenario table
([methods.NAME."SCENARIO"]) holds the candidate's values; `runner.build_plan` expands each into
jobs and the plans are merged by job key, so candidates are cached, run in parallel (--jobs),
resume after a kill and record their failures exactly like `mubench run`'s jobs.

Selection, per (dataset, model, scenario) and method: the candidate with the smallest mean Avg.
Gap to Retrain over the tuning seeds (the references' criterion). A candidate with a failed or
missing seed cannot win. Ties go to the default value (what `run` uses untuned: Params <
preset < config), then to the candidate listed first. Avg. Gap includes TA, so the criterion
reads the test set as the references' search does; tuning on seeds disjoint from the reporting
seeds (100, 101 by default) keeps the reported runs (their splits, originals, Retrains and
method runs) out of the selection, not the test images.

Outputs, under <out>/tune/: `tune.md` (every candidate, mean ± std, the winner marked),
`tune.json` (the same as data, with job keys) and one `tuned-<dataset>-<model>.toml` per
(dataset, model) that `mubench run --config` reads: the input config with the chosen values as
per-scenario tables, listed in [tuned] so records and reports say they are tuned.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .aggregate import aggregate
from .config import ExperimentConfig, TuneConfig, method_overrides
from .errors import ConfigError
from .params import apply_overrides
from .runner import Plan, build_plan, merge_plans, resolve_params
from .scenarios import parse_scenario
from .store import Store

DEFAULT_FACTORS = (1 / 3, 1.0, 3.0)  # no grid given: lr × these, around the default lr
METRICS = ("avg_gap", "ua", "ra", "ta", "mia_efficacy")
LABELS = {"avg_gap": "Avg. Gap", "ua": "UA", "ra": "RA", "ta": "TA", "mia_efficacy": "MIA-Efficacy"}
CRITERION = ("smallest mean Avg. Gap to Retrain over the tuning seeds; ties → the default value, "
             "then the first candidate listed; a candidate with a failed seed cannot win")


@dataclass(frozen=True)
class Candidate:
    overrides: dict  # field → value this candidate sets (typed)
    default: bool  # equals what `run` uses untuned in this cell

    @property
    def label(self) -> str:
        text = ", ".join(f"{k}={_fmt(v)}" for k, v in self.overrides.items())
        return f"{text} (default)" if self.default else text


@dataclass
class Cell:
    """One selection: a method in one (dataset, model, scenario), its candidates and their jobs."""

    dataset: str
    model: str
    scenario: str
    method: str
    candidates: list[Candidate]
    keys: list[dict[int, str]] = field(default_factory=list)  # per candidate: seed → job key
    retrain: dict[int, str] = field(default_factory=dict)  # seed → Retrain key


@dataclass
class TunePlan:
    config: ExperimentConfig  # the tuning config: tuning seeds, out = <out>/tune
    plan: Plan  # every candidate's jobs, merged by key
    cells: list[Cell]
    grids: dict[str, str]  # method → the grid searched, in words


@dataclass
class Outcome:
    cell: Cell
    stats: list[dict]  # per candidate: metric → (mean, std), plus n_ok / n_failed / n
    retrain: dict
    winner: int | None  # index into cell.candidates; None when no candidate has every seed ok


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# -- the grid ---------------------------------------------------------------------------------
def parse_grid_options(items: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """`--grid finetune.lr=0.01,0.03` → {"finetune": {"lr": ["0.01", "0.03"]}} (a later flag for
    the same field replaces an earlier one, as --set does)."""
    out: dict[str, dict[str, list[str]]] = {}
    for item in items:
        lhs, eq, rhs = item.partition("=")
        method, dot, name = lhs.strip().partition(".")
        values = [v.strip() for v in rhs.split(",") if v.strip()]
        if not (eq and dot and method and name.strip() and values):
            raise ConfigError(f"--grid {item!r}: expected METHOD.FIELD=V1,V2,... (e.g. finetune.lr=0.01,0.03,0.1)")
        out.setdefault(method, {})[name.strip()] = values
    return out


def check_grid(config: ExperimentConfig, cli_grid: dict, methods: Sequence[str], sets: dict) -> dict:
    """The config's [tune.grid] with --grid on top, each value converted and validated by the
    method's typed Params exactly as --set values are: method → {field: (values, ...)}."""
    from .unlearning import METHODS

    merged = {m: {k: (v, f"{config.source} [tune.grid.{m}]") for k, v in f.items()} for m, f in config.tune.grid.items()}
    for m, fields in cli_grid.items():
        merged.setdefault(m, {}).update({k: (v, f"--grid {m}") for k, v in fields.items()})
    grid = {}
    for method, fields in merged.items():
        cls = METHODS.get(method)  # an unknown name raises with a suggestion
        owner = next(iter(fields.values()))[1]
        if method == "retrain":
            raise ConfigError(f"{owner}: Retrain is the reference of every gap and is never tuned")
        if method not in methods:
            raise ConfigError(f"{owner}: {method!r} is not among the methods to tune "
                              f"({', '.join(methods)}); add it to --methods")
        typed = {}
        for name, (values, owner) in fields.items():
            converted = [getattr(apply_overrides(cls.Params(), {name: v}, owner), name) for v in values]
            twice = [v for i, v in enumerate(converted) if v in converted[:i]]
            if twice:
                raise ConfigError(f"{owner}: {name!r} lists {_fmt(twice[0])} twice; give each candidate once")
            if name in sets.get(method, {}):
                raise ConfigError(f"{owner}: {name!r} is also fixed with --set {method}.{name}; "
                                  "search it or fix it, not both")
            typed[name] = tuple(converted)
        grid[method] = typed
    return grid


def cell_candidates(config: ExperimentConfig, method: str, dataset: str, scenario, grid: dict | None) -> list[Candidate]:
    """The candidates of one method in one scenario: the grid's product, or (no grid) the cell's
    default lr × 1/3, 1, 3 (rounded to 3 significant digits; the default itself exactly)."""
    user, _ = method_overrides(config, method, scenario.spec)
    base = resolve_params(method, dataset, scenario.kind, user)
    if grid:
        names, combos = list(grid), itertools.product(*grid.values())
    else:
        if not hasattr(base, "lr"):
            raise ConfigError(f"method {method!r} has no 'lr' to search by default; give its grid with "
                              f"--grid {method}.FIELD=V1,V2 or a [tune.grid.{method}] table")
        names = ["lr"]
        combos = [(base.lr if f == 1 else float(f"{base.lr * f:.3g}"),) for f in DEFAULT_FACTORS]
    out = []
    for values in combos:
        overrides = dict(zip(names, values, strict=True))
        out.append(Candidate(overrides, all(getattr(base, k) == v for k, v in overrides.items())))
    return out


# -- planning: one ordinary config per candidate, merged into one plan ------------------------
def plan_tune(config: ExperimentConfig, seeds: Sequence[int], cli_grid: dict, sets: dict) -> TunePlan:
    """Validate the search and expand every candidate into runner jobs (nothing runs here)."""
    from .plugins import load_methods
    from .unlearning import METHODS

    load_methods(config.plugins, strict_plugins=True)
    methods = [m for m in METHODS.select(config.methods) if m != "retrain"]
    if not methods:
        raise ConfigError("nothing to tune: select at least one method besides retrain with --methods")
    grid = check_grid(config, cli_grid, methods, sets)
    no_lr = [m for m in methods if m not in grid and "lr" not in {f.name for f in dataclasses.fields(METHODS.get(m).Params)}]
    skipped = {m: f"not searched: no 'lr' to search by default and no grid given (--grid {m}.FIELD=V1,V2)" for m in no_lr}
    methods = [m for m in methods if m not in skipped]
    if not methods:
        raise ConfigError(f"nothing to tune: {', '.join(skipped)} {'has' if len(skipped) == 1 else 'have'} no 'lr' "
                          "to search by default; give a grid with --grid METHOD.FIELD=V1,V2")
    root = Path(config.out) / "tune"
    base = dataclasses.replace(config, seeds=tuple(seeds), out=str(root), tune=TuneConfig())
    store = Store(root)
    scenarios = [parse_scenario(s) for s in config.scenarios]
    plans, cells = [], {}
    for dataset in config.datasets:
        for method in methods:
            per_scenario = {sc.spec: cell_candidates(base, method, dataset, sc, grid.get(method)) for sc in scenarios}
            for i in range(len(next(iter(per_scenario.values())))):
                tables = {s: dict(t) for s, t in base.scenario_params.get(method, {}).items()}
                for spec, cands in per_scenario.items():
                    tables[spec] = {**tables.get(spec, {}), **cands[i].overrides}
                candidate_config = dataclasses.replace(
                    base, datasets=(dataset,), methods=(method,),
                    scenario_params={**base.scenario_params, method: tables},
                    tuned={m: v for m, v in base.tuned.items() if m != method})  # candidates are not tuned
                plan = build_plan(candidate_config, store)
                plans.append(plan)
                for job in plan.evaluations():
                    if job.method == "retrain":
                        continue
                    cell = cells.setdefault((dataset, job.model, job.scenario, method), Cell(
                        dataset, job.model, job.scenario, method, per_scenario[job.scenario]))
                    while len(cell.keys) <= i:
                        cell.keys.append({})
                    cell.keys[i][job.seed] = job.key
                    cell.retrain[job.seed] = job.retrain_key
    words = {m: ("; ".join(f"{k} ∈ {{{', '.join(_fmt(v) for v in vals)}}}" for k, vals in grid[m].items())
                 if m in grid else "no grid given: lr × {1/3, 1, 3} around the default lr of each scenario")
             for m in methods} | skipped
    return TunePlan(base, merge_plans(plans), list(cells.values()), words)


# -- selection --------------------------------------------------------------------------------
def _cell_stats(store: Store, groups: list[dict[int, str]]) -> list[dict]:
    """Per group of record keys (one per seed): job counts and (mean, std) of each of METRICS,
    from the one aggregation the reports use, with Avg. Gap recomputed against the Retrain each
    record names (never the value stored at job time). The last group is the cell's Retrain."""
    import pandas as pd

    from .report import records_frame, with_gaps

    rows, placeholders, group_of = [], [], {}
    for i, keys in enumerate(groups):
        for key in keys.values():
            record = store.read_record("method", key)
            if record is None:
                placeholders.append({"group": i, "status": "missing"})
            else:
                rows.append(record)
                group_of[key] = i
    frame = with_gaps(records_frame(rows)) if rows else pd.DataFrame(columns=["key", "status"])
    frame = frame.assign(group=frame["key"].map(group_of))
    frame = pd.concat([frame, pd.DataFrame(placeholders, columns=["group", "status"])], ignore_index=True)
    stats = aggregate(frame, ["group"], METRICS)
    out = []
    for i in range(len(groups)):
        part = stats[stats["group"].eq(i)].set_index("metric")
        head = part.iloc[0] if len(part) else None
        out.append({"n": len(groups[i]), "n_ok": int(head.n_ok) if head is not None else 0,
                    "n_failed": int(head.n_failed) if head is not None else 0,
                    **{m: ((float(part.loc[m, "mean"]), float(part.loc[m, "std"])) if m in part.index
                           else (math.nan, math.nan)) for m in METRICS}})
    return out


def select(tp: TunePlan) -> list[Outcome]:
    """Read every candidate's records and choose per cell (see the module docstring)."""
    store = Store(tp.config.out)
    outcomes = []
    for cell in tp.cells:
        *stats, retrain = _cell_stats(store, [*cell.keys, cell.retrain])
        eligible = [i for i, s in enumerate(stats) if s["n_ok"] == s["n"] and not math.isnan(s["avg_gap"][0])]
        winner = min(eligible, key=lambda i: (round(stats[i]["avg_gap"][0], 9), not cell.candidates[i].default, i),
                     default=None)
        outcomes.append(Outcome(cell, stats, retrain, winner))
    return outcomes


def _edge_note(outcome: Outcome) -> str | None:
    """Say when the winner sits at the end of a numeric range of 3+ values: look further out."""
    if outcome.winner is None:
        return None
    chosen = outcome.cell.candidates[outcome.winner].overrides
    for name, value in chosen.items():
        seen = sorted({c.overrides[name] for c in outcome.cell.candidates})
        if len(seen) >= 3 and isinstance(value, (int, float)) and value in (seen[0], seen[-1]):
            end = "smallest" if value == seen[0] else "largest"
            return f"the chosen {name}={_fmt(value)} is the {end} value searched: the best may lie beyond it"
    return None

