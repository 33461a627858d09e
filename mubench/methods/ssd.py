"""Selective Synaptic Dampening (SSD): shrink the weights the forget set depends on far more than the rest.

Source: Foster et al., "Fast Machine Unlearning Without Retraining Through Selective Synaptic
Dampening" (AAAI 2024) and its code (github.com/if-loops/selective-synaptic-dampening). No
training. With the diagonal of the empirical Fisher information as importance,

    I_D = mean over mini-batches of (∂ CE(batch) / ∂θ)²   on the full training data D = retain ∪ forget
    I_f = the same on the forget set,

every parameter θ_i with I_f,i > α·I_D,i (it matters far more to the forget set than to the
data as a whole) is multiplied by β_i = min(λ·I_D,i / I_f,i, 1); all other parameters are left
unchanged. Every parameter tensor takes part (convolutions, linear layers, BatchNorm affine
parameters, biases); BatchNorm running statistics are buffers and stay as they are.

Defaults: α = 10, λ = 1, batch 64 — the paper's values for every ResNet-18 / CIFAR task (found
by a TPE search over α ∈ [0.1, 100], λ ∈ [0.1, 5]; ViT used α = 5 class-wise, PinsFaceRecognition
α = 50, λ = 0.1). Smaller datasets may override them in the class's `presets`.

Batch order (SPEC §3) follows the reference script of the scenario kind (`full_order=None`,
ORDER_BY_KIND). Its full-class script computes I_D over the training data in its stored order,
retain then forget, each class by class (stable within a class), unshuffled and un-augmented,
so almost every batch holds one class: `"sorted"`, used for class / classes forgetting. Its
random-forgetting script draws forget and retain with `random_split`, so the same unshuffled
concatenation (retain, then forget) is in a random order and its batches mix classes:
`"mixed"` (a seeded permutation of retain, then one of forget), used for random / subset
forgetting (a subset forget set is a random draw inside classes, as random forgetting is one
over all of them; the reference's sub-class script forgets whole sub-classes, which mubench
has no kind for). Before version 3 every kind used `"sorted"`, which on random forgetting made
I_D so large that almost no weight was selected. An importance is the squared gradient of a
batch-mean loss, averaged over batches — not per-sample squared gradients — so it depends on
which samples share a batch: gradients of a fitted model partly cancel within a mixed-class
batch, which shrinks I_D and makes α = 10 dampen far more weights. `"shuffled"` (one seeded
shuffle of forget ∪ retain) is the order of version 1. The forget pass is shuffled (one class
for class forgetting either way). In the mixed order the forget samples fill I_D's last
batches, so I_D is at least about p·I_f for a forget fraction p and nothing is selected unless
α < about 1/p: the paper's α = 10 was used with 100 forget images of CIFAR-10's 50,000, and
dampens nothing on a 10% forget set. Measured numbers: docs/adding-a-method.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mubench.params import Interval, Options, param
from mubench.predictor import Predictor, frozen_copy
from mubench.search import LogUniform
from mubench.training import Batch
from mubench.unlearning import Method, UnlearnTask, register_method

FULL_ORDERS = ("sorted", "mixed", "shuffled")


@dataclass(frozen=True)
class SSDParams:
    """The paper's ResNet-18 / CIFAR values (α = 10, λ = 1) and its loaders' batch size."""

    # α spans the bracket between the last α that dampened so much RA collapsed and the first that
    # dampened nothing, at the default λ (benchmarks/search_pilot.py on tuning seeds, docs/tuning.md
    # "Search spaces"; it was [1, 100], of which α ≥ 10 changed nothing on digits).
    SEARCH: ClassVar[dict] = {"alpha": LogUniform(3.16, 10.0), "lam": LogUniform(0.1, 10.0)}

    alpha: float = param(10.0, Interval(0, None, "neither"),
                         "selection: dampen where forget importance > alpha x full-data importance")
    lam: float = param(1.0, Interval(0, None, "neither"),
                       "dampening: weight x min(lam x full / forget importance, 1)")
    batch_size: int = param(64, Interval(1, None), "mini-batch size of both importance passes")
    full_order: str | None = param(None, Options(FULL_ORDERS),
                                   "full-data batches: sorted (class by class), mixed (random_split order) or "
                                   "shuffled; None: by scenario kind, as the reference's scripts (class/classes "
                                   "sorted, random/subset mixed)")


# I_D's batch order when `full_order` is None: that of the reference script for the kind.
ORDER_BY_KIND = {"class": "sorted", "classes": "sorted", "random": "mixed", "subset": "mixed"}


def resolve_order(p: SSDParams, scenario_kind: str) -> SSDParams:
    """`p` with `full_order` set: the user's value, else ORDER_BY_KIND of the scenario kind."""
    if p.full_order is not None:
        return p
    return dataclasses.replace(p, full_order=ORDER_BY_KIND[scenario_kind])


