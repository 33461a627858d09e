"""What `mubench tune` writes: the candidates' table (Markdown), and per (dataset, model) a config
whose per-scenario tables hold the winners, marked in [tuned] (see mubench/tuning.py)."""

from __future__ import annotations

import dataclasses
import math
import re
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import ExperimentConfig, TuneConfig
from .config_toml import config_to_toml
from .params import apply_overrides
from .report import format_number, markdown_table
from .store import write_json_atomic
from .tuning import CRITERION, LABELS, METRICS, Outcome, TunePlan, _edge_note, _fmt


def tune_markdown(tp: TunePlan, outcomes: list[Outcome], reporting_seeds: Sequence[int]) -> str:
    """Every candidate per cell (mean ± std over the tuning seeds), the winner marked ✓."""
    import pandas as pd

    seeds = ", ".join(map(str, tp.config.seeds))
    out = ["# mubench tune", "",
           f"Criterion: {CRITERION}. Tuning seeds {seeds}; reporting seeds "
           f"{', '.join(map(str, reporting_seeds))}. Avg. Gap includes TA, so the search reads the "
           "test set, as the references' does; the reported runs (other seeds: other splits, originals "
           "and Retrains) are not the ones selected on.", "",
           "Grids: " + "; ".join(f"{m}: {w}" for m, w in tp.grids.items()) + ".", ""]
    for o in outcomes:
        c = o.cell
        rows = [("Retrain (reference)", o.retrain, "")]
        rows += [(cand.label, s, "✓" if i == o.winner else "") for i, (cand, s) in enumerate(zip(c.candidates, o.stats, strict=True))]
        table = pd.DataFrame([{"candidate": label,
                               **{LABELS[m]: ("n/a" if math.isnan(s[m][0]) else format_number(m, *s[m])) for m in METRICS},
                               "seeds": f"{s['n_ok']}/{s['n']}" + (f" ({s['n_failed']} failed)" if s["n_failed"] else ""),
                               "chosen": mark} for label, s, mark in rows])
        out += [f"## {c.dataset} / {c.model} / {c.scenario} — {c.method}", "", markdown_table(table), ""]
        note = _edge_note(o) if o.winner is not None else "no candidate finished on every seed: nothing chosen"
        out += [f"Note: {note}.", ""] if note else []
    return "\n".join(out)


def tuned_configs(config: ExperimentConfig, outcomes: list[Outcome]) -> dict[tuple[str, str], ExperimentConfig]:
    """Per (dataset, model): the input config with each winner's values as its scenario's table,
    marked in [tuned] (a cell without a winner keeps what the input config had)."""
    pairs: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        pairs.setdefault((o.cell.dataset, o.cell.model), []).append(o)
    out = {}
    for (dataset, model), group in pairs.items():
        tables = {m: {s: dict(t) for s, t in ts.items()} for m, ts in config.scenario_params.items()}
        tuned = {m: list(v) for m, v in config.tuned.items()}
        for o in group:
            if o.winner is None:
                continue
            c = o.cell
            table = tables.setdefault(c.method, {})
            table[c.scenario] = {**table.get(c.scenario, {}), **c.candidates[o.winner].overrides}
            if c.scenario not in tuned.setdefault(c.method, []):
                tuned[c.method].append(c.scenario)
        out[(dataset, model)] = _typed(dataclasses.replace(
            config, datasets=(dataset,), models=(model,), tune=TuneConfig(),
            method_params={**{m: {} for m in tables}, **config.method_params},
            scenario_params=tables, tuned={m: tuple(v) for m, v in tuned.items() if v}))
    return out


