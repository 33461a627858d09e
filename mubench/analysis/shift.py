"""Data shift: does input-based unlearning break under shift where model-based does not?
(issue 16, item 3; the forget-vector paper's Figure 2 study.)

Every stored predictor of a cell — the original, Retrain and each method — is evaluated on
forget, retain and test data under each corruption of corruptions.py at severities 1–3 and
under small untargeted ℓ∞ PGD attacks on the predictor itself (a TA-robustness condition: it
pushes every input away from its true label, so on forget samples UA can only rise; whether
forgetting can be undone is recovery.py's question); per condition: TA, UA and MIA-Efficacy
(the attack fitted on the shifted retain / test data, as on clean data). Shift = value under
the condition minus the clean value. Parts larger than `max_samples` use a seeded subset.
"""

from __future__ import annotations

import numpy as np
import torch

from ..attacks.svc import MIAConfig, mia_efficacy
from ..predictor import Predictor
from .cells import StoredCell, cached
from .corruptions import CORRUPTIONS, SEVERITIES, corrupt, pgd

VERSION = "1"
PARTS = ("forget", "retain", "test")
PGD_LABEL = "pgd (untargeted: TA robustness)"  # how reports name the PGD condition
CONDITIONS = ("clean", *(f"{c}:{s}" for c in (*CORRUPTIONS, "pgd") for s in SEVERITIES))


def shifted(predictor: Predictor, condition: str, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    """The inputs `x` under `condition` ('clean', 'NAME:SEVERITY'), before the predictor's δ."""
    if condition == "clean":
        return x
    name, severity = condition.split(":")
    if name == "pgd":
        return pgd(predictor, x, y, int(severity))
    return corrupt(name, x, int(severity), seed)


def condition_metrics(predictor: Predictor, parts: dict[str, tuple[torch.Tensor, torch.Tensor]], condition: str,
                      seed: int) -> dict:
    """TA, UA and MIA-Efficacy of `predictor` with every part under `condition`."""
    logits = {}
    for i, (name, (x, y)) in enumerate(parts.items()):
        xs = shifted(predictor, condition, x, y, seed * 7919 + i)
        logits[name] = (predictor.logits(xs, torch.device("cpu")), y)

    def acc(name: str) -> float:
        z, y = logits[name]
        return 100.0 * float((z.argmax(1) == y).double().mean()) if len(y) else float("nan")

    mia = mia_efficacy(logits["retain"], logits["test"], logits["forget"], MIAConfig(seed=seed))
    return {"ta": acc("test"), "ua": 100.0 - acc("forget"), "ra": acc("retain"), "mia": float(mia.value)}


def subsample(x: torch.Tensor, y: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if len(y) <= n:
        return x, y
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def analyze_shift(cell: StoredCell, max_samples: int = 2000, conditions=CONDITIONS) -> dict[str, dict]:
    """method → condition → metrics, for the original and every stored predictor (cached)."""
    parts = {p: subsample(*cell.part(p), max_samples, cell.seed + j) for j, p in enumerate(PARTS)}
    out = {}
    for method in ["original", *sorted(cell.records)]:
        pred = cell.predictor(method)
        key = cell.original_key if method == "original" else cell.records[method]["unlearn_key"]
        inputs = {"predictor": key, "split": cell.split.hash, "max_samples": max_samples, "seed": cell.seed,
                  "conditions": list(conditions)}
        out[method] = cached(cell.store.root, "shift", VERSION, inputs,
                             lambda p=pred: {c: condition_metrics(p, parts, c, cell.seed) for c in conditions})
    return out


def shift_table(results: dict[str, dict], metric: str) -> dict[str, dict[str, float]]:
    """method → corruption → mean over severities of (metric under shift − clean)."""
    table = {}
    for method, by_condition in results.items():
        clean = by_condition["clean"][metric]
        row = {}
        for name in (*CORRUPTIONS, "pgd"):
            vals = [by_condition[f"{name}:{s}"][metric] - clean for s in SEVERITIES if f"{name}:{s}" in by_condition]
            row[name] = float(np.mean(vals)) if vals else float("nan")
        table[method] = row
    return table
