"""Random labels (RL): relabel the forget set at random and train on it, then on the retain set.

Source: Golatkar et al. (CVPR 2020) / Hayase et al., as run in the SalUn code (Fan et al., ICLR
2024), whose RL loop is reproduced by `order="forget_then_retain"`. Loss: CE with fresh random
labels on forget batches, CE with true labels on retain batches. Defaults (SPEC §3, CIFAR-10):
SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, 10 epochs, training augmentation on.

Random labels are uniform over all K classes, as SPEC §3 and the reference code's
`randint(0, K)` draw them, so about 1/K of the forget set keeps its true label in any one
epoch; `exclude_true=true` draws from the K−1 other classes instead. Labels are drawn afresh
every epoch from the task's seeded generator. `order="shuffled_union"` mixes the relabelled
forget samples and the retain samples in the same shuffled batches (one pass over the union per
epoch) instead of a forget pass followed by a retain pass.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from mubench.params import Options, param
from mubench.training import Batch
from mubench.unlearning import EpochMethod, EpochParams, UnlearnTask, register_method

ORDERS = ("forget_then_retain", "shuffled_union")


@dataclass(frozen=True)
class RandomLabelParams(EpochParams):
    """RL: the shared SGD defaults plus how forget and retain batches are interleaved."""

    order: str = param("forget_then_retain", Options(ORDERS),
                       "a forget pass then a retain pass per epoch, or one pass over their shuffled union")
    exclude_true: bool = param(False, None, "draw random labels from the K-1 wrong classes only")


def random_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator,
                  exclude_true: bool = False) -> torch.Tensor:
    """Uniform random labels for `y` (from the K−1 other classes when `exclude_true`)."""
    if exclude_true:
        shift = torch.randint(1, num_classes, y.shape, generator=generator, device=generator.device)
        return (y + shift.to(y.device)) % num_classes
    return torch.randint(num_classes, y.shape, generator=generator, device=generator.device).to(y.device)


@register_method("random_label")
class RandomLabel(EpochMethod):
    """Random labels: CE on the forget set with fresh random labels, then CE on the retain set."""

    Params = RandomLabelParams
    label, color, rank = "RL", "#2ca02c", 30
    presets = {"digits": {"*": {"batch_size": 32}}, "fashion-mnist": {"*": {"batch_size": 64}}}
    test_params = {"epochs": 1, "batch_size": 128}

    def batches(self, task: UnlearnTask, epoch: int, generator: torch.Generator):
        p = self.params
        labels = random_labels(task.forget_y, task.num_classes, generator, p.exclude_true)
        if p.order == "shuffled_union":
            return task.batches("union", p.batch_size, generator,
                                labels=torch.cat([labels, task.retain_y]))
        return itertools.chain(task.batches("forget", p.batch_size, generator, labels=labels),
                               task.batches("retain", p.batch_size, generator))

    def loss(self, model: nn.Module, batch: Batch, epoch: int):
        return nn.functional.cross_entropy(model(batch.x), batch.y)