def _typed(config: ExperimentConfig) -> ExperimentConfig:
    """--set values arrive as strings ("10"): write the typed values they mean (10) instead."""
    from .runner import recipe_for
    from .training import OptimSpec
    from .unlearning import METHODS

    def typed(method: str, values: dict) -> dict:
        params = apply_overrides(METHODS.get(method).Params(), values, f"method {method!r}")
        return {k: getattr(params, k) for k in values}

    recipe = recipe_for(config.datasets[0], config.recipe)
    optim = {f.name for f in dataclasses.fields(OptimSpec)}
    return dataclasses.replace(
        config, method_params={m: typed(m, v) for m, v in config.method_params.items()},
        scenario_params={m: {s: typed(m, t) for s, t in ts.items()} for m, ts in config.scenario_params.items()},
        recipe={k: getattr(recipe.optim if k in optim else recipe, k) for k in config.recipe})


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def _toml_header(tp: TunePlan, outcomes: list[Outcome], md: Path) -> str:
    intro = (f"Chosen by `python -m mubench tune` (mubench {__version__}, {time.strftime('%Y-%m-%d %H:%M')}): "
             f"per scenario, the {CRITERION}. Tuning seeds: {', '.join(map(str, tp.config.seeds))}; the "
             f"reporting seeds are [experiment] seeds below. Every candidate with its numbers: {md}. "
             "[tuned] lists the tables that hold chosen values: records of those jobs carry "
             "\"tuned\": true and reports say so.")
    lines = textwrap.wrap(intro, 96, break_on_hyphens=False, break_long_words=False) + [""]
    for o in outcomes:
        c = o.cell
        searched = " | ".join(", ".join(f"{k}={_fmt(v)}" for k, v in cand.overrides.items()) for cand in c.candidates)
        if o.winner is None:
            lines.append(f"{c.method} {c.scenario}: nothing chosen, no candidate finished on every seed ({searched})")
        else:
            gap = format_number("avg_gap", *o.stats[o.winner]["avg_gap"])
            lines.append(f"{c.method} {c.scenario}: {c.candidates[o.winner].label}, Avg. Gap {gap} (of {searched})")
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def write_outputs(tp: TunePlan, outcomes: list[Outcome], config: ExperimentConfig) -> list[Path]:
    """tune.md, tune.json and the tuned configs under the tuning root; returns the TOML paths first."""
    root = Path(tp.config.out)
    root.mkdir(parents=True, exist_ok=True)
    md = root / "tune.md"
    md.write_text(tune_markdown(tp, outcomes, config.seeds) + "\n", encoding="utf-8")
    tomls = []
    for (dataset, model), tuned in tuned_configs(config, outcomes).items():
        path = root / f"tuned-{_slug(dataset)}-{_slug(model)}.toml"
        mine = [o for o in outcomes if (o.cell.dataset, o.cell.model) == (dataset, model)]
        path.write_text(_toml_header(tp, mine, md) + "\n" + config_to_toml(tuned), encoding="utf-8")
        tomls.append(path)

    def num(x):
        return None if math.isnan(x) else x

    cells = [{"dataset": o.cell.dataset, "model": o.cell.model, "scenario": o.cell.scenario,
              "method": o.cell.method, "grid": tp.grids[o.cell.method],
              "chosen": None if o.winner is None else o.cell.candidates[o.winner].overrides,
              "retrain_keys": o.cell.retrain,
              "candidates": [{"overrides": cand.overrides, "default": cand.default, "chosen": i == o.winner,
                              "keys": keys, "n_ok": s["n_ok"], "n_failed": s["n_failed"],
                              **{m: {"mean": num(s[m][0]), "std": num(s[m][1])} for m in METRICS}}
                             for i, (cand, keys, s) in enumerate(zip(o.cell.candidates, o.cell.keys, o.stats, strict=True))]}
             for o in outcomes]
    write_json_atomic(root / "tune.json", {"criterion": CRITERION, "tuning_seeds": list(tp.config.seeds),
                                           "reporting_seeds": list(config.seeds), "cells": cells,
                                           "tuned_configs": [str(p) for p in tomls]})
    return tomls + [md, root / "tune.json"]
