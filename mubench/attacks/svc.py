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
can start it in a background thread while the forget set is forwarded: a `FitAhead`, made for
one evaluation, is the `on_part` callback of the forward and owns that thread and its pending
fit; the evaluation hands it to the metrics (`MetricContext.fit_ahead`), and `fit_attack` takes
its fit only when the input features are byte for byte the ones it would fit on, so the numbers
are those of the serial path. Closing it (it is a context manager) drops a fit nobody took and
ends its thread. Without one, `fit_attack` fits in the calling thread. The module itself keeps
nothing between evaluations (no global mutable state): two FitAheads share no fit and no thread.
"""

from __future__ import annotations

import math
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


def fit_attack(member_features: np.ndarray, nonmember_features: np.ndarray, ahead: FitAhead | None = None):
    """SPEC §5's attack: an RBF SVM (C=3, gamma="auto") on members (1) vs non-members (0).

    ahead: an evaluation's `FitAhead`; the fit it started is waited for instead of fitting
    again when it was started on these very features (same dtype, shape and bytes); any other
    input, or none given, is fitted here."""
    attack = ahead.take(member_features, nonmember_features) if ahead is not None else None
    return attack if attack is not None else _fit(member_features, nonmember_features)


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


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
    """One evaluation's SVC fit, started ahead: the `on_part` callback of `outputs.forward_split`
    that, once the retain and test parts are forwarded, starts the fit `mia_efficacy` will ask
    for with `config` in a thread of its own, so that it runs while the remaining parts are
    forwarded (libsvm releases the GIL, so it runs beside torch). `fit_attack(..., ahead=self)`
    takes it on byte-identical features.

    It owns its thread and its one pending fit: `close()` (or leaving a `with` block) drops a
    fit nobody took and ends the thread, waiting for a fit still running (libsvm cannot be
    interrupted). A closed FitAhead starts nothing more and gives no fit.
    """

    def __init__(self, config: MIAConfig):
        self.config = config
        self.parts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.started = False
        self.closed = False
        self._executor: ThreadPoolExecutor | None = None
        self._inputs: tuple[np.ndarray, np.ndarray] | None = None  # what the pending fit was started on
        self._pending: Future | None = None

    def __call__(self, part: str, out) -> None:
        if self.started or part not in ("retain", "test"):
            return
        self.parts[part] = (out.logits, out.labels)
        if len(self.parts) == 2:
            self.started = True
            members, _, f_member, f_nonmember = attack_features(self.parts["retain"], self.parts["test"], self.config)
            self.parts.clear()  # the features are all it needs
            if len(members):
                self.start(f_member, f_nonmember)

    def start(self, member_features: np.ndarray, nonmember_features: np.ndarray) -> None:
        """Start the fit `fit_attack(member_features, nonmember_features, self)` will take, in this
        object's thread. One fit is pending at a time: a second start drops the first (a running
        one still ends, unread)."""
        if self.closed:
            raise RuntimeError("this FitAhead is closed")
        self._drop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mubench-svc-fit")
        self._inputs = (member_features.copy(), nonmember_features.copy())
        self._pending = self._executor.submit(_fit, *self._inputs)

    @property
    def pending(self) -> bool:
        """Whether a fit was started and not yet taken or dropped."""
        return self._pending is not None

    def take(self, member_features: np.ndarray, nonmember_features: np.ndarray):
        """The fit started on exactly these features (waited for; then it is no longer pending),
        or None when none was, or it was started on others (then it stays pending)."""
        if self._pending is None or not (_same_bytes(member_features, self._inputs[0])
                                         and _same_bytes(nonmember_features, self._inputs[1])):
            return None
        future = self._pending
        self._pending = self._inputs = None
        return future.result()

    def _drop(self) -> None:
        if self._pending is not None:
            self._pending.cancel()  # a fit still queued never runs; a running one ends unread
        self._pending = self._inputs = None

    def close(self) -> None:
        """Drop a fit nobody took and shut the thread down (idempotent)."""
        self.closed = True
        self._drop()
        self.parts.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> FitAhead:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def mia_efficacy(retain: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 forget: tuple[torch.Tensor, torch.Tensor], config: MIAConfig = MIAConfig(),
                 ahead: FitAhead | None = None) -> MIAResult:
    """MIA-Efficacy from (logits, labels) of the retain part, the test part and the forget set.

    ahead: the evaluation's `FitAhead`, whose fit is taken where it was started on these
    features (see `fit_attack`); None: fit here."""
    members, nonmembers, f_member, f_nonmember = attack_features(retain, test, config)
    if len(members) == 0:
        raise ConfigError("MIA-Efficacy needs a non-empty retain set and test part to fit the attack")
    f_forget = feature_values(forget[0], forget[1], config.feature)
    if len(f_forget) == 0:
        verdict = np.zeros(0, dtype=bool)
        efficacy, support = float("nan"), None
    else:
        attack = fit_attack(f_member, f_nonmember, ahead)
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