def class_sorted_batches(task: UnlearnTask, batch_size: int) -> Iterable[Batch]:
    """Unshuffled, un-augmented batches of retain then forget, each sorted by class (stable)."""
    for x, y in ((task.retain_x, task.retain_y), (task.forget_x, task.forget_y)):
        order = torch.sort(y, stable=True).indices
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield Batch(task.prepare(x[idx]), y[idx], None, "union")


def random_split_batches(task: UnlearnTask, batch_size: int, generator: torch.Generator) -> Iterable[Batch]:
    """Unshuffled, un-augmented batches of retain then forget, each in a seeded random order:
    the reference random script's full-data loader over its two `random_split` subsets."""
    for x, y in ((task.retain_x, task.retain_y), (task.forget_x, task.forget_y)):
        order = torch.randperm(len(y), generator=generator).to(y.device)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield Batch(task.prepare(x[idx]), y[idx], None, "union")


def fisher_diagonal(model: nn.Module, batches: Iterable[Batch]) -> list[torch.Tensor]:
    """Mean over mini-batches of the squared gradient of the batch's mean CE, per parameter.

    One pass, batched. The model must be in eval mode: BatchNorm then uses the original's
    running statistics, so the gradients are those of the deployed function (not of per-batch
    normalisation, which would make them depend on which samples share a batch), and the
    running statistics are not updated by the pass.
    """
    params = list(model.parameters())
    importance = [torch.zeros_like(p) for p in params]
    n_batches = 0
    for batch in batches:
        loss = nn.functional.cross_entropy(model(batch.x), batch.y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for imp, g in zip(importance, grads, strict=True):
            if g is not None:
                imp.add_(g.square())
        n_batches += 1
    return [imp / max(n_batches, 1) for imp in importance]


def dampen_(params: list[torch.Tensor], full: list[torch.Tensor], forget: list[torch.Tensor],
            alpha: float, lam: float) -> int:
    """Multiply selected weights in place by min(λ·full/forget, 1); returns how many were selected."""
    selected = 0
    with torch.no_grad():
        for p, imp_d, imp_f in zip(params, full, forget, strict=True):
            chosen = imp_f > alpha * imp_d  # implies imp_f > 0: where() drops the 0/0 of the others
            p.mul_(torch.where(chosen, (lam * imp_d / imp_f).clamp(max=1.0), 1.0))
            selected += int(chosen.sum())
    return selected


@register_method("ssd")
class SSD(Method):
    """Selective Synaptic Dampening: scale down parameters far more important to the forget set."""

    Params = SSDParams
    version = "3"  # 2: I_D over class-sorted batches by default; 3: I_D's order by scenario kind
    label, color, rank = "SSD", "#b8860b", 70
    test_params = {"batch_size": 128}

    @classmethod
    def resolved(cls, params, scenario_kind: str):
        return resolve_order(params, scenario_kind)

    def unlearn(self, task: UnlearnTask) -> Predictor:
        p = resolve_order(self.params, task.scenario.kind)
        model = frozen_copy(task.original).to(task.device).eval()
        params = [w.requires_grad_(True) for w in model.parameters()]
        forget = fisher_diagonal(model, task.batches("forget", p.batch_size, task.generator(1), augment=False))
        if p.full_order == "sorted":
            full_batches = class_sorted_batches(task, p.batch_size)
        elif p.full_order == "mixed":
            full_batches = random_split_batches(task, p.batch_size, task.generator(2))
        else:
            full_batches = task.batches("union", p.batch_size, task.generator(2), augment=False)
        full = fisher_diagonal(model, full_batches)
        selected = dampen_(params, full, forget, p.alpha, p.lam)
        for w in params:
            w.requires_grad_(False)
        total = sum(w.numel() for w in params)
        return Predictor(model, info={"dampened": selected, "dampened_fraction": selected / total,
                                      "full_order": p.full_order})
