"""Gradient ascent (GA): maximise cross-entropy on the forget set only.

Source: Thudi et al., "Unrolling SGD" (EuroS&P 2022), as run in the OPTML sparse-unlearning
and SalUn code. Loss: −CE(f(x), y) on forget batches (the retain set is never seen, so nothing
holds RA up: too large an lr or too many epochs destroys the model). Defaults (SPEC §3,
CIFAR-10): SGD lr 1e-4 (the references tune it in 1e-4…1e-3 per scenario), momentum 0.9,
weight decay 5e-4, batch 256, 5 epochs over the forget set, training augmentation on. Same as
the reference code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from mubench.search import Choice, LogUniform
from mubench.training import Batch
from mubench.unlearning import EpochMethod, EpochParams, epochs_param, lr_param, register_method


@dataclass(frozen=True)
class GradAscentParams(EpochParams):
    """GA: a small lr and few epochs, because the loss is unbounded."""

    SEARCH: ClassVar[dict] = {"lr": LogUniform(1e-5, 1e-2), "epochs": Choice((3, 5, 10))}

    lr: float = lr_param(1e-4)
    epochs: int = epochs_param(5, "passes over the forget set")


@register_method("grad_ascent")
class GradAscent(EpochMethod):
    """Gradient ascent: maximise CE on the forget set."""

    Params = GradAscentParams
    label, color, rank = "GA", "#ff7f0e", 20
    presets = {"digits": {"*": {"batch_size": 64}}, "fashion-mnist": {"*": {"batch_size": 64}}}
    test_params = {"epochs": 2, "batch_size": 64, "lr": 1e-3}

    def batches(self, task, epoch, generator):
        return task.batches("forget", self.params.batch_size, generator)

    def loss(self, model: nn.Module, batch: Batch, epoch: int):
        return -nn.functional.cross_entropy(model(batch.x), batch.y)
