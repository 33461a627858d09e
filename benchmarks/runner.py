"""The runner end to end: --jobs 2 (two worker processes, one torch thread each) against one
process with two threads (--jobs 1), on the same grid, each into a fresh results root.

Wall time of `python -m mubench run ... --quiet` from start to exit, ways run in turn, medians
over repeats (each repeat in new, empty results roots, so nothing is cached). The default grid
of `mubench run` (digits, class:0 and random:10, seeds 0-2, all methods: 66 jobs) takes 2.5-3
minutes a way on two quiet AMX cores and 10-20 minutes on two busy cores without AMX, so by
default this script runs a documented subset of it with every job at its real size: seeds 0,1,
scenario class:0, the methods below (16 jobs: 2 originals, 2 Retrains, 12 methods;
fv_arithmetic adds one long serial bank job per seed). `--full` runs the embedded default grid.

    python benchmarks/runner.py               # about 1 minute on two AMX cores (5 at load, no AMX)
    python benchmarks/runner.py --full        # the whole default grid: 5 minutes on two AMX cores
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from _common import parser, record, run_mubench, setup, table

SUBSET = ["--seeds", "0,1", "--scenarios", "class:0",
          "--methods", "retrain,finetune,grad_ascent,random_label,l1_sparse,salun,forget_vector"]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="the embedded default grid (66 jobs) instead of the subset")
    p.set_defaults(repeats=1, threads=os.cpu_count() or 1)
    args = p.parse_args()
    device = setup(args)
    grid = [] if args.full else SUBSET
    ways = {"--jobs 2 (2 processes x 1 thread)": 2, "--jobs 1 (1 process x 2 threads)": 1}
    times: dict[str, list[float]] = {w: [] for w in ways}
    counts = {}
    with tempfile.TemporaryDirectory(prefix="mubench-bench-runner-") as tmp:
        for rep in range(args.repeats):
            for way, jobs in ways.items():
                seconds, counts[way] = run_mubench([*grid, "--jobs", str(jobs)], Path(tmp) / f"{rep}-{jobs}")
                times[way].append(seconds)
                print(f"{way}: {seconds:.0f} s", flush=True)
    med = {w: sorted(t)[len(t) // 2] for w, t in times.items()}
    two, one = med["--jobs 2 (2 processes x 1 thread)"], med["--jobs 1 (1 process x 2 threads)"]
    figures = {"seconds": {w: round(s, 1) for w, s in med.items()}, "all_seconds": times,
               "grid": "default (66 jobs)" if args.full else " ".join(SUBSET), "records": counts}
    record("runner", args, device, figures, one / two, grid="full" if args.full else "subset")
    print(f"\nmubench run, {'the default grid' if args.full else 'subset of the default grid: ' + ' '.join(SUBSET)} "
          f"(fresh results roots, medians of {args.repeats})")
    print(table(["way", "wall s", "method records", "speedup"],
                [[w, med[w], counts[w]["records"], one / med[w]] for w in ways]))


if __name__ == "__main__":
    main()
