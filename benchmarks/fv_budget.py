"""The budgeted forget vector: Avg. Gap against RTE, next to fine-tuning (issue 16, item 5).

A forget vector's epoch passes over forget ∪ retain through the frozen model; the budgeted
variant (`retain_fraction` < 1) sees the forget set and a fresh seeded retain subsample each
epoch, its CE weighted by 1/fraction so the loss keeps its balance, optionally with a larger
first step (`lr`) decaying faster (`lr_decay`) so the convergence stop (`tol`) comes sooner.
Every setting runs through the ordinary runner (`mubench.analysis.sweep.run_points`), so its
records are the ones `mubench run --set forget_vector.FIELD=V` writes; FT and Retrain share
the same originals. Reports, per setting, mean ± std over seeds of Avg. Gap and RTE, and
whether it reaches the target: RTE ≤ FT's at an Avg. Gap within 0.5 of the full vector's.

    python benchmarks/fv_budget.py --out /tmp/fv_budget            # Fashion-MNIST[3000] class:0
    python benchmarks/fv_budget.py --datasets digits --train-subset 0 --out /tmp/fv_budget_digits
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import table  # noqa: E402

from mubench.config import ExecutionConfig, ExperimentConfig  # noqa: E402

SETTINGS = [  # (label, forget_vector overrides); the first is the full forget vector
    ("full (preset)", {}),
    ("retain 50%", {"retain_fraction": 0.5}),
    ("retain 25%", {"retain_fraction": 0.25}),
    ("retain 50%, tol 1e-2", {"retain_fraction": 0.5, "tol": 1e-2}),
    ("retain 25%, tol 1e-2", {"retain_fraction": 0.25, "tol": 1e-2}),
    ("retain 50%, lr 0.3 ×0.8", {"retain_fraction": 0.5, "lr": 0.3, "lr_decay": 0.8}),
    ("10 epochs", {"epochs": 10}),
    ("5 epochs", {"epochs": 5}),
]


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="fashion-mnist")
    p.add_argument("--train-subset", type=int, default=3000)
    p.add_argument("--scenario", default="class:0")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", default="/tmp/fv_budget", help="results root (cached: reruns read it)")
    args = p.parse_args()
    from mubench.analysis.sweep import run_points

    config = ExperimentConfig(datasets=tuple(args.datasets.split(",")), scenarios=(args.scenario,),
                              seeds=tuple(int(s) for s in args.seeds.split(",")),
                              methods=("finetune", "forget_vector"), out=args.out,
                              train_subset=args.train_subset, execution=ExecutionConfig(backend="sequential", jobs=1, threads_per_worker=1))
    results = run_points(config, "forget_vector", [o for _, o in SETTINGS], progress=False)
    ft = [r for r in _records(args.out) if r["method"] == "finetune" and r["scenario"] == args.scenario]
    rows, full_gap = [], None
    ft_gap, ft_gap_sd = mean_std([r["avg_gap"] for r in ft])
    ft_rte, ft_rte_sd = mean_std([r["rte_s"] for r in ft])
    ft_med = statistics.median(r["rte_s"] for r in ft)
    for (label, _), res in zip(SETTINGS, results, strict=True):
        gap, gap_sd = mean_std([r["avg_gap"] for r in res.records])
        rte, rte_sd = mean_std([r["rte_s"] for r in res.records])
        rte_med = statistics.median(r["rte_s"] for r in res.records)
        full_gap = gap if full_gap is None else full_gap
        epochs = statistics.fmean(r["info"].get("epochs_run", 0) for r in res.records)
        target = "yes" if rte_med <= ft_med and gap <= full_gap + 0.5 else "no"
        rows.append([label, f"{gap:.2f} ± {gap_sd:.2f}", f"{rte:.2f} ± {rte_sd:.2f}", f"{rte_med:.2f}", f"{epochs:.1f}",
                     len(res.records), target])
    rows.append(["FT (preset)", f"{ft_gap:.2f} ± {ft_gap_sd:.2f}", f"{ft_rte:.2f} ± {ft_rte_sd:.2f}", f"{ft_med:.2f}",
                 "", len(ft), ""])
    # The target compares medians: on a shared machine one run can take several times its usual time.
    print(table(["setting", "Avg. Gap", "RTE (s)", "median RTE (s)", "epochs run", "seeds",
                 "median RTE ≤ FT's, gap ≤ full + 0.5"], rows))


def _records(root: str) -> list[dict]:
    from mubench.store import Store

    return [r for r in Store(root).iter_records("method") if r.get("status") == "ok"]


if __name__ == "__main__":
    main()
