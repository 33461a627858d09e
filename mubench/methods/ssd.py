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
α = 50, λ = 0.1). Smaller datasets override them in mubench/presets.py.

Where we differ from the reference code: both passes use seeded, shuffled batches of
un-augmented images (the reference also reads its training data without augmentation, but
unshuffled: the full set as retain then forget, in its class-by-class order). As in the
reference, an importance is the squared gradient of a batch-mean loss, averaged over batches —
not per-sample squared gradients — so it depends on the batch size and on which samples share
a batch: gradients of a fitted model partly cancel within a mixed batch and not within a
one-class forget batch, which is why class forgetting on Fashion-MNIST needs α = 100.
(Per-sample squared gradients were tried and are no steadier: with them I_f/I_D cannot exceed
|D|/|D_f|, 10 for one class of ten, so α = 10 selects nothing at all there.)

α is fragile on small, fully fitted models. Digits class:0 with the paper's values: seeds 1 and
2 dampen 1.3% of the parameters (UA 100, RA 99.9 / 99.8, gap 0.39 / 0.23); seed 0 dampens none
(UA 0, gap 50.3), because that original barely has a loss on class 0. Random forgetting barely
selects anything (gap 0.85-1.19, the untouched original's). 0.2-0.6 s per job. Details and the
Fashion-MNIST numbers: the presets' comments in mubench/presets.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mubench.params import Interval, param
from mubench.predictor import Predictor, frozen_copy
from mubench.unlearning import Method, UnlearnTask, register_method


@dataclass(frozen=True)
class SSDParams:
    """The paper's ResNet-18 / CIFAR values (α = 10, λ = 1) and its loaders' batch size."""

    alpha: float = param(10.0, Interval(0, None, "neither"),
                         "selection: dampen where forget importance > alpha x full-data importance")
    lam: float = param(1.0, Interval(0, None, "neither"),
                       "dampening: weight x min(lam x full / forget importance, 1)")
    batch_size: int = param(64, Interval(1, None), "mini-batch size of both importance passes")


def fisher_diagonal(model: nn.Module, task: UnlearnTask, part: str, batch_size: int,
                    generator: torch.Generator) -> list[torch.Tensor]:
    """Mean over mini-batches of the squared gradient of the batch's mean CE, per parameter.

    One pass, batched. The model must be in eval mode: BatchNorm then uses the original's
    running statistics, so the gradients are those of the deployed function (not of per-batch
    normalisation, which would make them depend on which samples share a batch), and the
    running statistics are not updated by the pass.
    """
    params = list(model.parameters())
    importance = [torch.zeros_like(p) for p in params]
    n_batches = 0
    for batch in task.batches(part, batch_size, generator, augment=False):
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
    label, color, rank = "SSD", "#b8860b", 70
    presets = {"fashion-mnist": {"class": {"alpha": 100.0}}}  # why: docs/adding-a-method.md
    test_params = {"batch_size": 128}

    def unlearn(self, task: UnlearnTask) -> Predictor:
        p = self.params
        model = frozen_copy(task.original).to(task.device).eval()
        params = [w.requires_grad_(True) for w in model.parameters()]
        forget = fisher_diagonal(model, task, "forget", p.batch_size, task.generator(1))
        full = fisher_diagonal(model, task, "union", p.batch_size, task.generator(2))
        selected = dampen_(params, full, forget, p.alpha, p.lam)
        for w in params:
            w.requires_grad_(False)
        total = sum(w.numel() for w in params)
        return Predictor(model, info={"dampened": selected, "dampened_fraction": selected / total})
