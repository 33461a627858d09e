"""Evaluate a Predictor on a split: one forward pass per part (outputs.py), then every metric
from those outputs (metrics.py).

Evaluation never runs method code (STYLE lesson 5): it calls `predictor.logits` on
un-augmented images. The controls SPEC §5 asks of an input-based predictor (x ↦ x + δ) — the
forget set with δ removed (`ua_bypass`) and forget / retain / test with a random δ of the same
ℓ2 norm (`*_noise`: is the effect just noise?) — are `ControlViews`, computed only when a
metric that needs them asks, so evaluation without them runs no extra forward pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .attacks.svc import FitAhead, MIAConfig
from .data import ImageData
from .metrics import (
    MIA_EXTRAS,
    MetricContext,
    avg_gap,
    compute_metrics,
    metric_value,
    select_metrics,
)
from .outputs import (
    PARTS,
    PartOutputs,
    SplitOutputs,
    cached_outputs,
    forward_split,
    load_outputs,
    save_outputs,
)
from .predictor import Predictor
from .scenarios import Split

__all__ = ["PARTS", "PartOutputs", "SplitOutputs", "avg_gap", "cached_outputs", "evaluate", "forward_split",
           "load_outputs", "noise_like", "save_outputs", "storage_cost"]

NOISE_PARTS = ("forget", "retain", "test")  # what the noise control's UA, RA, TA and MIA read

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


@dataclass
class ControlViews:
    """The control outputs of an input-based predictor, each computed on first use."""

    predictor: Predictor
    data: ImageData
    split: Split
    device: torch.device
    seed: int
    batch_size: int | None = None
    _cache: dict = field(default_factory=dict)

    @property
    def bypass(self) -> SplitOutputs:
        """The forget set with the input transform removed."""
        if "bypass" not in self._cache:
            from . import outputs

            self._cache["bypass"] = outputs.forward_split(self.predictor.with_delta(None), self.data, self.split,
                                                          self.device, self.batch_size, parts=("forget",))
        return self._cache["bypass"]

    @property
    def noise(self) -> SplitOutputs:
        """Forget / retain / test with a seeded random δ of the same ℓ2 norm."""
        if "noise" not in self._cache:
            from . import outputs

            noisy = self.predictor.with_delta(noise_like(self.predictor.delta, self.seed))
            self._cache["noise"] = outputs.forward_split(noisy, self.data, self.split, self.device,
                                                         self.batch_size, parts=NOISE_PARTS)
        return self._cache["noise"]


def evaluate(predictor: Predictor, data: ImageData, split: Split, *, device: torch.device,
             original: nn.Module | None = None, reference: Mapping[str, Any] | None = None,
             reference_outputs: SplitOutputs | None = None, mia: MIAConfig | None = None,
             controls: bool = True, extra_mia: bool = False, metrics: Iterable[str] = (),
             seed: int = 0, batch_size: int | None = None, outputs: SplitOutputs | None = None,
             fit_ahead: FitAhead | None = None) -> dict[str, Any]:
    """All metrics of `predictor` on `split` as a flat dict (field names of docs/records.md).

    original: the model the method started from; changed parameters are counted against it
        (without it a model-based predictor's cost is unknown and left out).
    reference: Retrain's metrics of the same split and seed → `avg_gap`.
    reference_outputs: Retrain's outputs (`forward_split`) → `kl_forget`, `kl_test`.
    mia: the attack's configuration (None: SPEC §5's, `MIAConfig()`).
    controls: for input-based predictors, add `ua_bypass` and `ua/ra/ta/mia_noise`.
    extra_mia / metrics: also compute the extra MIA features / any other named metrics.
    seed: seeds the random δ of the noise control.
    outputs: the predictor's outputs if already computed (e.g. from the store).
    fit_ahead: the `attacks.svc.FitAhead` that was `outputs`' `on_part` callback: MIA-Efficacy
        takes its fit where it was started on the very features it fits on (no number changes).
    Values are floats in % (KL in nats, cost in counts / bytes); None where undefined
    (`ta_forgotten` without forgotten classes).
    """
    if outputs is None:
        from . import outputs as out

        outputs = out.forward_split(predictor, data, split, device, batch_size)
    views = (ControlViews(predictor, data, split, device, seed, batch_size)
             if controls and predictor.is_input_based else None)
    ctx = MetricContext(outputs=outputs, mia=mia or MIAConfig(), reference=reference, reference_outputs=reference_outputs,
                        controls=views, storage=storage_cost(predictor, original), fit_ahead=fit_ahead)
    extra = [*(MIA_EXTRAS if extra_mia else ()), *metrics]
    names = select_metrics(ctx, extra)
    results = compute_metrics(ctx, names)
    return {name: metric_value(results[name]) for name in names}
