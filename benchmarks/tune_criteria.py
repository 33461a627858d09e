"""Which candidate each selection criterion picks, from a finished `mubench tune` (tune.json).

    python benchmarks/tune_criteria.py /work/tune-runs/digits/tune/tune.json

Prints one Markdown row per (dataset, model, kind, method): the winner under mean + std and under
the mean alone, with each winner's Avg. Gap mean ± std over the tuning runs, and whether they
differ. docs/tuning.md quotes the result; the choice between criteria is argued there.
"""

from __future__ import annotations

import json
import math
import sys


def winner(candidates: list[dict], criterion: str) -> int | None:
    ok = [i for i, c in enumerate(candidates) if c["n_failed"] == 0 and c["scores"][criterion] is not None
          and not math.isnan(c["scores"][criterion])]
    return min(ok, key=lambda i: (round(candidates[i]["scores"][criterion], 9), i), default=None)


def describe(c: dict) -> str:
    values = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in c["overrides"].items())
    gap = c["avg_gap"]
    return f"{values}: {gap['mean']:.2f} ± {(gap['std'] or 0):.2f}"


def main(path: str) -> None:
    summary = json.loads(open(path, encoding="utf-8").read())
    print("| cell | method | mean + std picks | mean picks | same |")
    print("|---|---|---|---|---|")
    same = 0
    for cell in summary["cells"]:
        cands = cell["candidates"]
        a, b = winner(cands, "mean+std"), winner(cands, "mean")
        same += a == b
        pick = [("—" if i is None else describe(cands[i])) for i in (a, b)]
        print(f"| {cell['dataset']}/{cell['kind']} | {cell['method']} | {pick[0]} | {pick[1]} | {'yes' if a == b else 'no'} |")
    print(f"\n{same} of {len(summary['cells'])} cells: both criteria pick the same candidate")


if __name__ == "__main__":
    main(sys.argv[1])
