"""Metric functions on hand-computed cases, and the registry's dependency handling."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from mubench.errors import ConfigError, UnknownNameError
from mubench.evaluation import PartOutputs, SplitOutputs
from mubench.metrics import (
    GAP_METRICS,
    METRICS,
    MetricContext,
    accuracy,
    avg_gap,
    compute_metrics,
    kl_divergence,
    metric_value,
    register_metric,
    select_metrics,
    unlearning_accuracy,
)

# Four samples, three classes; the argmax is right for samples 0, 1, 3 and wrong for sample 2.
LOGITS = torch.tensor([[3.0, 1.0, 0.0],
                       [0.0, 2.0, 1.0],
                       [5.0, 0.0, 1.0],
                       [0.0, 0.0, 9.0]])
LABELS = torch.tensor([0, 1, 2, 2])


def part(logits, labels) -> PartOutputs:
    return PartOutputs(torch.as_tensor(logits, dtype=torch.float32), torch.as_tensor(labels))


def empty() -> PartOutputs:
    return PartOutputs(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64))


def test_accuracy_and_ua_on_known_logits():
    four = part(LOGITS, LABELS)
    assert accuracy(four) == 75.0  # 3 of 4 right
    assert unlearning_accuracy(four) == 25.0  # UA = 100 − 75
    assert accuracy(part(LOGITS, [1, 0, 0, 0])) == 25.0  # only sample 2 (argmax 0) is right
    assert accuracy(empty()) is None and unlearning_accuracy(empty()) is None


def test_registered_metrics_read_the_right_parts():
    # forget: 3/4 right → UA 25; retain: all right → RA 100; test: 1/4 right → TA 25
    outputs = SplitOutputs(forget=part(LOGITS, LABELS), retain=part(LOGITS, LOGITS.argmax(1)),
                           test=part(LOGITS, [1, 0, 0, 0]), test_forgotten=empty())
    got = compute_metrics(MetricContext(outputs), ["ua", "ra", "ta", "ta_forgotten"])
    assert got == {"ua": 25.0, "ra": 100.0, "ta": 25.0, "ta_forgotten": None}


def test_avg_gap_worked_example():
    # |10 − 12| + |90 − 95| + |85 − 88| + |30 − 40| = 2 + 5 + 3 + 10 = 20; 20 / 4 = 5.0
    mine = {"ua": 10.0, "ra": 90.0, "ta": 85.0, "mia_efficacy": 30.0, "ta_forgotten": 0.0}
    retrain = {"ua": 12.0, "ra": 95.0, "ta": 88.0, "mia_efficacy": 40.0, "ta_forgotten": 50.0}
    assert avg_gap(mine, retrain) == pytest.approx(5.0)
    assert avg_gap(retrain, mine) == pytest.approx(5.0)  # symmetric
    assert avg_gap(retrain, retrain) == 0.0  # Retrain against itself
    # a gap on a metric outside the four (ta_forgotten: 50 points) does not count
    with pytest.raises(ConfigError, match="mia_efficacy"):
        avg_gap({k: 1.0 for k in ("ua", "ra", "ta")}, retrain)


def test_avg_gap_metric_takes_its_dependencies_by_name():
    class Attack:  # what mia_efficacy returns: a result object with .value
        value = 50.0

    ctx = MetricContext(SplitOutputs(), reference={"ua": 25.0, "ra": 75.0, "ta": 55.0, "mia_efficacy": 10.0})
    # ua 25, ra 75, ta 75, mia 50 vs 25, 75, 55, 10 → (0 + 0 + 20 + 40) / 4 = 15
    got = METRICS.get("avg_gap")(ctx, ua=25.0, ra=75.0, ta=75.0, mia_efficacy=Attack())
    assert got == pytest.approx(15.0)
    assert METRICS.entry("avg_gap").meta["requires"] == GAP_METRICS


def test_kl_divergence_hand_computed():
    # sample 0: p_retrain = (1/2, 1/2), p = (1/4, 3/4):
    #   KL = ½ ln(½ / ¼) + ½ ln(½ / ¾) = ½ ln(4/3) ≈ 0.143841
    # sample 1: identical distributions → 0; mean over the two samples = ¼ ln(4/3)
    ref = part([[0.0, 0.0], [2.0, -1.0]], [0, 1])
    own = part([[0.0, math.log(3.0)], [2.0, -1.0]], [0, 1])
    assert kl_divergence(ref, own) == pytest.approx(0.25 * math.log(4 / 3), rel=1e-6)  # float32 logits
    assert kl_divergence(ref, ref) == 0.0
    assert kl_divergence(own, ref) != pytest.approx(kl_divergence(ref, own))  # the direction matters
    assert kl_divergence(empty(), empty()) is None
    with pytest.raises(ConfigError, match="same split"):
        kl_divergence(ref, part([[0.0, 0.0], [2.0, -1.0]], [1, 1]))


def test_dependencies_are_computed_once_and_passed_by_name():
    calls = []

    def base(ctx):
        calls.append("base")
        return 2.0

    register_metric("_t_base", default=False)(base)
    register_metric("_t_double", requires=("_t_base",), default=False)(lambda ctx, _t_base: 2 * _t_base)
    register_metric("_t_square", requires=("_t_base",), default=False)(lambda ctx, _t_base: _t_base ** 2)
    try:
        got = compute_metrics(MetricContext(SplitOutputs()), ["_t_double", "_t_square"])
    finally:
        for name in ("_t_base", "_t_double", "_t_square"):
            METRICS.remove(name)
    assert got == {"_t_base": 2.0, "_t_double": 4.0, "_t_square": 4.0}
    assert calls == ["base"]


def test_selection_follows_the_context():
    outputs = SplitOutputs()
    plain = select_metrics(MetricContext(outputs))
    assert set(plain) == {"ua", "ra", "ta", "ta_forgotten", "mia_efficacy", "mia_support", "mia_extrapolates"}
    with_ref = select_metrics(MetricContext(outputs, reference={}, reference_outputs=outputs, storage=(1, 4)))
    assert {"avg_gap", "kl_forget", "kl_test", "params_changed", "bytes"} <= set(with_ref)
    assert not any(n.endswith(("_noise", "_bypass")) for n in with_ref)  # controls need δ outputs
    views = type("Views", (), {"bypass": outputs, "noise": outputs})()
    controls = select_metrics(MetricContext(outputs, controls=views))
    assert {"ua_bypass", "ua_noise", "ra_noise", "ta_noise", "mia_noise"} <= set(controls)
    assert "mia_entropy" not in controls  # extras only when asked
    assert select_metrics(MetricContext(outputs), ["mia_entropy"])[-1] == "mia_entropy"
    with pytest.raises(UnknownNameError, match="mia_entropy"):
        select_metrics(MetricContext(outputs), ["mia_entorpy"])
    with pytest.raises(ConfigError, match="reference"):
        select_metrics(MetricContext(outputs), ["avg_gap"])


def test_metric_value():
    class Result:
        value = 12.5

    assert metric_value(Result()) == 12.5
    assert metric_value(None) is None and metric_value(3) == 3


def test_every_metric_is_a_documented_record_field():
    schema = (Path(__file__).parents[1] / "docs" / "records.md").read_text()
    documented = set(re.findall(r"`([a-z_]+)`", schema))
    assert set(METRICS.names()) <= documented, set(METRICS.names()) - documented
    assert set(GAP_METRICS) <= set(METRICS.names())


def test_list_metrics_marks_extras():
    from mubench.commands.list import LISTERS

    lines = list(LISTERS["metrics"](None))
    assert any(line.startswith("mia_entropy") and line.endswith("[extra]") for line in lines)
    assert any(line.startswith("ua ") and not line.endswith("[extra]") for line in lines)
    assert len(lines) == len(METRICS)
