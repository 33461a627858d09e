"""Predictor: what every method returns and the only thing evaluation calls.

A Predictor is a frozen model plus an optional input transform: identity for model-based
methods, x ↦ x + δ for forget vectors (added before the model's normalisation layer, without
clipping unless asked). It also says what the method costs to store.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .device import eval_batch_size

BYTES_PER_VALUE = 4  # stored as float32


@dataclass
class Predictor:
    model: nn.Module
    delta: torch.Tensor | None = None  # (C, H, W) input perturbation, or None
    clamp: bool = False  # clip x + δ to [0, 1] (off in the paper)
    params_changed: int | None = None  # None → evaluation counts parameters differing from the original
    info: dict = field(default_factory=dict)  # method-specific facts for the record (weights, epochs run…)

    def __post_init__(self):
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if self.delta is not None:
            self.delta = self.delta.detach()

    @property
    def is_input_based(self) -> bool:
        return self.delta is not None

    def transform(self, x: torch.Tensor, delta: torch.Tensor | None = None) -> torch.Tensor:
        d = self.delta if delta is None else delta
        if d is None:
            return x
        out = x + d.to(x.device, x.dtype)
        return out.clamp(0, 1) if self.clamp else out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.transform(x))

    def with_delta(self, delta: torch.Tensor | None) -> Predictor:
        """The same model with another input transform (bypass and noise controls)."""
        return Predictor(self.model, delta, self.clamp, self.params_changed, dict(self.info))

    @torch.inference_mode()
    def logits(self, x: torch.Tensor, device: torch.device, batch_size: int | None = None,
               prepare=None) -> torch.Tensor:
        """Logits for all of `x` on `device` (float32, on CPU), in batches of `batch_size`
        (None: the device's `device.eval_batch_size`, small on CPU, large on GPUs)."""
        batch_size = batch_size or eval_batch_size(device)
        self.model.to(device).eval()
        outs = []
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device)
            xb = prepare(xb) if prepare is not None else xb.float()
            outs.append(self(xb).float().cpu())
        if not outs:
            return torch.zeros(0, 0)
        return torch.cat(outs)

    def storage(self, original: nn.Module | None = None) -> tuple[int, int]:
        """(parameters changed vs the original, bytes to store them)."""
        if self.params_changed is not None:
            n = self.params_changed
        else:
            n = count_changed_parameters(original, self.model) if original is not None else 0
            if self.delta is not None:
                n += self.delta.numel()
        return n, n * BYTES_PER_VALUE


def count_changed_parameters(original: nn.Module, model: nn.Module) -> int:
    """Number of parameter entries that differ between two models of the same architecture."""
    if original is model:
        return 0
    before = dict(original.named_parameters())
    changed = 0
    for name, p in model.named_parameters():
        ref = before.get(name)
        if ref is None or ref.shape != p.shape:
            changed += p.numel()
        else:
            changed += int((ref.detach().cpu() != p.detach().cpu()).sum())
    return changed


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy to train, so that the original model is never modified in place."""
    return copy.deepcopy(model)


# ---------------------------------------------------------------------------------------------
# Predictors as stored artifacts (plain tensors: loadable with torch.load(weights_only=True))

SPARSE_FRACTION = 1 / 3  # below this changed fraction a tensor is stored as (index, value) pairs


def predictor_state(predictor: Predictor, original: nn.Module) -> dict[str, torch.Tensor]:
    """What to store of a predictor: δ for an input transform, and the model as a diff against
    `original` — tensors that did not change are left out, sparsely changed ones are stored as
    flat (index, value) pairs (an int64 index and a value cost 3× a dense float32 entry, hence
    `SPARSE_FRACTION`), the others whole. Retrain's fresh model is thus stored whole and SSD's
    few dampened weights as pairs."""
    state: dict[str, torch.Tensor] = {}
    if predictor.delta is not None:
        state["delta"] = predictor.delta.detach().cpu().float().contiguous()
    before = original.state_dict() if predictor.model is not original else {}
    for name, value in predictor.model.state_dict().items():
        value = value.detach().cpu()
        ref = before.get(name) if predictor.model is not original else value
        if ref is not None and ref.shape == value.shape and ref.dtype == value.dtype:
            changed = (ref.detach().cpu() != value).flatten()
            n = int(changed.sum())
            if n == 0:
                continue
            if n < SPARSE_FRACTION * value.numel():
                idx = changed.nonzero().flatten()
                state[f"model.{name}.idx"] = idx
                state[f"model.{name}.val"] = value.flatten()[idx].contiguous()
                continue
        state[f"model.{name}"] = value.contiguous()
    return state


def predictor_from_state(state: dict[str, torch.Tensor], original: nn.Module, clamp: bool = False,
                         params_changed: int | None = None, info: dict | None = None) -> Predictor:
    """The inverse of `predictor_state`: a copy of `original` with the stored changes applied."""
    model = frozen_copy(original)
    if any(k.startswith("model.") for k in state):
        current = model.state_dict()
        with torch.no_grad():
            for key, value in state.items():
                if not key.startswith("model.") or key.endswith(".val"):
                    continue
                if key.endswith(".idx"):
                    name = key[len("model."):-len(".idx")]
                    target = current[name]
                    flat = target.detach().clone().flatten()
                    flat[value] = state[f"model.{name}.val"].to(flat.dtype)
                    target.copy_(flat.view_as(target))
                else:
                    current[key[len("model."):]].copy_(value)
    return Predictor(model, state.get("delta"), clamp, params_changed, dict(info or {}))
