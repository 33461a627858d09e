"""Seed statistics on hand-made per-seed gaps (the frame `report.per_seed_gaps` returns).

    finetune      seeds 0-2: 4.0, 2.25, 3.75
    forget_vector seeds 0-2: 2.0, 1.25, 1.5
    → paired differences FT − FV: 2.0, 1.0, 2.25, mean 1.75
    grad_ascent   seeds 0, 2 (seed 1 failed): 4.0, 3.5 → differences 2.0, 2.0: mean 2.0, CI [2, 2]
    another cell (random:10) has no forget_vector, so it gives no comparison rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mubench import stats

CELL = {"dataset": "digits", "model": "small_cnn", "scenario": "class:0"}


def _gaps():
    rows = []
    for method, per_seed in {"retrain": {0: 0.0, 1: 0.0, 2: 0.0},
                             "finetune": {0: 4.0, 1: 2.25, 2: 3.75},
                             "grad_ascent": {0: 4.0, 2: 3.5},
                             "forget_vector": {2: 1.5, 0: 2.0, 1: 1.25}}.items():  # unsorted seeds
        rows += [{**CELL, "method": method, "variant": method, "seed": s, "avg_gap": g}
                 for s, g in per_seed.items()]
    rows += [{**CELL, "scenario": "random:10", "method": "finetune", "variant": "finetune",
              "seed": s, "avg_gap": 1.0 + s} for s in range(3)]
    return pd.DataFrame(rows)


def test_gap_distribution_per_method():
    dist = stats.gap_distribution(_gaps()).set_index(["scenario", "variant"])
    fv = dist.loc[("class:0", "forget_vector")]
    assert fv["seeds"] == [0, 1, 2] and fv["gaps"] == [2.0, 1.25, 1.5]  # sorted by seed
    ft = dist.loc[("class:0", "finetune")]
    assert ft["mean"] == pytest.approx(10 / 3) and ft["std"] == pytest.approx(0.946485, abs=1e-6)
    assert (ft["min"], ft["max"], ft["n"]) == (2.25, 4.0, 3)
    assert dist.loc[("class:0", "grad_ascent"), "n"] == 2


def test_paired_differences_match_by_seed():
    pairs = stats.paired_differences(_gaps())
    ft = pairs[pairs["variant"].eq("finetune")].sort_values("seed")
    assert ft["diff"].tolist() == pytest.approx([2.0, 1.0, 2.25])
    assert "retrain" not in set(pairs["variant"])  # its gap is 0 by definition
    ga = pairs[pairs["variant"].eq("grad_ascent")]
    assert ga["seed"].tolist() == [0, 2]  # the failed seed has no pair


def test_comparison_interval_contains_the_mean_difference():
    cmp = stats.compare_to_reference(_gaps(), n_boot=2000, seed=0).set_index("variant")
    ft = cmp.loc["finetune"]
    assert ft["n_pairs"] == 3 and ft["mean_diff"] == pytest.approx(1.75)
    assert ft["ci_low"] <= 1.75 <= ft["ci_high"]
    assert 1.0 <= ft["ci_low"] < ft["ci_high"] <= 2.25  # resampled means stay within the data
    ga = cmp.loc["grad_ascent"]
    assert (ga["mean_diff"], ga["ci_low"], ga["ci_high"]) == pytest.approx((2.0, 2.0, 2.0))
    assert set(cmp["scenario"]) == {"class:0"}  # random:10 has no forget vector to compare with


def test_bootstrap_is_seeded():
    values = [0.3, -1.2, 2.5, 0.8, 1.1]
    first = stats.bootstrap_mean_ci(values, n_boot=500, seed=7)
    assert stats.bootstrap_mean_ci(values, n_boot=500, seed=7) == first
    assert stats.bootstrap_mean_ci(values, n_boot=500, seed=8) != first
    assert first[0] <= np.mean(values) <= first[1]


def test_bootstrap_of_two_values_by_hand():
    # Resamples of [0, 1] have means 0, 0.5 or 1 with chances 1/4, 1/2, 1/4, so the 2.5th and
    # 97.5th percentiles of many resampled means are 0 and 1; a 40% interval is [0.5, 0.5].
    assert stats.bootstrap_mean_ci([0.0, 1.0], n_boot=4000, seed=0) == (0.0, 1.0)
    assert stats.bootstrap_mean_ci([0.0, 1.0], n_boot=4000, seed=0, level=0.4) == (0.5, 0.5)
    assert np.isnan(stats.bootstrap_mean_ci([], seed=0)[0])


def test_format_stats_is_readable():
    shown = stats.format_stats(stats.compare_to_reference(_gaps(), n_boot=200, seed=0))
    row = shown[shown["variant"].eq("finetune")].iloc[0]
    assert row["mean_diff"] == "1.75" and row["95% CI"].startswith("[")
    dist = stats.format_stats(stats.gap_distribution(_gaps()))
    assert dist.loc[dist["variant"].eq("forget_vector"), "gaps"].item() == "2.00, 1.25, 1.50"
