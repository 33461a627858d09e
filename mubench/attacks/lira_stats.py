"""The statistics of the per-example attacks (../shared/MIA.md): plain numpy, no models.

φ (the logit-scaled confidence), the balanced IN/OUT assignment of shadows, the per-example
Gaussians with pooled variances, the likelihood-ratio, one-sided offline and RMIA scores, and the
numbers reports print (AUC, TPR at a low FPR, balanced accuracy, bootstrap CIs). Kept apart
from jobs and stores so each number can be checked by hand (tests/test_ulira.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import norm, rankdata

P_CLIP = 1e-7  # MIA.md: p_y clipped to [1e-7, 1 − 1e-7]
PHI_MAX = float(np.log1p(-P_CLIP) - np.log(P_CLIP))  # φ at p_y = 1 − 1e-7 (≈ 16.12)
MIN_SD = 1e-3  # a pooled σ below this (all shadows agree exactly) would make Λ infinite
FPRS = (0.01, 0.001)  # MIA.md: TPR at 1% and at 0.1% FPR
BOOTSTRAP = 1000  # resamples of the bootstrap CIs
CI_LEVEL = 0.95


def phi(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """φ = log p_y − log(1 − p_y) per sample, as float64.

    Computed as z_y − logsumexp(z_{≠y}) (the same number without forming p, so no cancellation
    near p_y = 1), then clipped to ±PHI_MAX, which is MIA.md's clip of p_y to [1e-7, 1 − 1e-7].
    """
    if len(labels) == 0:
        return np.zeros(0)
    z = logits.double()
    idx = labels.long().view(-1, 1)
    own = z.gather(1, idx).squeeze(1)
    others = z.scatter(1, idx, float("-inf")).logsumexp(1)
    return (own - others).clamp(-PHI_MAX, PHI_MAX).numpy()


def saturated_share(phi_models: np.ndarray) -> float:
    """% of examples whose φ sits at the clip (±PHI_MAX) in every model ((K, n)): on those the
    models carry no signal, so an attack reads chance there whatever the audited model does."""
    if phi_models.size == 0:
        return 0.0
    return 100.0 * float((np.abs(phi_models) >= PHI_MAX - 1e-9).all(axis=0).mean())


def unseparated_share(g: Gaussians, tol: float = MIN_SD) -> float:
    """% of examples whose IN and OUT means differ by less than `tol`: U-LiRA cannot tell the sides
    apart there (saturated shadows give identical means), so its score is 0 for any target."""
    return 100.0 * float((np.abs(g.mu_in - g.mu_out) < tol).mean()) if len(g.mu_in) else 0.0


def leave_one_out(n: int, score: Callable[[np.ndarray, int], float]) -> list[float]:
    """`score(rest, j)` for each of n models held out in turn (`rest`: the other indices): the
    null of an attack, each never-trained model audited as the target."""
    idx = np.arange(n)
    return [score(np.delete(idx, j), j) for j in range(n)]


def balanced_assignment(n: int, shadows: int, seed: int) -> np.ndarray:
    """(shadows, n) bool: every example IN exactly shadows/2 of the shadow sets (MIA.md step 1).

    Each column is a seeded random permutation of K/2 True and K/2 False, so no example lacks
    an IN or an OUT side (plain coin flips leave some with none)."""
    if shadows < 2 or shadows % 2:
        raise ValueError(f"the number of shadows must be even and at least 2; got {shadows}")
    base = np.zeros((shadows, n), dtype=bool)
    base[: shadows // 2] = True
    return np.random.default_rng(seed).permuted(base, axis=0)


@dataclass(frozen=True)
class Gaussians:
    """Per-example means and the two pooled standard deviations (MIA.md step 4)."""

    mu_in: np.ndarray  # (n,)
    mu_out: np.ndarray  # (n,)
    sd_in: float
    sd_out: float


def _side(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Per-column means of values where mask, the summed squared deviations from them, and
    their degrees of freedom (values − examples)."""
    count = mask.sum(0)
    if (count == 0).any():
        raise ValueError("every example needs at least one shadow on each side (use balanced_assignment)")
    mu = np.where(mask, values, 0.0).sum(0) / count
    return mu, float(np.where(mask, (values - mu) ** 2, 0.0).sum()), int(count.sum() - len(count))


def _pooled_sd(ss: float, dof: int) -> float:
    """The unbiased pooled σ (per-example variances from K/2 values each would be noise)."""
    return max(float(np.sqrt(ss / dof)) if dof > 0 else 0.0, MIN_SD)


def fit_gaussians(phi_shadows: np.ndarray, in_mask: np.ndarray, variance: str = "per_side") -> Gaussians:
    """μ_in(x), μ_out(x) over the shadows where x is IN / OUT, and the pooled σ: one per side
    (MIA.md), or with variance="tied" one σ pooled over both sides.

    Why tied: with per-side σ, Λ is quadratic in φ, and a φ far outside both Gaussians (Retrain
    on a class it never saw) gets a score set by which σ is larger, not by which mean is nearer;
    with few shadows that order flips with the assignment (docs/metrics.md, "Which σ"). One σ
    makes Λ linear in φ for every example."""
    mu_in, ss_in, dof_in = _side(phi_shadows, in_mask)
    mu_out, ss_out, dof_out = _side(phi_shadows, ~in_mask)
    if variance == "tied":
        sd = _pooled_sd(ss_in + ss_out, dof_in + dof_out)
        return Gaussians(mu_in, mu_out, sd, sd)
    if variance != "per_side":
        raise ValueError(f"variance must be 'per_side' or 'tied'; got {variance!r}")
    return Gaussians(mu_in, mu_out, _pooled_sd(ss_in, dof_in), _pooled_sd(ss_out, dof_out))


