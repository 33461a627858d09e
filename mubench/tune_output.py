"""What `mubench tune` writes: the candidates' table (Markdown), the same as data (JSON), and per
(dataset, model) a tuned settings file (format: mubench/tuned.py) that `run --tuned` reads."""

from __future__ import annotations

import math
import re
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import ExperimentConfig
from .config_toml import _toml_key, _toml_table, _toml_value
from .report import format_number, markdown_table
from .store import write_json_atomic
from .tuning import (
    CRITERION_WORDS,
    FLAGGED_MIA_GAP,
    LABELS,
    LIVE_MIN_UA_DISTANCE,
    LIVE_WORDS,
    METRICS,
    Outcome,
    TunePlan,
    _edge_note,
    protocol_words,
)


def _header(tp: TunePlan, reporting_seeds: Sequence[int]) -> list[str]:
    s = tp.search
    budget = (f"{s.budget} candidates per method and scenario kind" if tp.equal_budget else
              "UNEQUAL budgets (an explicit --grid replaced some methods' draws)")
    return [f"Protocol: {s.protocol} — {protocol_words(s)}.",
            f"Criterion: {CRITERION_WORDS[s.criterion]}; the other criterion's score is shown beside it.",
            f"Budget: {budget}. Tuning seeds {', '.join(map(str, s.seeds))}; reporting seeds "
            f"{', '.join(map(str, reporting_seeds))} (disjoint)."]


def tune_markdown(tp: TunePlan, outcomes: list[Outcome], reporting_seeds: Sequence[int]) -> str:
    """Every candidate per cell (mean ± std over the tuning runs), both scores, the winner ✓."""
    import pandas as pd

    out = ["# mubench tune", "", *_header(tp, reporting_seeds), "",
           "Searched: " + "; ".join(f"{m}: {w}" for m, w in tp.spaces.items()) + ".", "",
           f"Live candidates (they change UA and keep RA; nothing selects on them): {LIVE_WORDS}.", ""]
    for o in outcomes:
        c = o.cell
        rows = [("Retrain (reference)", o.retrain, "", ""), ("Original (no unlearning)", o.original, "", "")]
        rows += [(cand.label, s, "✓" if i == o.winner else "", _live_mark(live))
                 for i, (cand, s, live) in enumerate(zip(c.candidates, o.stats, o.live, strict=True))]
        table = pd.DataFrame([{
            "candidate": label,
            **{LABELS[m]: ("n/a" if math.isnan(s[m][0]) else format_number(m, *s[m])) for m in METRICS},
            **{f"score ({k})": ("" if "scores" not in s or math.isnan(s["scores"][k]) else f"{s['scores'][k]:.2f}")
               for k in CRITERION_WORDS},
            "runs": f"{s['n_ok']}/{s['n']}" + (f" ({s['n_failed']} failed)" if s["n_failed"] else ""),
            "chosen": mark, "live": live} for label, s, mark, live in rows])
        out += [f"## {c.dataset} / {c.model} / {c.kind} ({', '.join(c.scenarios)}) — {c.method}", "",
                markdown_table(table), "", live_line(o), ""]
        note = _edge_note(o) if o.winner is not None else "no candidate finished every run: nothing chosen"
        out += [f"Note: {note}.", ""] if note else []
        if o.selected_on == FLAGGED_MIA_GAP:
            out += ["Note: MIA-Efficacy is an SVC extrapolation on some run of this cell, so its scores use the "
                    "Avg. Gap without the MIA term (UA, RA, TA).", ""]
    return "\n".join(out)


def _live_mark(live: bool | None) -> str:
    return "n/a" if live is None else "live" if live else ""


def live_line(o: Outcome) -> str:
    """`live candidates: L of N` for one cell (n/a where UA cannot tell: tuning.live_candidate)."""
    n = len(o.cell.candidates)
    if o.live_count is not None:
        return f"live candidates: {o.live_count} of {n}"
    return (f"live candidates: n/a of {n} (the original's mean UA is within {LIVE_MIN_UA_DISTANCE:g} points of "
            "Retrain's or missing: UA cannot tell a live candidate from one that does nothing here)")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def _num(x: float):
    return None if math.isnan(x) else round(x, 4)


def produced_by(config: ExperimentConfig, dataset: str) -> dict:
    """What the search computed with: the resolved precision, the machine, the CPU jobs' threads
    (a run under another precision or device class says so: tuned.TunedSettings.mismatch)."""
    from .device import machine, resolve_device
    from .presets import run_precision

    device = resolve_device(config.execution.device)
    return {"precision": run_precision(config.precision, dataset, device),
            **machine(device, config.execution.threads_per_worker)}


