"""The pilot that sizes the search spaces (issue 25, item 2): where does each method's main knob
start to forget, and where does it destroy the model? Measured on tuning seeds only.

One explicit-grid `mubench tune` per run (so the runs are ordinary cached jobs, on the tuning
view of the data, never the test set): every method's step size (SSD: its selection weight α)
over a wide log grid, the other fields at their defaults, on the tuning forget sets given. Per
method and scenario kind it prints, for every grid value, mean UA and RA and whether the
candidate is live (tuning.live_candidate: UA past the midpoint to Retrain's, RA at most 10
points below the original's), then the live interval: the smallest and largest live value.

    python benchmarks/search_pilot.py --out /work/pilot --seeds 100 \
        --tune-scenarios class:sample:2,random:10

docs/tuning.md ("Search spaces") records a run and the SEARCH ranges set from it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

# knob → grid per method (log-spaced, wide on purpose: the pilot is to find the live part)
LR_SGD = [float(f"{v:.3g}") for v in np.logspace(-5, 0, 11)]
GRIDS = {
    "finetune": ("lr", LR_SGD), "grad_ascent": ("lr", LR_SGD), "random_label": ("lr", LR_SGD),
    "l1_sparse": ("lr", LR_SGD), "salun": ("lr", LR_SGD), "scrub": ("lr", LR_SGD),
    "ssd": ("alpha", [float(f"{v:.3g}") for v in np.logspace(-1, 3, 9)]),
    "forget_vector": ("lr", [float(f"{v:.3g}") for v in np.logspace(-2.5, 0.5, 7)]),
    "fv_arithmetic": ("lr", [float(f"{v:.3g}") for v in np.logspace(-2.5, 0.5, 7)]),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", default="100")
    ap.add_argument("--scenarios", default="class:rest:5,random:1+10+50", help="the reported scenarios (refused as tuning sets)")
    ap.add_argument("--tune-scenarios", default="class:sample:2,random:10")
    ap.add_argument("--methods", default=",".join(GRIDS))
    ap.add_argument("--jobs", default="2")
    args = ap.parse_args(argv)
    methods = args.methods.split(",")
    grid = [f"--grid={m}.{GRIDS[m][0]}=" + ",".join(f"{v:g}" for v in GRIDS[m][1]) for m in methods]
    cmd = [sys.executable, "-m", "mubench", "tune", "--methods", ",".join(methods), "--scenarios", args.scenarios,
           "--tune-scenarios", args.tune_scenarios, "--seeds", args.seeds, "--out", args.out, "--jobs", args.jobs,
           "--quiet", *grid]
    print(" ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        print(proc.stderr, file=sys.stderr)
        return proc.returncode
    summary = json.loads((Path(args.out) / "tune" / "tune.json").read_text())
    for cell in summary["cells"]:
        knob = GRIDS[cell["method"]][0]
        print(f"\n{cell['method']} / {cell['kind']} ({', '.join(cell['scenarios'])}): original UA "
              f"{cell['original']['ua']['mean']:.1f} RA {cell['original']['ra']['mean']:.1f}; Retrain UA "
              f"{cell['retrain']['ua']['mean']:.1f} RA {cell['retrain']['ra']['mean']:.1f}")
        live = []
        for c in cell["candidates"]:
            value = c["overrides"][knob]
            mark = {True: "live", False: "", None: "n/a"}[c["live"]]
            print(f"  {knob}={value:<8g} UA {c['ua']['mean']:6.1f}  RA {c['ra']['mean']:6.1f}  {mark}")
            if c["live"]:
                live.append(value)
        print(f"  live {knob}: " + (f"[{min(live):g}, {max(live):g}] ({len(live)} of {len(cell['candidates'])})"
                                    if live else "none"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
