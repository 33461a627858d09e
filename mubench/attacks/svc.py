"""The SVC attack behind MIA-Efficacy (SPEC §5): the population attack, as an attack plugin.

The attack asks: does the unlearned predictor treat the forget set like data it was trained on
(retain: members) or like data it never saw (test: non-members)? It fits an RBF SVM on one
scalar per sample — by default the softmax probability of the true label — with members = a
seeded random subset of the retain set (label 1) and non-members = a seeded random subset of
the test part (label 0; class-wise scenarios: remaining classes only), both of size
n = min(|retain|, |test part|). MIA-Efficacy is the percentage of forget samples it calls
non-members: higher means more forgotten; the target is Retrain's value.

The OPTML code takes the first n retain / test samples in index order instead of a random
subset; `MIAConfig(legacy_first_n=True)` reproduces that.

Known weakness (SPEC §5): a 1-D RBF SVC extrapolates where it saw no training points. On data
with very high test accuracy (digits) few non-members have low confidence, so forget samples
with near-zero confidence fall where only the fit's intercept and the members' kernel tails
decide, and a plainly forgotten input (UA 100) can score MIA-Efficacy 0. `MIAResult.support`
counts the non-members the attack was fit on that are at least as unconfident as the forget
samples' median (for the confidence feature: at or below it); `MIAResult.extrapolates` flags
the number when that support is below `min_support(n)`.

Everything here works on logits already computed by `outputs.forward_split`: the attack never
runs a model and needs none of its own. Its numbers are metrics (`mia_efficacy`, `mia_support`,
`mia_extrapolates`, registered in metrics.py): they enter the Avg. Gap, so every row computes them,
Retrain's and the noise control's included, and the attack is always on.

The fit needs only the retain and test outputs, so an evaluation that forwards those parts first
can start it in a background thread (`FitAhead`) while the forget set is forwarded; `fit_attack`
takes that fit only when its input features are byte for byte the ones it would fit on, so the
numbers are those of the serial path.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .base import Attack, Column, register_attack

SVC_C = 3.0  # SPEC §5: SVC(kernel="rbf", C=3, gamma="auto")
# Extrapolation flag: fewer non-members than this many, or than this fraction of n, at least as
# unconfident as the forget samples' median (see min_support).
MIN_SUPPORT = 5
MIN_SUPPORT_FRACTION = 0.01
LOG_FLOOR = 1e-30  # m-entropy: log(1 - p) is floored here when p rounds to 1 in float64


@dataclass(frozen=True)
class MIAConfig:
    """How the attack picks its training samples and which per-sample feature it uses.

    seed: seeds the member / non-member subsets (the same sizes and seed give the same indices,
        so Retrain and every method of a cell are attacked with the same subsets).
    legacy_first_n: take the first n samples in index order (the OPTML convention).
    feature: one of FEATURES (confidence is SPEC's; the others are extras).
    max_samples: cap on n per side (None: SPEC's n = min(|retain|, |test part|)).
    """

    seed: int = 0
    legacy_first_n: bool = False
    feature: str = "confidence"
    max_samples: int | None = None

    def __post_init__(self):
        if self.feature not in FEATURES:
            raise ConfigError(f"MIA feature {self.feature!r} is unknown; choose one of: {', '.join(FEATURES)}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ConfigError(f"MIA max_samples must be a positive integer or None; got {self.max_samples!r}")


# ---------------------------------------------------------------------------------------------
# Per-sample features: (N, K) logits and (N,) labels → (N,) float64


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.double(), dim=1)


def _true(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return values.gather(1, labels.long().view(-1, 1)).squeeze(1)


def confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax probability of the true label (SPEC §5's feature)."""
    return _true(_log_probs(logits), labels).exp()


def correctness(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1 where the top-1 prediction is the true label, else 0."""
    return (logits.argmax(1) == labels).double()


def entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Shannon entropy of the softmax output in nats (label-free)."""
    logp = _log_probs(logits)
    return -(logp.exp() * logp).sum(1)


def m_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Song & Mittal's modified entropy (USENIX Security 2021, eq. 7):

        Mentr(p, y) = −(1 − p_y)·log p_y − Σ_{i≠y} p_i·log(1 − p_i)

    Low for a confident correct prediction, high for a confident wrong one (unlike the plain
    entropy, which cannot tell the two apart). log p_y comes from log_softmax, so it is exact;
    log(1 − p_i) is floored at log(1e-30) where p_i rounds to 1 in float64.
    """
    logp = _log_probs(logits)
    p = logp.exp()
    logp_y = _true(logp, labels)
    one_minus_py = -torch.expm1(logp_y)  # 1 − p_y without cancellation when p_y ≈ 1
    own = -one_minus_py * logp_y
    log_rest = torch.log((1 - p).clamp(min=LOG_FLOOR))
    others = p * log_rest
    others.scatter_(1, labels.long().view(-1, 1), 0.0)  # the true class is the first term
    return own - others.sum(1)


FEATURES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "confidence": confidence,
    "correctness": correctness,
    "entropy": entropy,
    "m_entropy": m_entropy,
}
# The sign of "less confident" per feature: +1 where unconfident samples have higher values.
UNCONFIDENT_SIGN = {"confidence": -1, "correctness": -1, "entropy": 1, "m_entropy": 1}


def feature_values(logits: torch.Tensor, labels: torch.Tensor, feature: str = "confidence") -> np.ndarray:
    """The attack feature of each sample as a float64 numpy vector."""
    if len(labels) == 0:
        return np.zeros(0)
    return FEATURES[feature](logits, labels).numpy()


# ---------------------------------------------------------------------------------------------
# The attack


@dataclass(frozen=True)
class MIAResult:
    """The attack on one predictor: the aggregate and per-forget-sample verdicts."""

    efficacy: float  # % of forget samples predicted non-member
    forget_nonmember: np.ndarray  # (|forget|,) bool: the attack's verdict per forget sample
    n: int  # samples per side the attack was fit on
    member_idx: np.ndarray  # positions in the retain part used as members
    nonmember_idx: np.ndarray  # positions in the test part used as non-members
    support: int | None = None  # non-members at least as unconfident as the forget median (None: no forget set)
    extrapolates: bool = False  # support < min_support(n): the verdicts rest on the SVC's extrapolation

    @property
    def value(self) -> float:
        return self.efficacy


def attack_indices(n_retain: int, n_test: int, config: MIAConfig) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the member (retain) and non-member (test) samples, n of each.

    The draw depends only on the two sizes and the seed, so every predictor of a cell is
    attacked with the same samples.
    """
    n = min(n_retain, n_test)
    if config.max_samples is not None:
        n = min(n, config.max_samples)
    if config.legacy_first_n:
        return np.arange(n), np.arange(n)
    rng = np.random.default_rng(config.seed)
    members = np.sort(rng.choice(n_retain, size=n, replace=False))
    nonmembers = np.sort(rng.choice(n_test, size=n, replace=False))
    return members, nonmembers


def min_support(n: int) -> int:
    """The smallest support that does not flag extrapolation: max(5, ⌈1% of n⌉).

    With gamma="auto" on one feature the RBF kernel has unit width, wider than the whole
    confidence range, so the C = 3 fit follows wherever most of its points lie; a handful of
    non-members in the forget samples' region cannot move the boundary there, and then the
    verdicts come from the members' side of the fit and its intercept, not from data. Five
    points is the floor below which no region is "seen"; the 1% keeps the bar proportional
    when n is in the thousands (CIFAR-10: n = 5,000 → 50).
    """
    return max(MIN_SUPPORT, math.ceil(MIN_SUPPORT_FRACTION * n))


def attack_support(nonmember_features: np.ndarray, forget_features: np.ndarray, feature: str = "confidence") -> int:
    """Non-members at least as unconfident as the forget samples' median (SPEC §5's count:
    for the confidence feature, those at or below the median confidence)."""
    sign = UNCONFIDENT_SIGN[feature]
    median = float(np.median(forget_features))
    return int((sign * nonmember_features >= sign * median).sum())


def _fit(member_features: np.ndarray, nonmember_features: np.ndarray):
    from sklearn.svm import SVC

    x = np.concatenate([member_features, nonmember_features]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(member_features)), np.zeros(len(nonmember_features))])
    return SVC(kernel="rbf", C=SVC_C, gamma="auto").fit(x, y)


def fit_attack(member_features: np.ndarray, nonmember_features: np.ndarray):
    """SPEC §5's attack: an RBF SVM (C=3, gamma="auto") on members (1) vs non-members (0).

    A fit `fit_ahead` started on the same features (same bytes) is waited for instead of
    fitting again; any other input is fitted here."""
    with _AHEAD_LOCK:
        future = _AHEAD.pop(_fit_key(member_features, nonmember_features), None)
    if future is not None:
        return future.result()
    return _fit(member_features, nonmember_features)


# Fits started ahead, by their input's digest. Bounded: an evaluation that fails after starting
# one never takes it, and a worker process runs many evaluations.
_AHEAD: dict[str, Future] = {}
_AHEAD_MAX = 4
_AHEAD_LOCK = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _fit_key(member_features: np.ndarray, nonmember_features: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in (member_features, nonmember_features):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def fit_ahead(member_features: np.ndarray, nonmember_features: np.ndarray) -> None:
    """Start `fit_attack(member_features, nonmember_features)` in a background thread (libsvm
    releases the GIL, so it runs beside torch); `fit_attack` on the same features takes it."""
    global _executor
    key = _fit_key(member_features, nonmember_features)
    with _AHEAD_LOCK:
        if key in _AHEAD:
            return
        while len(_AHEAD) >= _AHEAD_MAX:
            _AHEAD.pop(next(iter(_AHEAD)))
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mubench-svc-fit")
        _AHEAD[key] = _executor.submit(_fit, member_features.copy(), nonmember_features.copy())


def attack_features(retain: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                    config: MIAConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(member positions, non-member positions, member features, non-member features): what the
    attack is fit on, from (logits, labels) of the retain and test parts."""
    members, nonmembers = attack_indices(len(retain[1]), len(test[1]), config)
    # Features only of the samples the attack uses (retain can be large).
    idx_m, idx_n = torch.from_numpy(members), torch.from_numpy(nonmembers)
    return (members, nonmembers, feature_values(retain[0][idx_m], retain[1][idx_m], config.feature),
            feature_values(test[0][idx_n], test[1][idx_n], config.feature))


class FitAhead:
    """An `on_part` callback of `outputs.forward_split`: once the retain and test parts are
    forwarded, start the fit `mia_efficacy` will ask for with `config`, so that it runs while
    the remaining parts are forwarded."""

    def __init__(self, config: MIAConfig):
        self.config = config
        self.parts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.started = False

    def __call__(self, part: str, out) -> None:
        if self.started or part not in ("retain", "test"):
            return
        self.parts[part] = (out.logits, out.labels)
        if len(self.parts) == 2:
            self.started = True
            members, _, f_member, f_nonmember = attack_features(self.parts["retain"], self.parts["test"], self.config)
            if len(members):
                fit_ahead(f_member, f_nonmember)


def mia_efficacy(retain: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 forget: tuple[torch.Tensor, torch.Tensor], config: MIAConfig = MIAConfig()) -> MIAResult:
    """MIA-Efficacy from (logits, labels) of the retain part, the test part and the forget set."""
    members, nonmembers, f_member, f_nonmember = attack_features(retain, test, config)
    if len(members) == 0:
        raise ConfigError("MIA-Efficacy needs a non-empty retain set and test part to fit the attack")
    f_forget = feature_values(forget[0], forget[1], config.feature)
    if len(f_forget) == 0:
        verdict = np.zeros(0, dtype=bool)
        efficacy, support = float("nan"), None
    else:
        attack = fit_attack(f_member, f_nonmember)
        verdict = attack.predict(f_forget.reshape(-1, 1)) == 0
        efficacy = 100.0 * float(verdict.mean())
        support = attack_support(f_nonmember, f_forget, config.feature)
    extrapolates = support is not None and support < min_support(len(members))
    return MIAResult(efficacy, verdict, len(members), members, nonmembers, support, extrapolates)


@register_attack("svc")
class SVCAttack(Attack):
    """SPEC §5's population attack: one RBF SVC on the true-class confidence, members = retain,
    non-members = test. It is always on and plans no model; its record fields are metrics."""

    label = "SVC MIA-Efficacy (SPEC §5)"
    always = True
    rank = 0
    # the summary table shows MIA-Efficacy among the gap metrics; the side-by-side puts it first
    columns = {"mia_efficacy": Column("SVC MIA-Efficacy", "Retrain's", side="SVC MIA-Efficacy (ideal: Retrain's)")}
