"""Evaluation: every metric from one forward pass per split, against one pass per metric.

Reference unlearning code evaluates each metric with its own loop: UA over the forget set, RA
over the retain set, TA over the test set, then MIA-Efficacy runs the model again over its
shadow sets (members from retain, non-members from test) and its target (the forget set).
mubench (`evaluation.evaluate`) runs one pass over each part of the split and computes UA, RA,
TA and the MIA from those logits. Ways, on Fashion-MNIST class:0 (a 20k training subset / 10k test), with
the small CNN (weights do not change the cost) and SPEC §5's attack, interleaved, medians:

    per-metric, reference-style   one pass per metric, torch.no_grad, batch 256, NCHW model
    per-metric, mubench batches   one pass per metric, inference_mode, the device's eval batch
                                  (`device.eval_batch_size`: 128 on CPU), channels-last
    one pass, batch 2048          mubench's passes with the large batch GPUs want
    mubench                       evaluation.forward_split: one pass per part, device batch, channels-last

The second and last differ only in the number of passes. What differs between ways is the
forward passes, so those are timed; the SVM attack's fit is identical in every way, timed once
and added back for the end-to-end ratio. Before timing, the script checks that per-metric and
one-pass evaluation give the same UA, RA, TA and MIA-Efficacy.

    python benchmarks/evaluation.py          # about 3 minutes on one core
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from _common import interleaved, parser, record, setup, table

from mubench.attacks.svc import MIAConfig, attack_indices, mia_efficacy
from mubench.data import LoadOptions, eval_view
from mubench.device import eval_batch_size
from mubench.evaluation import PartOutputs, _part_data, evaluate, forward_split
from mubench.metrics import accuracy, unlearning_accuracy
from mubench.pipeline import cached_dataset, fresh_model, get_split
from mubench.predictor import Predictor


def per_metric_passes(predictor: Predictor, data, split, device, batch_size: int, grad_mode) -> dict:
    """The forward passes of per-metric evaluation, as reference code runs them: UA over the
    forget set, RA over retain, TA over test, then the MIA over its shadow sets (members drawn
    from retain, non-members from test) and its target (the forget set) again."""
    def logits(x: torch.Tensor) -> torch.Tensor:
        predictor.model.to(device).eval()
        outs = []
        with grad_mode():
            for start in range(0, len(x), batch_size):
                xb = eval_view(data, x[start : start + batch_size].to(device))
                outs.append(predictor(xb).float().cpu())
        return torch.cat(outs) if outs else torch.zeros(0, data.num_classes)

    def part(name: str, idx: np.ndarray | None = None) -> PartOutputs:
        x, y = _part_data(data, split, name)
        if idx is not None:
            x, y = x[torch.from_numpy(idx)], y[torch.from_numpy(idx)]
        return PartOutputs(logits(x), y.long())

    members, nonmembers = attack_indices(len(split.retain), len(split.test), MIAConfig(seed=0))
    return {"forget": part("forget"), "retain": part("retain"), "test": part("test"),
            "mia_members": (members, part("retain", members)), "mia_nonmembers": (nonmembers, part("test", nonmembers)),
            "mia_target": part("forget")}


def per_metric_results(passes: dict, data, split) -> dict:
    """UA, RA, TA and MIA-Efficacy from the per-metric passes (the attack sees the same samples
    as mubench's: shadow logits are put back at the positions `mia_efficacy` draws)."""
    def scatter(n: int, idx: np.ndarray, part: PartOutputs, labels: torch.Tensor):
        full = torch.zeros(n, data.num_classes)
        full[torch.from_numpy(idx)] = part.logits
        return full, labels

    retain_y = _part_data(data, split, "retain")[1].long()
    test_y = _part_data(data, split, "test")[1].long()
    target = passes["mia_target"]
    mia = mia_efficacy(scatter(len(retain_y), *passes["mia_members"], retain_y),
                       scatter(len(test_y), *passes["mia_nonmembers"], test_y),
                       (target.logits, target.labels), MIAConfig(seed=0))
    return {"ua": unlearning_accuracy(passes["forget"]), "ra": accuracy(passes["retain"]),
            "ta": accuracy(passes["test"]), "mia_efficacy": mia.value}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--scenario", default="class:0")
    p.add_argument("--train-subset", type=int, default=20000,
                   help="stratified training subset (0: all 60k; 20k keeps the script near 3 minutes)")
    args = p.parse_args()
    device = setup(args)
    data = cached_dataset(args.dataset, LoadOptions(train_subset=args.train_subset))
    split = get_split(None, data, args.scenario, 0)
    nchw = fresh_model(data, "small_cnn", 0).to(device)
    cl = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    ref_pred, mu_pred = Predictor(nchw), Predictor(cl)

    # Same numbers every way (the check that this compares like with like), and the attack's
    # fit, identical in every way, timed once.
    reference = per_metric_results(per_metric_passes(ref_pred, data, split, device, 256, torch.no_grad), data, split)
    t0 = time.perf_counter()
    ours = evaluate(mu_pred, data, split, device=device, controls=False)
    evaluate_s = time.perf_counter() - t0
    outputs = forward_split(mu_pred, data, split, device)
    t0 = time.perf_counter()
    mia_efficacy((outputs.retain.logits, outputs.retain.labels), (outputs.test.logits, outputs.test.labels),
                 (outputs.forget.logits, outputs.forget.labels), MIAConfig(seed=0))
    attack_s = time.perf_counter() - t0
    for k in ("ua", "ra", "ta", "mia_efficacy"):
        if abs(reference[k] - ours[k]) > 0.05:
            raise SystemExit(f"{k} differs between ways: {reference[k]} vs {ours[k]}")

    cpu_batch = eval_batch_size(device)
    ways = {
        "per-metric, reference-style": lambda: per_metric_passes(ref_pred, data, split, device, 256, torch.no_grad),
        "per-metric, mubench batches": lambda: per_metric_passes(mu_pred, data, split, device, cpu_batch,
                                                                 torch.inference_mode),
        "one pass, batch 2048": lambda: forward_split(mu_pred, data, split, device, batch_size=2048),
        "mubench": lambda: forward_split(mu_pred, data, split, device),
    }
    seconds = interleaved(ways, args.repeats, device, warmup=False)
    n_mia = len(attack_indices(len(split.retain), len(split.test), MIAConfig())[0])
    per_metric_images = 2 * len(split.forget) + len(split.retain) + len(split.test) + 2 * n_mia
    one_pass_images = len(split.forget) + len(split.retain) + len(split.test) + len(split.test_forgotten)
    ref, mid, big, mu = (seconds[k] for k in ways)
    figures = {"forward_seconds": {k: round(v, 3) for k, v in seconds.items()}, "attack_fit_s": round(attack_s, 3),
               "evaluate_s": round(evaluate_s, 3), "eval_batch": cpu_batch,
               "images_forwarded": {"per-metric": per_metric_images, "one pass": one_pass_images},
               "dataset": data.name, "scenario": args.scenario,
               "passes_speedup_same_batches": round(mid / mu, 3),
               "end_to_end_speedup": round((ref + attack_s) / (mu + attack_s), 3)}
    record("evaluation", args, device, figures, ref / mu, model="small_cnn")
    print(f"\nForward passes of one evaluation on {data.name} {args.scenario} ({device}, {args.threads} thread(s), "
          f"medians of {args.repeats}). The SVM attack's fit ({attack_s:.1f} s) is the same in every way and "
          "not inside these seconds; end to end adds it to each.")
    rows = [["per-metric passes, no_grad, batch 256, NCHW", per_metric_images, ref, ref / mu, (ref + attack_s) / (mu + attack_s)],
            [f"per-metric passes, inference_mode, batch {cpu_batch}, channels-last", per_metric_images, mid, mid / mu,
             (mid + attack_s) / (mu + attack_s)],
            ["one pass per part, batch 2048, channels-last", one_pass_images, big, big / mu,
             (big + attack_s) / (mu + attack_s)],
            [f"mubench: one pass per part, batch {cpu_batch}, channels-last", one_pass_images, mu, 1.0, 1.0]]
    print(table(["way", "images forwarded", "forward s", "mubench × (passes)", "mubench × (end to end)"], rows))


if __name__ == "__main__":
    main()
