"""NegGrad+ as a mubench plugin: `python -m mubench list methods --plugin examples/plugin_example.py`.

Source: Kurmanji et al., "Towards Unbounded Machine Unlearning" (NeurIPS 2023). Loss on each
shuffled batch of forget ∪ retain: α·CE on its retain samples − (1−α)·CE on its forget samples,
both summed and divided by the batch size. Defaults: the shared SGD settings (SPEC §3) with
α = 0.99 and 5 epochs; tune α and lr per scenario. Differs from the reference code, which pairs
a forget batch with a retain batch at each step, by drawing both from one mixed batch.
"""

from dataclasses import dataclass

import torch.nn.functional as F

from mubench.params import Interval, param
from mubench.unlearning import EpochMethod, EpochParams, epochs_param, register_method


@dataclass(frozen=True)
class NegGradPlusParams(EpochParams):
    alpha: float = param(0.99, Interval(0, 1), "weight of retain CE; 1 - alpha weighs the negated forget CE")
    epochs: int = epochs_param(5, "passes over forget ∪ retain")


@register_method("neggrad_plus")
class NegGradPlus(EpochMethod):
    """NegGrad+: descend CE on retain samples and ascend it on forget samples of the same batch."""

    Params = NegGradPlusParams
    test_params = {"epochs": 1, "batch_size": 128}  # what the contract tests run

    def batches(self, task, epoch, generator):
        return task.batches("union", self.params.batch_size, generator)  # batches carry .forget flags

    def loss(self, model, batch, epoch):
        ce = F.cross_entropy(model(batch.x), batch.y, reduction="none")
        forget = batch.forget.float()
        return (self.params.alpha * ce * (1 - forget) - (1 - self.params.alpha) * ce * forget).mean()
