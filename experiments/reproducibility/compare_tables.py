"""How far two runs of the same grid differ, row by row, against the seed noise a table shows.

    python experiments/reproducibility/compare_tables.py A B [--names "fp32,bf16"] [--metric avg_gap]

A and B are results roots (or records.csv files) of one grid made under different conditions
(thread count, precision, CPU type): their keys differ, so rows are matched by (dataset,
scenario, method, seed). Per (cell, method) it prints the mean of `--metric` in each, the
difference of the means, the paired t-interval of the per-seed differences (mubench.stats,
n = seeds matched), and whether the difference lies inside A's own 95 % t-interval half-width
over seeds, the uncertainty its table already prints. Then the largest absolute difference per
metric over all rows, and how many rows moved by more than A's half-width.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mubench.errors import MubenchError  # noqa: E402
from mubench.report.records import load_records  # noqa: E402
from mubench.stats import half_width, mean_interval  # noqa: E402

METRICS = ("ua", "ra", "ta", "mia_efficacy", "avg_gap")
ROW = ["dataset", "scenario", "method", "seed"]


def _ok(root: str) -> pd.DataFrame:
    df = load_records(root)
    df = df[df["status"] == "ok"] if "status" in df else df
    return df[[*ROW, *METRICS]].set_index(ROW)


def _matched(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    return pd.merge(a, b, left_index=True, right_index=True, how="inner", suffixes=("_a", "_b"))


def compare(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> pd.DataFrame:
    both = _matched(a, b)
    rows = []
    for (dataset, scenario, method), g in both.groupby(level=[0, 1, 2], sort=True):
        va, vb = g[f"{metric}_a"].to_numpy(float), g[f"{metric}_b"].to_numpy(float)
        diff = vb - va
        lo, hi = mean_interval(diff)
        noise = half_width(va)
        rows.append({"dataset": dataset, "scenario": scenario, "method": method, "n": len(g),
                     "A": va.mean(), "B": vb.mean(), "B - A": diff.mean(), "paired 95% CI": (lo, hi),
                     "A 95% half-width": noise, "inside A's interval": bool(abs(diff.mean()) <= noise)
                     if not np.isnan(noise) else None})
    return pd.DataFrame(rows)


def band(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per metric, over every matched (cell, method, seed): the largest and median absolute
    difference, and how many rows are identical."""
    both = _matched(a, b)
    rows = []
    for m in METRICS:
        d = (both[f"{m}_b"] - both[f"{m}_a"]).abs()
        rows.append({"metric": m, "max abs diff": float(d.max()), "median abs diff": float(d.median()),
                     "rows identical": f"{int((d < 1e-9).sum())} of {len(d)}"})
    return pd.DataFrame(rows)


def _fmt(x) -> str:
    if isinstance(x, tuple):
        return "–" if any(np.isnan(v) for v in x) else f"[{x[0]:+.2f}, {x[1]:+.2f}]"
    if isinstance(x, float):
        return "–" if np.isnan(x) else f"{x:.2f}"
    return "" if x is None else str(x)


def markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--names", default="A,B", help="what A and B are, for the header")
    p.add_argument("--metric", default="avg_gap", choices=METRICS)
    args = p.parse_args()
    try:
        a, b = _ok(args.a), _ok(args.b)
    except MubenchError as err:
        print(f"compare_tables: error: {err}", file=sys.stderr)
        return 2
    names = args.names.split(",")
    table = compare(a, b, args.metric)
    print(f"{args.metric}: A = {names[0]}, B = {names[1]}; {len(a.index.intersection(b.index))} rows matched\n")
    print(markdown(table))
    moved = int((table["inside A's interval"] == False).sum())  # noqa: E712 - None stays apart
    print(f"\n{moved} of {len(table)} rows moved by more than A's own 95% half-width\n")
    print(markdown(band(a, b)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
