"""`mubench tune`: the fair search of SPEC §3 ("Hyper-parameter selection"), as runner jobs.

Equal budget: per (dataset, model, scenario kind) every method gets `budget` candidates (8 by
default), drawn from the search space its Params declare (`SEARCH`, mubench/search.py) by a
Latin hypercube seeded with the method and kind; `--grid` replaces a method's draw with explicit
values (the outputs then say the budgets differ). Every candidate becomes an ordinary config
whose per-scenario tables hold its values; `build_plan` expands each into jobs and the plans
merge by key, so candidates are cached, parallel, resumable and failure-recording like `run`.

Never the reported numbers: tuning cells run on the tuning seeds (100-102; `tune` refuses
reporting seeds among them) and, under the default `heldout` protocol, on the dataset's tuning
view (`data.hold_out_validation`): a stratified 10% of the training set is the test split, and
originals and Retrains are trained without it, so the test set is never read. `--protocol test`
is the references' protocol (select on the test set), and every output says which ran.

Stable, not lucky: a candidate's score is the mean + std of its Avg. Gaps to Retrain over the
scenarios of the kind × tuning seeds (recomputed against each record's Retrain by the one
aggregation reports use); `--criterion mean` is the references' criterion. Ties go to the
candidate drawn first; a candidate with a failed or missing run cannot win.

Never on an extrapolation: where the SVC's MIA-Efficacy is an extrapolation (`mia_extrapolates`) on
any tuning run of a cell, its candidates' or its Retrain's, the whole cell is scored on the Avg.
Gap without the MIA term (UA, RA, TA), so a 0-or-100 flip of the SVC cannot pick the winner; every
output names the term used (`selected_on`). The screen is not used in its place: tuning cells run
the SVC alone (its reference models would be trained for nothing else).

Live candidates (issue 25: is the equal budget equal in practice?): every tuning cell also
evaluates the untouched original (the `original` calibration row, no training, keyed like any
Evaluate), and a candidate is *live* when its mean UA over the tuning runs lies within half of the
original's UA distance to Retrain (|UA − UA_retrain| ≤ ½·|UA_original − UA_retrain|: nearer Retrain
than doing nothing) and its mean RA is at most 10 points below the original's. Where the
original's mean UA is within 2 points of Retrain's, UA cannot tell forgetting from not forgetting
and the cell's count is n/a (`live_candidate`). Nothing selects on it.

Outputs, under <out>/tune/: `tune.md` (every candidate, both criteria, the winner marked),
`tune.json` (the same as data, with job keys) and one tuned settings file
`tuned-<dataset>-<model>.toml` per (dataset, model) (format: mubench/tuned.py), which
`mubench run --tuned FILE` reads; `--write PATH` writes it there too (how the shipped files in
mubench/tuned/ are made).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .aggregate import aggregate
from .config import ExperimentConfig, TuneConfig
from .errors import ConfigError
from .params import apply_overrides
from .runner import Plan, build_plan, merge_plans
from .scenarios import Scenario, class_permutation, entry_kind, expand_scenarios, forgotten_classes
from .search import describe, draw, search_space
from .store import Store, stable_hash
from .validate import num_classes

ORIGINAL = "original"  # the calibration row every tuning cell evaluates (mubench/methods/original.py)
METRICS = ("avg_gap", "ua", "ra", "ta", "mia_efficacy")
FLAGGED_MIA_GAP = "avg_gap_no_mia"  # the gap a cell is scored on where its MIA term is an extrapolation
LABELS = {"avg_gap": "Avg. Gap", "ua": "UA", "ra": "RA", "ta": "TA", "mia_efficacy": "MIA-Efficacy"}
# the live-candidate rule (`live_candidate`; docs/tuning.md "Outputs")
LIVE_UA_SHARE = 0.5  # a live candidate's UA is within this share of the original's UA distance to Retrain's
LIVE_MIN_UA_DISTANCE = 2.0  # points; an original nearer Retrain's UA than this leaves UA nothing to show: n/a
LIVE_RA_DROP = 10.0  # points; a live candidate's mean RA is at most this far below the original's
LIVE_WORDS = (f"live = mean UA within {LIVE_UA_SHARE:g} × |UA_original − UA_retrain| of Retrain's (nearer "
              f"Retrain than doing nothing) and mean RA at most {LIVE_RA_DROP:g} points below the original's; "
              f"n/a where the original's mean UA is within {LIVE_MIN_UA_DISTANCE:g} points of Retrain's")
CRITERION_WORDS = {
    "mean+std": "the smallest mean + std of the Avg. Gap to Retrain over the tuning seeds (a setting that "
                "flips between forgetting and not across seeds pays for its spread)",
    "mean": "the smallest mean Avg. Gap to Retrain over the tuning seeds (the references' criterion)",
}
PROTOCOL_WORDS = {
    "heldout": "selection on a stratified {pct} validation split held out of the training set, which takes the "
               "test set's role (TA, MIA non-members) in tuning cells whose originals and Retrains never saw "
               "it; the test set is not read",
    "test": "selection on the test set (the references' protocol): TA and the MIA's non-members of tuning "
            "cells are the test images that reports also use",
}


@dataclass(frozen=True)
class Candidate:
    overrides: dict  # field → value this candidate sets (typed)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.overrides.items())


@dataclass
class Cell:
    """One selection: a method in one (dataset, model, scenario kind), its candidates and jobs."""

    dataset: str
    model: str
    kind: str
    method: str
    candidates: list[Candidate]
    scenarios: list[str] = field(default_factory=list)  # the kind's scenarios searched on
    keys: list[dict] = field(default_factory=list)  # per candidate: (scenario, seed) → job key
    retrain: dict = field(default_factory=dict)  # (scenario, seed) → Retrain key
    original: dict = field(default_factory=dict)  # (scenario, seed) → the untouched original's Evaluate key


@dataclass
class TunePlan:
    config: ExperimentConfig  # the tuning config: tuning seeds, tuning data view, out = <out>/tune
    plan: Plan  # every candidate's jobs, merged by key
    cells: list[Cell]
    spaces: dict[str, str]  # method → what was searched, in words
    search: TuneConfig  # budget, protocol, validation, criterion, seeds

    @property
    def equal_budget(self) -> bool:
        return all(len(c.candidates) == self.search.budget for c in self.cells)


@dataclass
class Outcome:
    cell: Cell
    stats: list[dict]  # per candidate: metric → (mean, std), the scores, n_ok / n_failed / n
    retrain: dict
    winner: int | None  # index into cell.candidates; None when no candidate has every run ok
    selected_on: str = "avg_gap"  # or FLAGGED_MIA_GAP where the cell's MIA term extrapolates
    original: dict = field(default_factory=dict)  # the untouched original's stats, like `retrain`
    live: list = field(default_factory=list)  # per candidate: live_candidate(...) (True, False or None)

    @property
    def live_count(self) -> int | None:
        """How many candidates are live; None where the rule cannot tell (see live_candidate)."""
        return None if any(v is None for v in self.live) else sum(self.live)


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def protocol_words(search: TuneConfig) -> str:
    return PROTOCOL_WORDS[search.protocol].format(pct=f"{search.validation:.0%}")


# -- the candidates ----------------------------------------------------------------------------
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


def draw_seed(method: str, kind: str) -> int:
    """The sampler's seed: fixed per (method, kind), so a rerun draws the same candidates."""
    return int(stable_hash({"tune-draw": method, "kind": kind})[:8], 16)


