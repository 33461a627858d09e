"""ℓ1-sparse unlearning: fine-tune on the retain set with a decaying ℓ1 penalty on the weights.

Source: Jia et al., "Model Sparsity Can Simplify Machine Unlearning" (NeurIPS 2023), the OPTML
sparse-unlearning code. Loss: CE on retain batches + γ_t·‖θ‖₁ over all parameters (BatchNorm
affine parameters and biases included, as in the reference), with γ_t = γ·(1 − t/T) for epoch
t = 0 … T−1 of T: the penalty sparsifies early and shrinks every epoch, but never reaches 0
inside the run — the last epoch still uses γ·(1 − (T−1)/T) = γ/T (0.1γ at T = 10).
Defaults (SPEC §3, CIFAR-10): SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, 10
epochs, γ = 1e-4 (the paper tunes γ per scenario), training augmentation on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mubench.params import Interval, param
from mubench.search import LogUniform
from mubench.training import Batch
from mubench.unlearning import EpochMethod, EpochParams, register_method


@dataclass(frozen=True)
class L1SparseParams(EpochParams):
    """FT's SGD defaults plus the initial strength of the ℓ1 penalty."""

    SEARCH: ClassVar[dict] = {**EpochParams.SEARCH, "gamma": LogUniform(1e-5, 1e-3)}

    gamma: float = param(1e-4, Interval(0, None), "initial l1 weight; epoch t of T uses gamma x (1 - t/T)")


def l1_norm(model: nn.Module) -> torch.Tensor:
    return sum(p.abs().sum() for p in model.parameters())


@register_method("l1_sparse")
class L1Sparse(EpochMethod):
    """Fine-tune with an ℓ1 penalty γ_t·‖θ‖₁, γ_t = γ·(1 − t/T): linear from γ down to γ/T."""

    Params = L1SparseParams
    label, color, rank = "l1-sparse", "#9467bd", 40
    presets = {"digits": {"*": {"batch_size": 32}}, "fashion-mnist": {"*": {"batch_size": 64}}}
    test_params = {"epochs": 1, "batch_size": 128}

    def gamma_at(self, epoch: int) -> float:
        return self.params.gamma * (1 - epoch / self.params.epochs)

    def loss(self, model: nn.Module, batch: Batch, epoch: int):
        ce = nn.functional.cross_entropy(model(batch.x), batch.y)
        return ce + self.gamma_at(epoch) * l1_norm(model)
