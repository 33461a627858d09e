"""Geometry: where does δ send inputs? (issue 16, item 2)

For each input-based predictor of a cell (forget vector, arithmetic): linear CKA between the
penultimate features (the input of the model's last linear layer) of x and of x + δ on
forget, retain and test data (1: δ leaves the representation as it was, up to rotation and
scale); the histogram of the classes forget samples are predicted as under δ, beside Retrain's
(moved to one neighbouring class, or scattered like Retrain's?); and the logit margin
(top-1 minus top-2 logit, a proxy of the distance to the decision boundary) of forget and
test samples under δ against Retrain's on the same samples.
"""

from __future__ import annotations

import numpy as np
import torch

from ..hardness import last_linear
from ..predictor import Predictor
from .cells import StoredCell, cached

VERSION = "1"
PARTS = ("forget", "retain", "test")


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA (Kornblith et al. 2019) of two (N, D) feature matrices of the same samples."""
    a = (a - a.mean(0)).double()
    b = (b - b.mean(0)).double()
    num = torch.linalg.matrix_norm(b.T @ a) ** 2
    den = torch.linalg.matrix_norm(a.T @ a) * torch.linalg.matrix_norm(b.T @ b)
    return float(num / den) if den > 0 else float("nan")


@torch.no_grad()
def features_and_logits(predictor: Predictor, x: torch.Tensor, delta: torch.Tensor | None = None,
                        batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features, logits) of x ↦ model(x + δ), δ = `delta` or the predictor's own."""
    model = predictor.model.eval()
    grabbed = []
    hook = last_linear(model).register_forward_hook(lambda m, inp, out: grabbed.append(inp[0].detach().float()))
    try:
        logits = [model(predictor.transform(x[i: i + batch_size], delta)).float() for i in range(0, len(x), batch_size)]
    finally:
        hook.remove()
    return torch.cat(grabbed).flatten(1), torch.cat(logits)


def margin(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 logit per sample (0 on the decision boundary)."""
    top = logits.topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def histogram(logits: torch.Tensor, num_classes: int) -> list[float]:
    """Share (%) of samples predicted as each class."""
    counts = torch.bincount(logits.argmax(1), minlength=num_classes).double()
    return (100.0 * counts / max(1, len(logits))).tolist()


def geometry(predictor: Predictor, retrain: Predictor, parts: dict[str, tuple[torch.Tensor, torch.Tensor]],
             num_classes: int) -> dict:
    """CKA per part, forget-set prediction histograms, margins of δ's predictor and Retrain."""
    out: dict = {"cka": {}, "margin": {}, "margin_retrain": {}}
    zero = torch.zeros_like(predictor.delta) if predictor.delta is not None else None
    for name, (x, _) in parts.items():
        clean, _ = features_and_logits(predictor, x, zero)
        moved, logits = features_and_logits(predictor, x)
        _, ref = features_and_logits(retrain, x)
        out["cka"][name] = linear_cka(clean, moved)
        out["margin"][name] = margin(logits).tolist()
        out["margin_retrain"][name] = margin(ref).tolist()
        if name == "forget":
            out["hist"] = histogram(logits, num_classes)
            out["hist_clean"] = histogram(features_and_logits(predictor, x, zero)[1], num_classes)
            out["hist_retrain"] = histogram(ref, num_classes)
    return out


def analyze_geometry(cell: StoredCell) -> dict[str, dict]:
    """method → cached geometry of each input-based predictor of the cell."""
    parts = {name: cell.part(name) for name in PARTS}
    retrain = cell.predictor("retrain")
    out = {}
    for method, rec in sorted(cell.records.items()):
        if method == "retrain":
            continue
        pred = cell.predictor(method)
        if not pred.is_input_based:
            continue
        inputs = {"unlearn": rec["unlearn_key"], "retrain": cell.records["retrain"]["unlearn_key"]}
        out[method] = cached(cell.store.root, "geometry", VERSION, inputs,
                             lambda p=pred: geometry(p, retrain, parts, cell.data.num_classes))
    return out


def summary(result: dict) -> dict:
    """The table row of one geometry result (medians of the margins)."""
    row = {f"cka_{p}": result["cka"][p] for p in PARTS}
    for p in ("forget", "test"):
        row[f"margin_{p}"] = float(np.median(result["margin"][p])) if result["margin"][p] else np.nan
        row[f"margin_retrain_{p}"] = (float(np.median(result["margin_retrain"][p]))
                                      if result["margin_retrain"][p] else np.nan)
    row["top_class_share"] = max(result["hist"])
    row["top_class_share_retrain"] = max(result["hist_retrain"])
    return row
