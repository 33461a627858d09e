"""Can U-LiRA tell the untouched original from Retrain on digits? (issue 15's sanity check)

    python benchmarks/ulira_power.py --shadows 8 --seeds 0,1,2 --train-subset 400 --epochs 30 --out DIR

Runs (cached, resumable, in DIR) digits with Retrain and the shadow originals of MIA.md for
`class:0` and `random:10`, then audits two models against the cell's Retrain on D_f, with the
shadow originals' Gaussians (IN: trained on x; OUT: never): the untouched original (a clear
member) and a model trained exactly like Retrain on another seed (the null: reference model 0).
Prints one Markdown row per (seed, scenario, variance): the pooled σ per side as MIA.md says,
and one σ tied over both sides, which makes Λ monotone in φ for every example. A training
subset that the model memorises (small N, more epochs) gives the attack something to find;
the full 1,347 training images of digits leak almost nothing (docs/metrics.md, limits).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from mubench.attacks import lira_stats as ls  # noqa: E402
from mubench.config import EvaluationConfig, ExecutionConfig, ExperimentConfig  # noqa: E402
from mubench.jobs import RunContext  # noqa: E402
from mubench.method_jobs import Unlearn  # noqa: E402
from mubench.outputs import forward_split  # noqa: E402
from mubench.predictor import Predictor  # noqa: E402
from mubench.runner import build_plan, execute  # noqa: E402
from mubench.store import Store  # noqa: E402


def phi_of(model, data, split) -> np.ndarray:
    out = forward_split(Predictor(model), data, split, torch.device("cpu"), parts=("forget",))
    return ls.phi(out.forget.logits, out.forget.labels)


def audit(g: ls.Gaussians, member: np.ndarray, null: np.ndarray, retrain: np.ndarray) -> str:
    hit = ls.summary(ls.lira_scores(g, member), ls.lira_scores(g, retrain))
    ref = ls.summary(ls.lira_scores(g, null), ls.lira_scores(g, retrain))
    clear = hit["ulira_auc_lo"] > ref["ulira_auc_hi"]
    return (f"{hit['ulira_auc']:.1f} [{hit['ulira_auc_lo']:.0f}, {hit['ulira_auc_hi']:.0f}] | "
            f"{ref['ulira_auc']:.1f} [{ref['ulira_auc_lo']:.0f}, {ref['ulira_auc_hi']:.0f}] | {'yes' if clear else 'no'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shadows", type=int, default=8)
    p.add_argument("--seeds", default="0")
    p.add_argument("--train-subset", type=int, default=0, help="0: all 1,347 training images")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"digits[{args.train_subset or 'all'}], {args.epochs}-epoch recipe, fp32, K = {args.shadows}")
    print("| seed | scenario | σ | σ_in / σ_out | original vs Retrain: AUC [CI] | other-seed Retrain-like (null) | clearly higher |")
    print("|---|---|---|---|---|---|---|")
    for seed in (int(s) for s in args.seeds.split(",")):
        # A one-epoch forget vector only makes the plan train the cell's shadow originals; its
        # shadow runs are not used: the Gaussians come from the shadow originals themselves.
        config = ExperimentConfig(
            datasets=("digits",), scenarios=("class:0", "random:10"), seeds=(seed,),
            methods=("retrain", "forget_vector"), method_params={"forget_vector": {"epochs": 1}},
            train_subset=args.train_subset, out=args.out, precision="fp32", recipe={"epochs": args.epochs},
            evaluation=EvaluationConfig(attacks={"refmia": {}, "ulira": {"shadows": args.shadows}}),
            execution=ExecutionConfig(backend="sequential", threads_per_worker=1))
        store = Store(args.out)
        plan = build_plan(config, store)
        result = execute(plan, config, progress=False)
        if result.failed:
            raise SystemExit(f"{len(result.failed)} job(s) failed; see {args.out}/logs/")
        ctx = RunContext(store=store, device=torch.device("cpu"))
        for scenario in config.scenarios:
            ev = next(e for e in plan.evaluations() if e.method == "forget_vector" and e.scenario == scenario)
            data, split = ev.unlearn.original.ref.load(), ev.unlearn.split.load(store)
            # the shadow runs only: the attack's models also hold the null band's reference models
            shadows = [m for m in ev.models_of("ulira") if isinstance(m, Unlearn)]
            phis = np.stack([phi_of(u.original.load(ctx).model, data, split) for u in shadows])
            mask = np.stack([u.split.membership(len(split.forget)) for u in shadows])
            per_side = ls.fit_gaussians(phis, mask, "per_side")
            retrain = phi_of(ev.reference.unlearn.predictor(ctx).model, data, split)
            member = phi_of(ev.unlearn.original.load(ctx).model, data, split)
            null = phi_of(ev.models_of("refmia")[0].load(ctx).model, data, split)
            for variance in ("per_side", "tied"):
                g = ls.fit_gaussians(phis, mask, variance)
                print(f"| {seed} | {scenario} | {variance} | {per_side.sd_in:.2f} / {per_side.sd_out:.2f} | "
                      f"{audit(g, member, null, retrain)} |", flush=True)


if __name__ == "__main__":
    main()
