"""Evaluate a Predictor on a split: one forward pass per part, then every metric from the cache.

Evaluation never runs method code (STYLE lesson 5): it calls `predictor.logits` on
un-augmented images (`data.eval_view`), in batches sized for the device
(`training.eval_batch_size`), once for each of forget / retain / test / test_forgotten, and
hands the logits to the metric registry (`mubench.metrics`). For an
input-based predictor (x ↦ x + δ) it also computes the two controls SPEC §5 asks for: the
forget set with δ removed (`ua_bypass`) and forget / retain / test with a random δ of the same
ℓ2 norm (`*_noise`: is the effect just noise?).

`save_outputs` / `load_outputs` turn outputs into plain tensors for the Store, so the runner
can keep Retrain's outputs and compare every method of the cell with them (KL).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .data import ImageData, eval_view
from .metrics import (
    MIA_EXTRAS,
    MetricContext,
    avg_gap,
    compute_metrics,
    metric_value,
    select_metrics,
)
from .mia import MIAConfig
from .predictor import Predictor
from .scenarios import Split

__all__ = ["PARTS", "PartOutputs", "SplitOutputs", "avg_gap", "evaluate", "forward_split", "load_outputs",
           "noise_like", "save_outputs", "storage_cost"]

PARTS = ("forget", "retain", "test", "test_forgotten")
NOISE_PARTS = ("forget", "retain", "test")  # what the noise control's UA, RA, TA and MIA read


@dataclass(frozen=True)
class PartOutputs:
    """Logits (N, K) float32 on the CPU and labels (N,) int64 of one part of a split."""

    logits: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class SplitOutputs:
    """A predictor's outputs on each part of a split (None: that part was not computed)."""

    forget: PartOutputs | None = None
    retain: PartOutputs | None = None
    test: PartOutputs | None = None  # the split's test indices (class-wise: remaining classes)
    test_forgotten: PartOutputs | None = None  # empty unless class-wise


def _part_data(data: ImageData, split: Split, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = (data.train_x, data.train_y) if part in ("forget", "retain") else (data.test_x, data.test_y)
    idx = torch.from_numpy(getattr(split, part))
    return x[idx], y[idx]


def forward_split(predictor: Predictor, data: ImageData, split: Split, device: torch.device,
                  batch_size: int | None = None, parts: Iterable[str] = PARTS) -> SplitOutputs:
    """One un-augmented forward pass of `predictor` over each requested part of `split`."""
    prepare = functools.partial(eval_view, data)
    out = {}
    for part in parts:
        x, y = _part_data(data, split, part)
        logits = predictor.logits(x, device, batch_size=batch_size, prepare=prepare)
        if len(y) == 0:
            logits = torch.zeros(0, data.num_classes)
        out[part] = PartOutputs(logits.float().cpu(), y.long().cpu())
    return SplitOutputs(**out)


def noise_like(delta: torch.Tensor, seed: int) -> torch.Tensor:
    """A random δ with the same shape and ℓ2 norm as `delta` (direction uniform on the sphere:
    a normalised Gaussian), seeded so the control is reproducible."""
    generator = torch.Generator().manual_seed(int(seed))
    direction = torch.randn(delta.shape, generator=generator, dtype=torch.float64)
    norm = torch.linalg.vector_norm(delta.detach().double().cpu())
    return (direction * (norm / torch.linalg.vector_norm(direction))).to(torch.float32)


def storage_cost(predictor: Predictor, original: nn.Module | None) -> tuple[int, int] | None:
    """(parameters changed, bytes), or None when they cannot be known: a model-based predictor
    that does not state its count, evaluated without the original to compare with."""
    if original is None and predictor.params_changed is None and not predictor.is_input_based:
        return None
    return predictor.storage(original)


def evaluate(predictor: Predictor, data: ImageData, split: Split, *, device: torch.device,
             original: nn.Module | None = None, reference: Mapping[str, Any] | None = None,
             reference_outputs: SplitOutputs | None = None, mia: MIAConfig | None = None,
             controls: bool = True, extra_mia: bool = False, metrics: Iterable[str] = (),
             seed: int = 0, batch_size: int | None = None, outputs: SplitOutputs | None = None) -> dict[str, Any]:
    """All metrics of `predictor` on `split` as a flat dict (field names of docs/records.md).

    original: the model the method started from; changed parameters are counted against it
        (without it a model-based predictor's cost is unknown and left out).
    reference: Retrain's metrics of the same split and seed → `avg_gap`.
    reference_outputs: Retrain's outputs (`forward_split`) → `kl_forget`, `kl_test`.
    mia: the attack's configuration (None: SPEC §5's, `MIAConfig()`).
    controls: for input-based predictors, add `ua_bypass` and `ua/ra/ta/mia_noise`.
    extra_mia / metrics: also compute the extra MIA features / any other named metrics.
    seed: seeds the random δ of the noise control.
    outputs: the predictor's outputs if already computed (e.g. Retrain's, kept for KL).
    Values are floats in % (KL in nats, cost in counts / bytes); None where undefined
    (`ta_forgotten` without forgotten classes).
    """
    if outputs is None:
        outputs = forward_split(predictor, data, split, device, batch_size)
    bypass = noise = None
    if controls and predictor.is_input_based:
        bypass = forward_split(predictor.with_delta(None), data, split, device, batch_size, parts=("forget",))
        noisy = predictor.with_delta(noise_like(predictor.delta, seed))
        noise = forward_split(noisy, data, split, device, batch_size, parts=NOISE_PARTS)
    ctx = MetricContext(outputs=outputs, mia=mia or MIAConfig(), reference=reference, reference_outputs=reference_outputs,
                        bypass=bypass, noise=noise, storage=storage_cost(predictor, original))
    extra = [*(MIA_EXTRAS if extra_mia else ()), *metrics]
    names = select_metrics(ctx, extra)
    results = compute_metrics(ctx, names)
    return {name: metric_value(results[name]) for name in names}


def cached_outputs(store, key: str, predictor: Predictor, data: ImageData, split: Split,
                   device: torch.device) -> SplitOutputs:
    """The predictor's outputs on every part, from the store (kind "outputs") or computed and
    stored now: most metrics added after a run need no forward pass."""
    state = store.load_artifact("outputs", key)
    if state is not None:
        outputs = load_outputs(state)
        if all(getattr(outputs, part) is not None for part in PARTS):
            return outputs
    outputs = forward_split(predictor, data, split, device)
    store.save_artifact("outputs", key, save_outputs(outputs))
    return outputs


# ---------------------------------------------------------------------------------------------
# Outputs in the Store (plain tensors: loadable with torch.load(weights_only=True))


def save_outputs(outputs: SplitOutputs) -> dict[str, torch.Tensor]:
    """`{"forget.logits": …, "forget.labels": …, …}` for the parts that were computed."""
    state = {}
    for part in PARTS:
        po = getattr(outputs, part)
        if po is not None:
            state[f"{part}.logits"] = po.logits.detach().cpu().float().contiguous()
            state[f"{part}.labels"] = po.labels.detach().cpu().long().contiguous()
    return state


def load_outputs(state: Mapping[str, torch.Tensor]) -> SplitOutputs:
    """The inverse of `save_outputs`."""
    parts = {part: PartOutputs(state[f"{part}.logits"], state[f"{part}.labels"])
             for part in PARTS if f"{part}.logits" in state}
    return SplitOutputs(**parts)
