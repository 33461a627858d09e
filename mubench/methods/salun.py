"""SalUn: random-label unlearning restricted to the most forget-salient weights.

Source: Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency"
(ICLR 2024) and its code. Mask: one pass over the forget set with the model in eval mode,
saliency = |∂(−CE on forget)/∂θ|, ranked globally over all parameters; the top `sparsity`
fraction is updated, the rest is frozen. Then RL (mubench/methods/random_label.py) on those weights.
Defaults (SPEC §3, CIFAR-10): lr 0.013, 10 epochs, sparsity 0.5, SGD momentum 0.9, weight decay
5e-4, batch 256, training augmentation on.

What mubench does (stated as such: the reference code changed in Feb 2026 and mubench has
not verified its current masking or saliency reduction):
- `mask_mode="hard"` (default) truly freezes unmasked weights: after every step they are put
  back to their original values, so weight decay and momentum cannot move them (SPEC §3).
  `mask_mode="grad"` only multiplies gradients by the mask, so SGD's weight decay and momentum
  still drift the unmasked weights. BatchNorm running statistics are buffers, not parameters,
  and are updated by training in both modes.
- The saliency pass sums per-sample losses over un-augmented forget images, so the ranking
  equals that of the mean loss over the whole forget set.
- Ties in the ranking are broken by parameter order (stable sort), so masks are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mubench.params import Interval, Options, param
from mubench.unlearning import UnlearnTask, lr_param, register_method

from .random_label import RandomLabel, RandomLabelParams

MASK_MODES = ("hard", "grad")


@dataclass(frozen=True)
class SalUnParams(RandomLabelParams):
    """RL's defaults with SalUn's lr, plus the mask's size and how it is enforced."""

    lr: float = lr_param(0.013)
    sparsity: float = param(0.5, Interval(0, 1, "right"), "fraction of parameters updated (most salient first)")
    mask_mode: str = param("hard", Options(MASK_MODES),
                           "hard: unmasked weights frozen exactly; grad: gradients masked only (reference)")


def saliency_mask(model: nn.Module, task: UnlearnTask, fraction: float, batch_size: int) -> list[torch.Tensor]:
    """Boolean masks (one per parameter) of the top `fraction` of |∂(−CE on forget)/∂θ|.

    `model` is the method's training copy: its parameters are switched to requires_grad.
    """
    params = [p.requires_grad_(True) for p in model.parameters()]
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    for batch in task.batches("forget", batch_size, task.generator(1), augment=False):
        loss = -nn.functional.cross_entropy(model(batch.x), batch.y, reduction="sum")
        loss.backward()
    scores = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).abs().flatten()
                        for p in params])
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    keep = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    k = round(fraction * scores.numel())
    keep[torch.argsort(scores, descending=True, stable=True)[:k]] = True
    return [m.view_as(p) for m, p in zip(keep.split([p.numel() for p in params]), params, strict=True)]


@register_method("salun")
class SalUn(RandomLabel):
    """SalUn: random labels on the top-saliency weights only (gradient-based weight saliency)."""

    Params = SalUnParams
    label, color, rank = "SalUn", "#8c564b", 50
    presets = {"digits": {"*": {"batch_size": 32}}, "fashion-mnist": {"*": {"batch_size": 64}}}
    test_params = {"epochs": 1, "batch_size": 128}

    def setup(self, task: UnlearnTask, model: nn.Module) -> None:
        self._params = list(model.parameters())
        self._masks = saliency_mask(model, task, self.params.sparsity, self.params.batch_size)
        self._frozen = [p.detach().clone() for p in self._params]
        self._hooks = []
        if self.params.mask_mode == "grad":
            self._hooks = [p.register_hook(lambda g, m=m: g * m) for p, m in zip(self._params, self._masks, strict=True)]

    def param_groups(self, model: nn.Module):
        if self.params.mask_mode == "grad":
            return self._params
        # Hard mode: fully frozen tensors never enter the optimiser (no momentum buffers for them).
        return [p for p, m in zip(self._params, self._masks, strict=True) if m.any()]

    def after_step(self, model: nn.Module) -> None:
        if self.params.mask_mode == "hard":
            with torch.no_grad():
                for p, m, p0 in zip(self._params, self._masks, self._frozen, strict=True):
                    p.copy_(torch.where(m, p, p0))

    def info(self) -> dict:
        masked = sum(int(m.sum()) for m in self._masks)
        return {"mask_size": masked, "mask_fraction": masked / sum(m.numel() for m in self._masks)}

    def teardown(self) -> None:
        for handle in getattr(self, "_hooks", []):
            handle.remove()
        self._hooks = []
