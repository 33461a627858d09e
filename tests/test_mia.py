"""The MIA attack (SPEC §5) on constructed confidence distributions and hand-computed features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mubench.attacks.svc import (
    MIAConfig,
    attack_indices,
    confidence,
    correctness,
    entropy,
    m_entropy,
    mia_efficacy,
    min_support,
)
from mubench.errors import ConfigError


def with_confidence(conf) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-class logits whose softmax probability of the true label (1) is exactly `conf`."""
    conf = torch.as_tensor(conf, dtype=torch.float64)
    logits = torch.stack([torch.zeros_like(conf), torch.log(conf / (1 - conf))], dim=1)
    return logits.float(), torch.ones(len(conf), dtype=torch.int64)


def spread(center: float, n: int, seed: int, width: float = 0.02) -> np.ndarray:
    return np.random.default_rng(seed).uniform(center - width, center + width, n).clip(1e-4, 1 - 1e-4)


MEMBERS = with_confidence(spread(0.98, 200, 1))  # retain: the model is sure of its training data
NONMEMBERS = with_confidence(spread(0.3, 150, 2))  # test part: unsure


def test_features_hand_computed():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])  # p = (¼, ¾) and (½, ½)
    labels = torch.tensor([1, 0])
    assert confidence(logits, labels).tolist() == pytest.approx([0.75, 0.5])
    assert correctness(logits, labels).tolist() == [1.0, 1.0]  # a tie: argmax picks class 0 → right
    assert correctness(logits, torch.tensor([1, 1])).tolist() == [1.0, 0.0]
    assert entropy(logits, labels).tolist() == pytest.approx([-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)),
                                                             math.log(2)])
    # Mentr = −(1 − p_y) ln p_y − Σ_{i≠y} p_i ln(1 − p_i)
    #   right (y=1, p_y=¾): −¼ ln ¾ − ¼ ln ¾ = −½ ln ¾ ≈ 0.1438
    #   wrong (y=0, p_y=¼): −¾ ln ¼ − ¾ ln ¼ = −1.5 ln ¼ ≈ 2.0794
    got = m_entropy(logits[:1].repeat(2, 1), torch.tensor([1, 0]))
    assert got.tolist() == pytest.approx([-0.5 * math.log(0.75), -1.5 * math.log(0.25)])
    assert entropy(logits[:1].repeat(2, 1), torch.tensor([1, 0])).unique().numel() == 1  # label-blind


def test_m_entropy_is_finite_for_saturated_outputs():
    logits = torch.tensor([[200.0, 0.0, 0.0], [0.0, 200.0, 0.0]])
    got = m_entropy(logits, torch.tensor([0, 0]))  # confidently right, confidently wrong
    assert torch.isfinite(got).all()
    assert got[0] < 1e-6 < 10 < got[1]


def test_separable_attack_scores_forget_sets_by_where_they_sit():
    forget_low = with_confidence(spread(0.3, 60, 3))
    forget_high = with_confidence(spread(0.98, 60, 4))
    forget_mixed = with_confidence(np.r_[spread(0.3, 30, 5), spread(0.98, 30, 6)])
    assert mia_efficacy(MEMBERS, NONMEMBERS, forget_low).efficacy == 100.0  # looks unseen
    assert mia_efficacy(MEMBERS, NONMEMBERS, forget_high).efficacy == 0.0  # looks trained on
    result = mia_efficacy(MEMBERS, NONMEMBERS, forget_mixed)
    assert result.efficacy == 50.0
    assert result.forget_nonmember.tolist() == [True] * 30 + [False] * 30  # per-sample verdicts
    assert result.n == 150  # min(|retain| = 200, |test| = 150)


def test_attack_indices_random_and_legacy():
    members, nonmembers = attack_indices(10, 4, MIAConfig(legacy_first_n=True))
    assert members.tolist() == [0, 1, 2, 3] and nonmembers.tolist() == [0, 1, 2, 3]
    members, nonmembers = attack_indices(1000, 300, MIAConfig(seed=0))
    assert len(members) == len(set(members.tolist())) == 300 and members.max() < 1000
    assert sorted(nonmembers.tolist()) == list(range(300))  # all of the smaller side
    assert members.tolist() != list(range(300))  # a random subset, not the first n
    again, _ = attack_indices(1000, 300, MIAConfig(seed=0))
    other, _ = attack_indices(1000, 300, MIAConfig(seed=1))
    assert np.array_equal(members, again) and not np.array_equal(members, other)
    capped, capped_non = attack_indices(1000, 300, MIAConfig(max_samples=50))
    assert len(capped) == len(capped_non) == 50


