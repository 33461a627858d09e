"""Before/after table of two results roots (the same grid run by two mubench versions).

    python benchmarks/before_after.py BEFORE AFTER [--methods forget_vector,fv_arithmetic,retrain]

Prints a markdown table, one row per (scenario, method, version): mean ± std over the seeds
of UA, RA, TA, MIA-Efficacy and Avg. Gap (each gap against its own root's Retrain), and the
seeds it pools. A root that holds a cell twice (the same run repeated with other evaluation
settings, e.g. an added attack) counts its newest record; a note on stderr says when the
dropped one's numbers differ. Used by benchmarks/fidelity_fv.sh (issue 13's before/after)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from mubench.report.records import current_ok, load_records  # noqa: E402

METRICS = ("ua", "ra", "ta", "mia_efficacy", "avg_gap")


def method_rows(root: Path, version: str) -> list[dict]:
    """One row per (scenario, method, seed) of ROOT: its newest ok record, as reports pick it
    (`mubench.report.records.current_ok`)."""
    df = load_records(root)
    ok = df[df["status"].eq("ok")]
    cell = ["scenario", "method", "seed"]
    distinct = ok[cell + list(METRICS)].round(6).drop_duplicates()
    for scenario, method, seed in distinct.loc[distinct.duplicated(cell), cell].itertuples(index=False):
        print(f"note: {root} holds {(scenario, method, int(seed))} twice with different numbers; the newest counts", file=sys.stderr)
    return current_ok(df)[cell + list(METRICS)].assign(version=version).to_dict("records")


def table(frame: pd.DataFrame, methods: list[str] | None) -> str:
    lines = ["| scenario, method | seeds | UA | RA | TA | MIA-Efficacy | Avg. Gap |",
             "|---|---|---|---|---|---|---|"]
    order = {"before": 0, "after": 1}
    groups = frame.groupby(["scenario", "method", "version"], sort=False)
    for (scenario, method, version), g in sorted(groups, key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])):
        if methods and method not in methods:
            continue
        cells = [f"{g[m].mean():.2f} ± {g[m].std(ddof=1):.2f}" if len(g) > 1 else f"{g[m].mean():.2f}"
                 for m in METRICS]
        seeds = ",".join(str(s) for s in sorted(g.seed))
        lines.append(f"| {scenario} {method} {version} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--methods", default="", help="comma-separated methods to show (default: all)")
    args = ap.parse_args()
    frame = pd.DataFrame(method_rows(args.before, "before") + method_rows(args.after, "after"))
    print(table(frame, [m for m in args.methods.split(",") if m]))


if __name__ == "__main__":
    main()
