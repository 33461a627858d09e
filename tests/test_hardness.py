"""Hardness-stratified forget sets (issue 25, item 4): `random:P:atyp-low|mid|high` choose P% of
the training set by a per-example score of the cell's original (mubench/hardness.py), and the
family `random:P:atyp` stands for the three strata."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mubench.errors import ConfigError
from mubench.hardness import atypicality_scores, entanglement_score, tow
from mubench.scenarios import Family, make_split, parse_entry, parse_scenario


def test_strata_parse_and_a_family_expands_to_the_three():
    sc = parse_scenario("random:10:atyp-high")
    assert (sc.kind, sc.percent, sc.hardness, sc.spec) == ("random", 10.0, "atyp-high", "random:10:atyp-high")
    assert parse_scenario("random:10").hardness == "" and parse_scenario("random:10").spec == "random:10"
    family = parse_entry("random:10:atyp")
    assert family == Family("random", percents=(10.0,), hardness="atyp") and family.spec == "random:10:atyp"
    assert [m.spec for m in family.members(10)] == ["random:10:atyp-low", "random:10:atyp-mid", "random:10:atyp-high"]
    assert [m.spec for m in parse_entry("random:1+5:atyp").members(10)][::3] == ["random:1:atyp-low", "random:5:atyp-low"]
    with pytest.raises(ConfigError, match="unknown forget-set choice 'hard'"):
        parse_scenario("random:10:hard")


def _labels(n=200, classes=4):
    return np.arange(n) % classes, np.arange(40) % classes


def test_a_stratified_split_is_deterministic_takes_its_stratum_and_differs_from_random():
    train_y, test_y = _labels()
    scores = np.random.default_rng(7).normal(size=len(train_y))
    high = make_split(train_y, test_y, "random:10:atyp-high", 0, scores=scores)
    assert np.array_equal(high.forget, make_split(train_y, test_y, "random:10:atyp-high", 0, scores=scores).forget)
    assert len(high.forget) == 20 and set(high.forget) == set(np.argsort(scores)[-20:])
    low = make_split(train_y, test_y, "random:10:atyp-low", 0, scores=scores)
    assert set(low.forget) == set(np.argsort(scores)[:20])
    mid = make_split(train_y, test_y, "random:10:atyp-mid", 0, scores=scores)
    assert set(mid.forget) == set(np.argsort(scores)[90:110])  # centred on the median rank
    plain = make_split(train_y, test_y, "random:10", 0)
    assert not np.array_equal(plain.forget, high.forget) and high.hash != plain.hash
    assert np.array_equal(np.sort(np.concatenate([high.forget, high.retain])), np.arange(len(train_y)))
    # Ties are broken by the run seed alone: with equal scores, two seeds take two sets.
    flat = np.zeros(len(train_y))
    a = make_split(train_y, test_y, "random:10:atyp-high", 0, scores=flat).forget
    assert np.array_equal(a, make_split(train_y, test_y, "random:10:atyp-high", 0, scores=flat).forget)
    assert not np.array_equal(a, make_split(train_y, test_y, "random:10:atyp-high", 1, scores=flat).forget)
    with pytest.raises(ConfigError, match="chooses its forget set by the original model's per-example scores"):
        make_split(train_y, test_y, "random:10:atyp-high", 0)


def test_atypicality_is_own_centroid_distance_over_the_nearest_other():
    """Class 0 at x = 0, 0, 0, 3 (centroid 0.75), class 1 at x = 4, 4, 4, 4 (centroid 4): the
    example at 3 sits near class 1. Its score is |3 − 0.75| / |3 − 4| = 2.25; the others'
    |0 − 0.75| / |0 − 4| = 0.1875 and 0 / ... = 0 for class 1."""
    features = torch.tensor([[0.0], [0.0], [0.0], [3.0], [4.0], [4.0], [4.0], [4.0]])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    scores = atypicality_scores(features, labels)
    assert scores[3] == pytest.approx(2.25) and scores[:3] == pytest.approx([0.1875] * 3)
    assert scores[4:] == pytest.approx([0.0] * 4) and int(np.argmax(scores)) == 3


def test_entanglement_score_and_tow_by_hand():
    # forget = {0, 1} at ±1 around 0, retain = {2, 3} at ±1 around 4: within 1 + 1, between
    # ½(2² + 2²) = 4 → ES 0.5
    features = torch.tensor([[-1.0], [1.0], [3.0], [5.0]])
    assert entanglement_score(features, np.array([0, 1])) == pytest.approx(0.5)
    assert tow(90, 99, 98, 100, 99, 98) == pytest.approx(0.9)
    assert tow(100, 99, 98, 100, 99, 98) == 1.0
    assert tow(50, 90, 80, 100, 100, 100) == pytest.approx(0.5 * 0.9 * 0.8)


def test_the_runner_makes_the_strata_from_the_cells_original(tmp_path):
    """End to end on digits: the split job reads the original (a worker's job, not index
    arithmetic), the records carry each stratum's measured ES, and the strata order what they
    claim: Retrain misclassifies the held-out most atypical examples far more than the most
    typical ones (measured UA 54.8 vs 0.0 on seed 0)."""
    from _cli import run_cli

    result = run_cli("run", "--scenarios", "random:10:atyp", "--methods", "finetune", "--seeds", "0",
                     "--set", "recipe.epochs=3", "--set", "evaluation.attacks=svc", "--backend", "sequential",
                     "--quiet", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    records = [json.loads(p.read_text()) for p in (tmp_path / "records" / "method").glob("*.json")]
    retrain = {r["scenario"]: r for r in records if r["method"] == "retrain"}
    assert set(retrain) == {"random:10:atyp-low", "random:10:atyp-mid", "random:10:atyp-high"}
    assert retrain["random:10:atyp-high"]["ua"] > retrain["random:10:atyp-low"]["ua"] + 20
    assert all(r["family"] == "random:10:atyp" and math.isfinite(r["forget_es"]) for r in records)
    assert len({r["split_hash"] for r in retrain.values()}) == 3
    splits = [json.loads(p.read_text()) for p in (tmp_path / "records" / "split").glob("*.json")]
    assert sorted(s["forget_es"] for s in splits) == sorted(r["forget_es"] for r in retrain.values())