def lira_scores(g: Gaussians, values: np.ndarray) -> np.ndarray:
    """Λ(x) = log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out): high means 'member'."""
    return norm.logpdf(values, g.mu_in, g.sd_in) - norm.logpdf(values, g.mu_out, g.sd_out)


def offline_scores(mu_out: np.ndarray, sd_out: float, values: np.ndarray) -> np.ndarray:
    """Offline LiRA's one-sided score log Φ((φ − μ_out) / σ_out): high means 'member'."""
    return norm.logcdf((values - mu_out) / sd_out)


def out_gaussian(phi_refs: np.ndarray) -> tuple[np.ndarray, float]:
    """μ_out(x) and the pooled σ_out from reference models that never saw x ((K', n))."""
    mu, ss, dof = _side(phi_refs, np.ones_like(phi_refs, dtype=bool))
    return mu, _pooled_sd(ss, dof)


RMIA_GAMMA = 2.0  # MIA.md: RMIA's likelihood-ratio threshold γ (its authors' default)
RMIA_OFFLINE_A = 0.33  # MIA.md: the offline scaling a of Pr(x) from OUT references only


def true_class_probability(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """p_y = softmax(logits)_y per sample, as float64 (RMIA's signal)."""
    if len(labels) == 0:
        return np.zeros(0)
    return torch.softmax(logits.double(), 1).gather(1, labels.long().view(-1, 1)).squeeze(1).numpy()


def rmia_scores(p_x: np.ndarray, ref_x: np.ndarray, p_z: np.ndarray, ref_z: np.ndarray,
                gamma: float = RMIA_GAMMA, a: float = RMIA_OFFLINE_A) -> np.ndarray:
    """Offline RMIA: per x, the share of population samples z with LR(x)/LR(z) > γ, where
    LR(s) = Pr(s | θ) / Pr(s) and Pr(s) = ½((1 + a)·mean of the OUT references' p(s) + (1 − a)),
    the paper's offline approximation of the IN/OUT average, applied to x and z alike.

    p_x (n,), p_z (m,): the audited model's p_y; ref_x (K', n), ref_z (K', m): the references'."""
    def marginal(ref: np.ndarray) -> np.ndarray:
        return 0.5 * ((1 + a) * ref.mean(0) + (1 - a))

    lr_x = p_x / marginal(ref_x)
    lr_z = np.sort(p_z / marginal(ref_z))
    # LR(x)/LR(z) > γ  ⇔  LR(z) < LR(x)/γ: the count below is a sorted search
    return np.searchsorted(lr_z, lr_x / gamma, side="left") / len(lr_z)


# ---------------------------------------------------------------------------------------------
# Numbers over positives (members: the audited predictor) and negatives (Retrain), in %


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann–Whitney), in %."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    ranks = rankdata(np.concatenate([pos, neg]))  # average ranks: a tie counts half
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return 100.0 * float(u / (len(pos) * len(neg)))


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    """TPR (%) at the strictest threshold that lets at most ⌊fpr·n_neg⌋ negatives above it.

    With fewer than 1/fpr negatives that is 'TPR at zero false positives' (threshold = the
    largest negative): on digits' ~150 forget samples TPR@0.1% reads that way."""
    neg = np.sort(np.asarray(neg, float))[::-1]
    allowed = int(np.floor(fpr * len(neg)))
    threshold = neg[allowed] if allowed < len(neg) else -np.inf
    return 100.0 * float((np.asarray(pos) > threshold).mean())


def balanced_accuracy(pos: np.ndarray, neg: np.ndarray, threshold: float = 0.0) -> float:
    """Mean of the hit rates on each side at Λ > threshold (MIA.md: Λ > 0), in %."""
    return 100.0 * 0.5 * (float((np.asarray(pos) > threshold).mean()) + float((np.asarray(neg) <= threshold).mean()))


def bootstrap_ci(pos: np.ndarray, neg: np.ndarray, stat: Callable[[np.ndarray, np.ndarray], float],
                 seed: int = 0, n: int = BOOTSTRAP, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile CI of stat(pos, neg), resampling forget examples (pos[i] and neg[i] are the
    same x seen by the two models, so they are resampled together)."""
    rng = np.random.default_rng(seed)
    m = len(pos)
    values = [stat(pos[idx], neg[idx]) for idx in (rng.integers(0, m, m) for _ in range(n))]
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def summary(pos: np.ndarray, neg: np.ndarray, seed: int = 0, prefix: str = "ulira") -> dict:
    """The record fields of one attack: AUC with its CI, TPR at 1% / 0.1% FPR, balanced
    accuracy, and the per-example view (paired margin Λ_pos(x) − Λ_neg(x) per forget example;
    `_win` = % of examples whose margin is > 0, ideal 50)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    lo, hi = bootstrap_ci(pos, neg, auc, seed=seed)
    margin = pos - neg
    out = {f"{prefix}_auc": auc(pos, neg), f"{prefix}_auc_lo": lo, f"{prefix}_auc_hi": hi,
           f"{prefix}_tpr1": tpr_at_fpr(pos, neg, FPRS[0]), f"{prefix}_tpr01": tpr_at_fpr(pos, neg, FPRS[1]),
           f"{prefix}_win": 100.0 * float((margin > 0).mean() + 0.5 * (margin == 0).mean()),
           f"{prefix}_margin": [round(float(v), 4) for v in margin]}
    if prefix == "ulira":  # Λ > 0 is a likelihood-ratio decision; the offline score has no such zero
        out[f"{prefix}_bacc"] = balanced_accuracy(pos, neg)
    return out