def test_legacy_first_n_fits_on_the_first_samples():
    # retain: the first 150 samples are confident members, the other 50 look like test data.
    retain = with_confidence(np.r_[spread(0.98, 150, 7), spread(0.3, 50, 8)])
    forget = with_confidence(spread(0.3, 40, 9))
    legacy = mia_efficacy(retain, NONMEMBERS, forget, MIAConfig(legacy_first_n=True))
    assert legacy.member_idx.tolist() == list(range(150))
    assert legacy.efficacy == 100.0  # members were only the confident first 150
    seeded = mia_efficacy(retain, NONMEMBERS, forget, MIAConfig(seed=0))
    assert (seeded.member_idx >= 150).any()  # the random subset reaches past the first n


def test_same_inputs_give_identical_numbers():
    rng = np.random.default_rng(0)
    overlap = [with_confidence(rng.beta(a, 2, n).clip(1e-4, 1 - 1e-4)) for a, n in ((5, 300), (4, 200), (4.5, 80))]
    first = mia_efficacy(*overlap, MIAConfig(seed=3))
    second = mia_efficacy(*overlap, MIAConfig(seed=3))
    assert 0 < first.efficacy < 100  # an overlapping case, where the fit actually matters
    assert first.efficacy == second.efficacy
    assert np.array_equal(first.forget_nonmember, second.forget_nonmember)


def test_other_features_run_the_same_attack():
    forget = with_confidence(spread(0.3, 40, 10))
    for feature in ("correctness", "entropy", "m_entropy"):
        result = mia_efficacy(MEMBERS, NONMEMBERS, forget, MIAConfig(feature=feature))
        assert 0.0 <= result.efficacy <= 100.0
    # entropy separates 0.98 from 0.3 as well as confidence does
    assert mia_efficacy(MEMBERS, NONMEMBERS, forget, MIAConfig(feature="m_entropy")).efficacy == 100.0


def test_bad_config_is_one_clear_error():
    with pytest.raises(ConfigError, match="m_entropy"):
        MIAConfig(feature="loss")
    with pytest.raises(ConfigError, match="max_samples"):
        MIAConfig(max_samples=0)
    empty = (torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ConfigError, match="retain"):
        mia_efficacy(empty, NONMEMBERS, NONMEMBERS)


def test_extrapolation_is_flagged_where_no_nonmember_is_as_unconfident_as_the_forget_set():
    """digits class:3's failure, constructed: the test part is classified almost perfectly, so no
    non-member sits near the forget samples' zero confidence and the SVC's verdict there is not
    backed by data (SPEC §5)."""
    members = with_confidence(spread(0.995, 200, 11, width=0.004))
    nonmembers = with_confidence(spread(0.97, 150, 12))  # all confident
    forgotten = with_confidence(spread(0.005, 60, 13, width=0.004))  # UA 100: plainly forgotten
    result = mia_efficacy(members, nonmembers, forgotten)
    assert result.support == 0 and result.extrapolates
    for feature in ("m_entropy", "correctness"):  # the same region for the label-aware features
        assert mia_efficacy(members, nonmembers, forgotten, MIAConfig(feature=feature)).extrapolates
    # the plain entropy is label-blind: confidently wrong looks confident, among the non-members
    assert not mia_efficacy(members, nonmembers, forgotten, MIAConfig(feature="entropy")).extrapolates


def test_supported_attack_is_not_flagged():
    forget_low = with_confidence(spread(0.3, 60, 3))  # among the non-members
    result = mia_efficacy(MEMBERS, NONMEMBERS, forget_low)
    assert 50 < result.support < 100 and not result.extrapolates  # about half of the 150 lie below
    looks_trained = mia_efficacy(MEMBERS, NONMEMBERS, with_confidence(spread(0.98, 60, 4)))
    assert looks_trained.support == 150 and not looks_trained.extrapolates  # every non-member is below


def test_support_threshold():
    assert [min_support(n) for n in (10, 450, 500, 501, 5000)] == [5, 5, 5, 6, 50]
    # 4 non-members in the forget samples' region of n = 150: flagged; 5: not
    for k, flagged in ((4, True), (5, False)):
        nonmembers = with_confidence(np.r_[spread(0.003, k, 14, width=0.002), spread(0.97, 150 - k, 15)])
        result = mia_efficacy(MEMBERS, nonmembers, with_confidence(spread(0.02, 40, 16, width=0.005)))
        assert result.n == 150 and result.support == k and result.extrapolates is flagged


def test_records_carry_the_support_and_the_flag():
    from mubench.evaluation import PartOutputs, SplitOutputs
    from mubench.metrics import MetricContext, compute_metrics, select_metrics

    members = with_confidence(spread(0.995, 200, 11, width=0.004))
    nonmembers = with_confidence(spread(0.97, 150, 12))
    forgotten = with_confidence(spread(0.005, 60, 13, width=0.004))
    outputs = SplitOutputs(*(PartOutputs(*part) for part in (forgotten, members, nonmembers)),
                           PartOutputs(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64)))
    ctx = MetricContext(outputs)
    names = select_metrics(ctx)
    assert {"mia_support", "mia_extrapolates"} <= set(names)
    got = compute_metrics(ctx, names)
    assert got["mia_support"] == 0 and got["mia_extrapolates"] is True
