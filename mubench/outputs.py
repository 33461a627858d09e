"""A predictor's outputs on a split: one un-augmented forward pass per part, kept as plain
tensors (logits and labels) so that every metric reads them without running a model, and
cached in the Store per predictor (kind "outputs"), so a metric added after a run needs no
forward pass."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from .data import ImageData, eval_view
from .predictor import Predictor
from .scenarios import Split

PARTS = ("forget", "retain", "test", "test_forgotten")


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
