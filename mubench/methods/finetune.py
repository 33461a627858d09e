"""Fine-tune (FT): keep training the original on the retain set only.

Source: Golatkar et al., "Eternal Sunshine of the Spotless Net" (CVPR 2020) baseline, as run in
the OPTML sparse-unlearning code (Jia et al., NeurIPS 2023). Loss: CE on the retain set; the
forget set is forgotten only by catastrophic forgetting. Defaults (SPEC §3, CIFAR-10): SGD lr
0.01, momentum 0.9, weight decay 5e-4, batch 256, 10 epochs, constant lr, training augmentation
on. Same as the reference code.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from mubench.training import Batch
from mubench.unlearning import EpochMethod, EpochParams, register_method


@dataclass(frozen=True)
class FinetuneParams(EpochParams):
    """FT uses the shared SGD defaults unchanged (lr 0.01, 10 epochs over the retain set)."""


@register_method("finetune")
class Finetune(EpochMethod):
    """Fine-tune on the retain set (CE); forgetting comes from catastrophic forgetting."""

    Params = FinetuneParams
    label, color, rank = "FT", "#1f77b4", 10
    presets = {"digits": {"*": {"batch_size": 32}}, "fashion-mnist": {"*": {"batch_size": 64}}}
    test_params = {"epochs": 1, "batch_size": 128}

    def loss(self, model: nn.Module, batch: Batch, epoch: int):
        return nn.functional.cross_entropy(model(batch.x), batch.y)