def kind_candidates(method: str, kind: str, budget: int, grid: dict | None, sets: dict) -> list[Candidate]:
    """The candidates of one method for one scenario kind: the explicit grid's product, or
    `budget` draws from the method's search space (fields fixed with --set are left out)."""
    from .unlearning import METHODS

    if grid:
        names = list(grid)
        return [Candidate(dict(zip(names, values, strict=True))) for values in itertools.product(*grid.values())]
    space = {k: v for k, v in search_space(METHODS.get(method).Params).items() if k not in sets}
    return [Candidate(values) for values in draw(space, budget, draw_seed(method, kind))]


def tuning_config(config: ExperimentConfig, search: TuneConfig) -> ExperimentConfig:
    """The config every tuning cell runs under: tuning seeds, the tuning view of the data
    (heldout protocol), no tuned settings underneath, its own results root, and the SVC alone
    (selection reads the Avg. Gap; the other attacks' models would be trained for nothing), and no
    calibration row but the untouched original (nothing selects on it; the live-candidate count
    reads its UA and RA, at the cost of one evaluation per scenario and seed, no training)."""
    return dataclasses.replace(
        config, seeds=tuple(search.seeds), out=str(Path(config.out) / "tune"), tune=TuneConfig(), tuned="none",
        calibration=(ORIGINAL,),
        validation=search.validation if search.protocol == "heldout" else 0.0,
        evaluation=dataclasses.replace(config.evaluation, attacks=("svc",), preset_attacks=False))


