"""Recovery attacks on inputs: can a small input change bring the forgotten data back?
(issue 26, item 3.)

The data-shift analysis's PGD ascends the true label's loss, so on forget samples it can only
raise UA: it measures TA robustness, not whether forgetting lasts. Here the attacker descends it.
Every stored predictor of a cell — the original, Retrain (the control: a model that never saw
the forget data, attacked at the same ε) and each method — is attacked as deployed: for a
forget vector x ↦ f(x + δ) with δ kept; the attacker changes the input x only (pixel space,
clipped to [0, 1]). Per ε:

- `ua_targeted`: UA of the forget samples under per-example ℓ∞ PGD that minimises the
  cross-entropy of their true label (`corruptions.linf_pgd(targeted=True)`; ε = 0 is the plain UA);
- `ua_universal`: UA of the held-out forget samples under one perturbation u (the shape of one
  image, ‖u‖∞ ≤ ε) learned on a seeded `fit_fraction` of the forget samples to minimise the same
  loss: the attacker's own forget vector (`ua_universal_fit`: on the samples it was learned on;
  `ta_universal`: test accuracy under u, its collateral);
- `ta_untargeted`: test accuracy under the untargeted PGD of the shift analysis, labelled as what
  it is, a robustness row beside the recovery rows.

Parts larger than `max_samples` use the shift analysis's seeded subsets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..predictor import Predictor
from .cells import StoredCell, accuracy, cached
from .corruptions import linf_pgd
from .shift import PARTS, subsample

VERSION = "1"
EPSILONS = tuple(k / 255 for k in (0, 2, 4, 8, 16, 32))  # pixel units; the shift analysis stops at 4/255
MEASURES = {  # result field → what the report calls it
    "ua_targeted": "UA under targeted PGD (per-example recovery)",
    "ua_universal": "UA under a universal recovery perturbation (held-out forget samples)",
    "ta_universal": "TA under that universal perturbation (its collateral)",
    "ta_untargeted": "TA under untargeted PGD (robustness, not recovery)",
}


def attacker_split(n: int, fit_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices the universal attack learns on, indices it is scored on): a seeded partition of
    range(n), at least one index on each side when n ≥ 2."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = min(max(round(fit_fraction * n), 1), n - 1) if n >= 2 else n
    return perm[:k], perm[k:]


def universal_recovery(predictor: Predictor, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 40,
                       batch_size: int = 512) -> torch.Tensor:
    """One perturbation u of the shape of one image, ‖u‖∞ ≤ `eps`, minimising the mean
    cross-entropy of the true labels of predictor(clip(x + u, 0, 1)): signed full-batch gradient
    descent from u = 0 with a step falling linearly from ε/4 (deterministic: the only randomness
    is which samples the attacker holds, `attacker_split`)."""
    u = torch.zeros(x.shape[1:], dtype=x.dtype)
    if eps == 0 or len(y) == 0:
        return u
    for t in range(steps):
        grad = torch.zeros_like(u)
        for i in range(0, len(x), batch_size):
            v = u.clone().requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(predictor((x[i: i + batch_size] + v).clamp(0, 1)), y[i: i + batch_size],
                                       reduction="sum")
                grad += torch.autograd.grad(loss, v)[0]
        u = (u - eps / 4 * (1 - t / steps) * grad.sign()).clamp(-eps, eps)
    return u


def recovery_curves(predictor: Predictor, forget: tuple[torch.Tensor, torch.Tensor],
                    test: tuple[torch.Tensor, torch.Tensor], epsilons=EPSILONS, seed: int = 0, steps: int = 10,
                    universal_steps: int = 40, fit_fraction: float = 0.5) -> list[dict]:
    """One row per ε of `epsilons` (in pixel units): the fields of the module docstring, plus
    ‖u‖∞ of the universal perturbation as `u_linf`."""
    (fx, fy), (tx, ty) = forget, test
    fit, held = attacker_split(len(fy), fit_fraction, seed)
    rows = []
    for eps in epsilons:
        u = universal_recovery(predictor, fx[fit], fy[fit], eps, universal_steps)
        rows.append({
            "eps": float(eps),
            "ua_targeted": 100.0 - accuracy(predictor, linf_pgd(predictor, fx, fy, eps, steps, targeted=True), fy),
            "ua_universal": 100.0 - accuracy(predictor, (fx[held] + u).clamp(0, 1), fy[held]),
            "ua_universal_fit": 100.0 - accuracy(predictor, (fx[fit] + u).clamp(0, 1), fy[fit]),
            "ta_universal": accuracy(predictor, (tx + u).clamp(0, 1), ty),
            "ta_untargeted": accuracy(predictor, linf_pgd(predictor, tx, ty, eps, steps), ty),
            "u_linf": float(u.abs().max()) if u.numel() else 0.0,
        })
    return rows


def analyze_recovery(cell: StoredCell, max_samples: int = 2000, epsilons=EPSILONS) -> dict[str, list[dict]]:
    """method → recovery_curves rows, for the original and every stored predictor, Retrain
    included, all at the same ε (cached)."""
    subsets = {p: subsample(*cell.part(p), max_samples, cell.seed + j) for j, p in enumerate(PARTS)}
    out = {}
    for method in dict.fromkeys(["original", *sorted(cell.records)]):
        pred = cell.predictor(method)
        key = cell.original_key if method == "original" else cell.records[method]["unlearn_key"]
        inputs = {"predictor": key, "split": cell.split.hash, "max_samples": max_samples, "seed": cell.seed,
                  "epsilons": [float(e) for e in epsilons]}
        out[method] = cached(cell.store.root, "recovery", VERSION, inputs,
                             lambda p=pred: {"rows": recovery_curves(p, subsets["forget"], subsets["test"], epsilons,
                                                                     cell.seed)})["rows"]
    return out


def eps_label(eps: float) -> str:
    return f"ε={round(eps * 255):g}/255" if eps else "ε=0"


def recovery_table(results: dict[str, list[dict]], measure: str) -> list[dict]:
    """Rows of one measure: method, then its value at each ε (Retrain, the control, first)."""
    order = sorted(results, key=lambda m: (m != "retrain", m != "original", m))
    return [{"method": "retrain (control)" if m == "retrain" else m,
             **{eps_label(r["eps"]): r[measure] for r in results[m]}} for m in order]