def tuned_toml(tp: TunePlan, outcomes: list[Outcome], config: ExperimentConfig, command: str) -> str:
    """One (dataset, model)'s tuned settings file: header, [tuned], chosen tables, candidates."""
    o0 = outcomes[0].cell
    intro = (f"Written by `{command}` (mubench {__version__}, {time.strftime('%Y-%m-%d %H:%M')}). "
             + " ".join(_header(tp, config.seeds)) + " Read by `mubench run` (tuned = \"auto\" for the "
             "shipped files in mubench/tuned/, or --tuned FILE); docs/tuning.md.")
    lines = [f"# {line}".rstrip() for line in textwrap.wrap(intro, 96, break_on_hyphens=False, break_long_words=False)]
    s = tp.search
    meta = {"dataset": o0.dataset, "train_subset": config.train_subset, "model": o0.model, "protocol": s.protocol,
            "validation": s.validation if s.protocol == "heldout" else 0.0, "criterion": s.criterion,
            "budget": s.budget if tp.equal_budget else -1, "seeds": list(s.seeds), "command": command,
            "scenarios": {c.kind: c.scenarios for c in (o.cell for o in outcomes)},
            "produced": produced_by(config, o0.dataset), "live_rule": LIVE_WORDS}
    out = lines + [""] + _toml_table("tuned", meta)
    for o in outcomes:
        if o.winner is not None:
            out += _toml_table(f"methods.{_toml_key(o.cell.method)}.{_toml_key(o.cell.kind)}",
                               o.cell.candidates[o.winner].overrides)
    for o in outcomes:
        for i, (cand, st) in enumerate(zip(o.cell.candidates, o.stats, strict=True)):
            row = {"method": o.cell.method, "kind": o.cell.kind, "values": cand.overrides, "chosen": i == o.winner,
                   "selected_on": o.selected_on,
                   "live": o.live[i], "runs_ok": st["n_ok"], "runs": st["n"],
                   **{f"{m}_mean": _num(st[m][0]) for m in METRICS}, **{f"{m}_std": _num(st[m][1]) for m in METRICS},
                   **{f"score_{k.replace('+', '_')}": _num(v) for k, v in st["scores"].items()}}
            out += ["[[candidates]]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in row.items() if v is not None] + [""]
    return "\n".join(out)


def write_outputs(tp: TunePlan, outcomes: list[Outcome], config: ExperimentConfig, command: str,
                  write: str | None = None) -> list[Path]:
    """tune.md, tune.json and the tuned settings files under the tuning root (and at `write`);
    returns the settings files first."""
    root = Path(tp.config.out)
    root.mkdir(parents=True, exist_ok=True)
    md = root / "tune.md"
    md.write_text(tune_markdown(tp, outcomes, config.seeds) + "\n", encoding="utf-8")
    pairs: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        pairs.setdefault((o.cell.dataset, o.cell.model), []).append(o)
    files = []
    for (dataset, model), group in pairs.items():
        text = tuned_toml(tp, group, config, command)
        path = root / f"tuned-{_slug(dataset)}-{_slug(model)}.toml"
        path.write_text(text + "\n", encoding="utf-8")
        files.append(path)
        if write:
            Path(write).parent.mkdir(parents=True, exist_ok=True)
            Path(write).write_text(text + "\n", encoding="utf-8")
            files.append(Path(write))
    cells = [{"dataset": o.cell.dataset, "model": o.cell.model, "kind": o.cell.kind, "scenarios": o.cell.scenarios,
              "method": o.cell.method, "searched": tp.spaces[o.cell.method], "selected_on": o.selected_on,
              "chosen": None if o.winner is None else o.cell.candidates[o.winner].overrides,
              "retrain_keys": {f"{sc}/seed {seed}": k for (sc, seed), k in o.cell.retrain.items()},
              "original_keys": {f"{sc}/seed {seed}": k for (sc, seed), k in o.cell.original.items()},
              **{row: {m: {"mean": _num(st[m][0]), "std": _num(st[m][1])} for m in METRICS}
                 for row, st in (("retrain", o.retrain), ("original", o.original))},
              "live_count": o.live_count,
              "candidates": [{"overrides": cand.overrides, "chosen": i == o.winner, "live": o.live[i],
                              "keys": {f"{sc}/seed {seed}": k for (sc, seed), k in keys.items()},
                              "n_ok": s["n_ok"], "n_failed": s["n_failed"], "scores": {k: _num(v) for k, v in s["scores"].items()},
                              **{m: {"mean": _num(s[m][0]), "std": _num(s[m][1])} for m in METRICS}}
                             for i, (cand, keys, s) in enumerate(zip(o.cell.candidates, o.cell.keys, o.stats, strict=True))]}
             for o in outcomes]
    s = tp.search
    write_json_atomic(root / "tune.json", {"protocol": s.protocol, "validation": s.validation, "criterion": s.criterion,
                                           "budget": s.budget, "equal_budget": tp.equal_budget, "command": command,
                                           "tuning_seeds": list(s.seeds), "reporting_seeds": list(config.seeds),
                                           "live_rule": LIVE_WORDS,
                                           "cells": cells, "tuned_files": [str(p) for p in files]})
    return files + [md, root / "tune.json"]