# -- planning: one ordinary config per candidate, merged into one plan ------------------------
def _methods_to_tune(config: ExperimentConfig, grid: dict, sets: dict) -> tuple[list[str], dict[str, str]]:
    from .unlearning import METHODS, selectable_methods

    methods = [m for m in selectable_methods(config.methods) if m != "retrain"]
    if not methods:
        raise ConfigError("nothing to tune: select at least one method besides retrain with --methods")
    skipped = {m: "not searched: its Params declare no SEARCH space and no grid was given "
                  f"(--grid {m}.FIELD=V1,V2)" for m in methods
               if m not in grid and not set(search_space(METHODS.get(m).Params)) - set(sets.get(m, {}))}
    kept = [m for m in methods if m not in skipped]
    if not kept:
        raise ConfigError(f"nothing to tune: {', '.join(skipped)} declare(s) no search space; give a grid "
                          "with --grid METHOD.FIELD=V1,V2")
    return kept, skipped


def plan_tune(config: ExperimentConfig, search: TuneConfig, cli_grid: dict, sets: dict) -> TunePlan:
    """Validate the search and expand every candidate into runner jobs (nothing runs here)."""
    from .plugins import load_plugins
    from .unlearning import METHODS, selectable_methods

    load_plugins(config.plugins, strict_plugins=True)
    overlap = sorted(set(search.seeds) & set(config.seeds))
    if overlap:
        raise ConfigError(f"tuning seeds {', '.join(map(str, overlap))} are also reporting seeds; selection must "
                          "never see reported runs (SPEC §3): choose --seeds disjoint from the config's seeds")
    grid = check_grid(config, cli_grid, [m for m in selectable_methods(config.methods) if m != "retrain"], sets)
    methods, skipped = _methods_to_tune(config, grid, sets)
    base = tuning_config(config, search)
    store = Store(base.out)
    if "sequential" in {entry_kind(s) for s in search.scenarios}:  # a chain's steps run with their request kind's settings
        raise ConfigError("mubench tune does not search on sequential chains; tune on their requests' kind "
                          "(class:C or random:P scenarios): every step of a chain runs with that kind's settings")
    plans, cells, originals = [], {}, {}
    for dataset in config.datasets:
        # families (class:all, random:1+10+50) by their members; the class count is the dataset's
        scenarios = tuning_scenarios(config.scenarios, search.scenarios, num_classes(dataset, config))
        kinds = list(dict.fromkeys(sc.kind for sc in scenarios))
        base = dataclasses.replace(base, scenarios=tuple(sc.spec for sc in scenarios))
        for method in methods:
            per_kind = {k: kind_candidates(method, k, search.budget, grid.get(method), sets.get(method, {}))
                        for k in kinds}
            for i in range(max(len(c) for c in per_kind.values())):
                tables = {s: dict(t) for s, t in base.scenario_params.get(method, {}).items()}
                for sc in scenarios:
                    tables[sc.spec] = {**tables.get(sc.spec, {}), **per_kind[sc.kind][i].overrides}
                candidate_config = dataclasses.replace(
                    base, datasets=(dataset,), methods=(method,),
                    scenario_params={**base.scenario_params, method: tables})
                plan = build_plan(candidate_config, store)
                plans.append(plan)
                for job in plan.evaluations():
                    if job.method == ORIGINAL:
                        originals[(dataset, job.model, job.scenario, job.seed)] = job.key
                    if job.method in ("retrain", ORIGINAL):
                        continue
                    kind = job.scenario.split(":")[0]
                    cell = cells.setdefault((dataset, job.model, kind, method), Cell(
                        dataset, job.model, kind, method, per_kind[kind]))
                    if job.scenario not in cell.scenarios:
                        cell.scenarios.append(job.scenario)
                    while len(cell.keys) <= i:
                        cell.keys.append({})
                    cell.keys[i][(job.scenario, job.seed)] = job.key
                    cell.retrain[(job.scenario, job.seed)] = job.retrain_key
    for cell in cells.values():
        cell.original = {run: originals[(cell.dataset, cell.model, *run)] for run in cell.retrain}
    spaces = {m: (("explicit grid: " + "; ".join(f"{k} ∈ {{{', '.join(_fmt(v) for v in vals)}}}"
                                               for k, vals in grid[m].items())) if m in grid else
                  f"{search.budget} draws from " + describe({k: v for k, v in search_space(METHODS.get(m).Params).items()
                                                             if k not in sets.get(m, {})}))
              for m in methods} | skipped
    return TunePlan(base, merge_plans(plans), list(cells.values()), spaces, search)


