"""Precision end to end: the default grid run in fp32 against bf16 autocast, time and numbers.

Precision `auto` resolves to bf16 on GPUs and on CPUs with AMX (`device.resolve_precision`).
A faster default must not be a different benchmark, so this script runs the same grid twice,
`--precision fp32` and `--precision bf16`, each into a fresh results root (originals, Retrain,
the bank and every method train at that precision; evaluation is fp32 in both), and reports:

- the wall time of each whole `mubench run` and their ratio;
- the originals' test accuracy;
- per scenario and method, UA / RA / TA / MIA-Efficacy / Avg. Gap (mean over seeds, each
  against the Retrain of its own precision) and the largest |fp32 - bf16| of the four metrics.

The default is seeds 0,1 of the default grid (digits, class:0 + random:10, all methods).

    python benchmarks/precision.py                   # about 4 minutes on two AMX cores
    python benchmarks/precision.py --seeds 0,1,2     # the whole default grid
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from _common import parser, record, run_mubench, setup, table

from mubench.device import resolve_precision

METRICS = ("ua", "ra", "ta", "mia_efficacy", "avg_gap")
WAYS = ("fp32", "bf16")


def cell_means(root: Path) -> dict[tuple[str, str], dict[str, float]]:
    """(scenario, method label) → mean of each metric over the ok seeds (Avg. Gap per seed)."""
    from mubench.report.records import load_records
    from mubench.report.tables import summary_stats

    stats = summary_stats(load_records(root))
    out: dict[tuple[str, str], dict[str, float]] = {}
    for r in stats.itertuples():
        if r.metric in METRICS:
            out.setdefault((r.scenario, r.label), {})[r.metric] = float(r.mean)
    return out


def original_accuracy(root: Path) -> list[float]:
    records = [json.loads(p.read_text()) for p in sorted((root / "records" / "original").glob("*.json"))]
    return [round(r["test_acc"], 2) for r in sorted(records, key=lambda r: r["seed"])]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1", help="seeds of the default grid to run (default 0,1)")
    p.set_defaults(repeats=1)
    args = p.parse_args()
    device = setup(args)
    grid = ["--methods", "all", "--seeds", args.seeds]
    seconds: dict[str, list[float]] = {w: [] for w in WAYS}
    means, accuracy = {}, {}
    with tempfile.TemporaryDirectory(prefix="mubench-bench-precision-") as tmp:
        for rep in range(args.repeats):
            for way in WAYS:
                root = Path(tmp) / f"{rep}-{way}"
                s, counts = run_mubench([*grid, "--precision", way], root)
                if counts["failed"]:
                    raise SystemExit(f"{way}: {counts['failed']} method jobs failed; see {root}/logs")
                seconds[way].append(s)
                means[way], accuracy[way] = cell_means(root), original_accuracy(root)
                print(f"{way}: {s:.0f} s", flush=True)
    med = {w: statistics.median(t) for w, t in seconds.items()}
    rows, cells = [], {}
    for key in means["fp32"]:
        a, b = means["fp32"][key], means["bf16"][key]
        delta = max(abs(a[m] - b[m]) for m in METRICS[:4])
        cells[" ".join(key)] = {"fp32": a, "bf16": b, "max_abs_diff": round(delta, 3)}
        rows.append([*key, a["avg_gap"], b["avg_gap"], f"{a['ua']:.1f} / {b['ua']:.1f}",
                     f"{a['ra']:.1f} / {b['ra']:.1f}", f"{a['ta']:.1f} / {b['ta']:.1f}", delta])
    speedup = med["fp32"] / med["bf16"]
    figures = {"seconds": {w: round(s, 1) for w, s in med.items()}, "all_seconds": seconds,
               "auto_resolves_to": resolve_precision("auto", device), "grid": " ".join(grid),
               "original_test_acc": accuracy, "cells": cells}
    record("precision", args, device, figures, speedup, grid=" ".join(grid))
    print(f"\nmubench run {' '.join(grid)}: fp32 {med['fp32']:.0f} s, bf16 {med['bf16']:.0f} s "
          f"(bf16 {speedup:.2f}x; precision auto is {resolve_precision('auto', device)} here)")
    print(f"originals' test accuracy by seed: fp32 {accuracy['fp32']}, bf16 {accuracy['bf16']}")
    print(table(["scenario", "method", "Avg. Gap fp32", "Avg. Gap bf16", "UA fp32 / bf16", "RA fp32 / bf16",
                 "TA fp32 / bf16", "max |Δ| UA/RA/TA/MIA"], rows))


if __name__ == "__main__":
    main()
