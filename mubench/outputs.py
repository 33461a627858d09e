"""A predictor's outputs on a split: one un-augmented forward pass per part, kept as plain
tensors (logits and labels) so that every metric reads them without running a model, and
cached in the Store per predictor (kind "outputs"), so a metric added after a run needs no
forward pass."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch

from .data import ImageData, eval_view
from .predictor import Predictor
from .scenarios import Split

PARTS = ("forget", "retain", "test", "test_forgotten")
# The order parts are forwarded in: the two the MIA's fit reads first, so that the fit can run
# while the others are forwarded (attacks.svc.FitAhead). Each part is its own pass, so the order
# changes no logit.
FORWARD_ORDER = ("retain", "test", "test_forgotten", "forget")


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
                  batch_size: int | None = None, parts: Iterable[str] = PARTS,
                  on_part: Callable[[str, PartOutputs], None] | None = None) -> SplitOutputs:
    """One un-augmented forward pass of `predictor` over each requested part of `split`, in
    `FORWARD_ORDER`; `on_part(part, outputs)` is called as each part is done."""
    prepare = functools.partial(eval_view, data)
    parts = tuple(parts)
    out = {}
    for part in [p for p in FORWARD_ORDER if p in parts] + [p for p in parts if p not in FORWARD_ORDER]:
        x, y = _part_data(data, split, part)
        logits = predictor.logits(x, device, batch_size=batch_size, prepare=prepare)
        if len(y) == 0:
            logits = torch.zeros(0, data.num_classes)
        out[part] = PartOutputs(logits.float().cpu(), y.long().cpu())
        if on_part is not None:
            on_part(part, out[part])
    return SplitOutputs(**out)


def cached_outputs(store, key: str, predictor: Predictor, data: ImageData, split: Split,
                   device: torch.device, on_part: Callable[[str, PartOutputs], None] | None = None) -> SplitOutputs:
    """The predictor's outputs on every part, from the store (kind "outputs") or computed and
    stored now: most metrics added after a run need no forward pass. `on_part`: as in
    `forward_split` (not called when the outputs come from the store)."""
    state = store.load_artifact("outputs", key)
    if state is not None:
        outputs = load_outputs(state)
        if all(getattr(outputs, part) is not None for part in PARTS):
            return outputs
    outputs = forward_split(predictor, data, split, device, on_part=on_part)
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