def tuning_scenarios(reported: Sequence[str], given: Sequence[str], n_classes: int) -> list[Scenario]:
    """The forget sets a search selects on, on a dataset of `n_classes` classes (issue 25: a
    selection that must transfer to forget sets it never saw).

    `given` ([tune] scenarios, `--tune-scenarios`) is used as it is, families by their members, but
    no tuning forget set may forget a class that a reported scenario (`reported`, the config's
    scenarios) forgets: that would select on the reported forget set. Empty `given`: one tuning
    forget set per reported one (while classes last, at least one per kind), the same kind and
    size, its classes taken in turn from the classes no reported scenario forgets, in the seeded
    order of `class:sample` (so reported `class:rest:K` tunes on `class:sample:K`, or on the first
    C − K of it when K > C − K). Random and subset forget sets are drawn
    from the run seed: the tuning seeds draw other sets (independent draws, not disjoint ones: a
    random 10% of tuning seed 100 shares about 10% of its images with seed 0's), so their specs are
    kept. Chains and reported scenarios that leave no class to tune on need `given`."""
    reported_sets = expand_scenarios(reported, n_classes)
    held = frozenset().union(*(forgotten_classes(sc) for sc in reported_sets))
    if given:
        out = list({sc.spec: dataclasses.replace(sc, family="") for sc in expand_scenarios(given, n_classes)}.values())
        for sc in out:
            shared = sorted(forgotten_classes(sc) & held)
            if shared:
                raise ConfigError(
                    f"tuning forget set {sc.spec!r} forgets class {shared[0]}, which a reported scenario forgets too; "
                    "selection must never see a reported forget set: tune on other classes (e.g. --tune-scenarios "
                    "class:sample:K with --scenarios class:rest:K)")
        return out
    pool = [c for c in class_permutation(n_classes) if c not in held]
    out = {}
    for sc in {sc.spec: sc for sc in reported_sets}.values():
        if sc.kind == "sequential":
            raise ConfigError(f"{sc.spec!r} is a chain: give the forget sets to tune its requests' kind on with "
                              "--tune-scenarios (class:C or random:P scenarios, disjoint from the reported classes)")
        need = len(forgotten_classes(sc))
        if not need:
            out[sc.spec] = dataclasses.replace(sc, family="")
            continue
        if len(pool) < need:  # the classes ran out: the kind is tuned on those it already has
            if not any(s.kind == sc.kind for s in out.values()):
                raise ConfigError(f"no class is left to tune {sc.spec!r} on: the reported scenarios forget {len(held)} "
                                  f"of the {n_classes} classes; report class:rest:K and tune on class:sample:K "
                                  "(--tune-scenarios)")
            continue
        picked, pool = pool[:need], pool[need:]
        chosen = Scenario("class", (picked[0],)) if sc.kind == "class" else dataclasses.replace(
            sc, classes=tuple(sorted(picked)), family="")
        out[chosen.spec] = chosen
    return list(out.values())


