"""Transfer: does the class-c forget vector forget only class c? (issue 16, item 1)

From the class-wise bank (mubench/methods/_fv_bank.py) of an original model: the K×K matrix of
training accuracy on class c′ under δ_c (row c, column c′; the diagonal is each vector's own
forget-set accuracy), and zero-shot composition beyond sum/mean: δ_a + δ_b and (δ_a + δ_b)/2
for class pairs, with the accuracy on a and b and on every third class — the reviewers'
"automobile + bird" question, whether a vector built for two classes also forgets a third.
"""

from __future__ import annotations

import numpy as np
import torch

from ..predictor import Predictor
from .cells import StoredCell, cached

VERSION = "1"


def per_class_accuracy(predictor: Predictor, delta: torch.Tensor | None, x: torch.Tensor, y: torch.Tensor,
                       num_classes: int) -> np.ndarray:
    """Accuracy in % on each class of (x, y) under x ↦ x + delta (None: no δ)."""
    logits = predictor.with_delta(delta).logits(x, torch.device("cpu"))
    hit = (logits.argmax(1) == y).double()
    return np.array([100.0 * float(hit[y == k].mean()) if (y == k).any() else np.nan for k in range(num_classes)])


def transfer_matrix(model: torch.nn.Module, vectors: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """(K, K): row c = per-class accuracy under the class-c vector."""
    base = Predictor(model)
    return np.stack([per_class_accuracy(base, v, x, y, len(vectors)) for v in vectors])


def composition(model: torch.nn.Module, vectors: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                pairs: list[tuple[int, int]]) -> list[dict]:
    """For each pair (a, b) and rule (sum, mean): accuracy on a, b and the third classes."""
    base = Predictor(model)
    clean = per_class_accuracy(base, None, x, y, len(vectors))
    rows = []
    for a, b in pairs:
        for rule, delta in (("sum", vectors[a] + vectors[b]), ("mean", (vectors[a] + vectors[b]) / 2)):
            acc = per_class_accuracy(base, delta, x, y, len(vectors))
            third = [k for k in range(len(vectors)) if k not in (a, b)]
            drop = clean[third] - acc[third]
            worst = third[int(np.argmax(drop))]
            rows.append({"pair": f"{a}+{b}", "rule": rule, "acc_a": acc[a], "acc_b": acc[b],
                         "acc_third_mean": float(np.mean(acc[third])), "worst_third": worst,
                         "acc_worst_third": float(acc[worst]), "clean_worst_third": float(clean[worst])})
    return rows


def bank_vectors(cell: StoredCell) -> tuple[torch.Tensor, str] | None:
    """(K, C, H, W) class-wise vectors of the cell's original and the bank's key, if stored."""
    for rec in cell.store.iter_records("fv_bank"):
        if rec.get("original_key") == cell.original_key and rec.get("status", "ok") == "ok":
            art = cell.store.load_artifact("fv_bank", rec["key"])
            if art is not None:
                return art["vectors"].float(), rec["key"]
    return None


def analyze_transfer(cell: StoredCell) -> dict | None:
    """The cached transfer result of a cell's original (None without a stored bank)."""
    found = bank_vectors(cell)
    if found is None:
        return None
    vectors, bank_key = found
    k = len(vectors)
    pairs = [(c, (c + 1) % k) for c in range(k)]

    def compute() -> dict:
        x, y = cell.part("forget")
        rx, ry = cell.part("retain")
        x, y = torch.cat([x, rx]), torch.cat([y, ry])  # the whole training set
        return {"matrix": transfer_matrix(cell.original, vectors, x, y).tolist(),
                "clean": per_class_accuracy(Predictor(cell.original), None, x, y, k).tolist(),
                "composition": composition(cell.original, vectors, x, y, pairs)}

    return cached(cell.store.root, "transfer", VERSION, {"bank": bank_key, "split": cell.split.hash}, compute)