# -- selection --------------------------------------------------------------------------------
def _cell_stats(store: Store, groups: list[dict]) -> list[dict]:
    """Per group of record keys (one per run): job counts and (mean, std) of each of METRICS,
    from the one aggregation the reports use, with Avg. Gap recomputed against the Retrain each
    record names (never the value stored at job time)."""
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
    stats = aggregate(frame, ["group"], (*METRICS, FLAGGED_MIA_GAP, "mia_extrapolates"))
    out = []
    for i in range(len(groups)):
        part = stats[stats["group"].eq(i)].set_index("metric")
        head = part.iloc[0] if len(part) else None
        out.append({"n": len(groups[i]), "n_ok": int(head.n_ok) if head is not None else 0,
                    "n_failed": int(head.n_failed) if head is not None else 0,
                    **{m: ((float(part.loc[m, "mean"]), float(part.loc[m, "std"])) if m in part.index
                           else (math.nan, math.nan)) for m in (*METRICS, FLAGGED_MIA_GAP, "mia_extrapolates")}})
    return out


def score(stats: dict, criterion: str, gap: str = "avg_gap") -> float:
    """A candidate's score under a criterion (smaller is better) on `gap`; nan when it has no gap."""
    mean, std = stats[gap]
    if criterion == "mean":
        return mean
    return mean + (0.0 if math.isnan(std) else std)  # one run has no spread to count


def select(tp: TunePlan, criterion: str | None = None) -> list[Outcome]:
    """Read every candidate's records and choose per cell (see the module docstring)."""
    criterion = criterion or tp.search.criterion
    store = Store(tp.config.out)
    outcomes = []
    for cell in tp.cells:
        *stats, retrain, original = _cell_stats(store, [*cell.keys, cell.retrain, cell.original])
        gap = FLAGGED_MIA_GAP if mia_flagged([*stats, retrain]) else "avg_gap"  # the original never selects
        for s in stats:
            s["scores"] = {c: score(s, c, gap) for c in CRITERION_WORDS}
        eligible = [i for i, s in enumerate(stats) if s["n_ok"] == s["n"] and not math.isnan(s["scores"][criterion])]
        winner = min(eligible, key=lambda i: (round(stats[i]["scores"][criterion], 9), i), default=None)
        outcomes.append(Outcome(cell, stats, retrain, winner, gap, original,
                                [live_candidate(s, original, retrain) for s in stats]))
    return outcomes


def live_candidate(candidate: dict, original: dict, retrain: dict) -> bool | None:
    """Whether a candidate moved UA toward Retrain's and kept RA, from the (mean, std) of `ua`
    and `ra` over the tuning runs of it, the untouched original and Retrain (SPEC §3's equal
    budget, counted in practice: a method whose candidates mostly do nothing, or forget by
    destroying the model, had fewer real tries than its budget says).

    Live: |UA − UA_retrain| ≤ LIVE_UA_SHARE · |UA_original − UA_retrain|, i.e. its UA closed at
    least half of the original's distance to Retrain's (past the midpoint: nearer Retrain than
    doing nothing; the same band bounds overshooting, over-forgetting, on the far side), and
    RA ≥ RA_original − LIVE_RA_DROP (10 points: far beyond RA's seed noise in tuning cells, under a
    point on digits; a loss that alone adds 2.5 to the Avg. Gap, more than most tuned winners'
    whole gap; the digits candidates that forgot class 0 by collapsing lost 18-84).

    None where the rule cannot tell: the original's or Retrain's UA is missing, or the original's
    mean UA is within LIVE_MIN_UA_DISTANCE (2 points) of Retrain's, where no candidate can show it
    moved UA toward Retrain (digits random:10, tuning seeds 100-101: UA 0.41 against Retrain's
    1.24, where one forget image is 0.83 points). A candidate without a finished run is not live."""
    ua_o, ua_r, ra_o = original["ua"][0], retrain["ua"][0], original["ra"][0]
    if math.isnan(ua_o) or math.isnan(ua_r) or math.isnan(ra_o):
        return None
    distance = abs(ua_o - ua_r)
    if distance < LIVE_MIN_UA_DISTANCE:
        return None
    ua, ra = candidate["ua"][0], candidate["ra"][0]
    if math.isnan(ua) or math.isnan(ra):
        return False
    return abs(ua - ua_r) <= LIVE_UA_SHARE * distance and ra >= ra_o - LIVE_RA_DROP


def mia_flagged(groups: list[dict]) -> bool:
    """Whether any run of these groups (a cell's candidates and its Retrain) has an SVC
    extrapolation: the mean of the 0/1 flag over a group's runs is above 0."""
    return any((g.get("mia_extrapolates") or (math.nan,))[0] > 0 for g in groups)


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
