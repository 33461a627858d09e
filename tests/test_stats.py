"""Seed statistics on hand-made per-seed gaps (the frame `report.per_seed_gaps` returns).

    finetune      seeds 0-2: 4.0, 2.25, 3.75
    forget_vector seeds 0-2: 2.0, 1.25, 1.5
    → paired differences FT − FV: 2.0, 1.0, 2.25, mean 1.75
    grad_ascent   seeds 0, 2 (seed 1 failed): 4.0, 3.5 → differences 2.0, 2.0: 2 pairs, no interval
    another cell (random:10) has no forget_vector, so it gives no comparison rows.

Hand-computed interval for differences [2.0, 1.0, 2.25]: mean 1.75, sd 0.661438, t_{2,0.975}
4.302653 → half-width 4.302653 · 0.661438 / √3 = 1.643103: [0.106897, 3.393103].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

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


T2 = 0.95 / np.sqrt(2 * 0.975 * 0.025)  # t_{2, 0.975} = 4.302653: for 2 df, t_p = (2p − 1) / √(2p(1 − p))


def test_three_seed_interval_is_wider_than_the_range_and_matches_the_hand_computation():
    # The percentile bootstrap of 3 values is [min, max] = [1, 4]; the t-interval is wider.
    d = [1.0, 2.0, 4.0]
    low, high = stats.mean_interval(d)
    half = T2 * np.std(d, ddof=1) / np.sqrt(3)  # 4.302653 · 1.527525 / 1.732051 = 3.794583
    assert (low, high) == pytest.approx((7 / 3 - half, 7 / 3 + half), abs=1e-12)
    assert low < min(d) and high > max(d)
    assert stats.half_width(d) == pytest.approx(3.794583, abs=1e-6)


def test_interval_agrees_with_scipy_and_its_level_is_the_stated_one():
    x = np.random.default_rng(0).normal(0.3, 1.0, size=40)
    ref = scipy_stats.ttest_1samp(x, 0).confidence_interval(0.95)
    assert stats.mean_interval(x, 0.95) == pytest.approx((ref.low, ref.high), abs=1e-9)
    ref90 = scipy_stats.ttest_1samp(x, 0).confidence_interval(0.90)
    low90, high90 = stats.mean_interval(x, 0.90)
    assert (low90, high90) == pytest.approx((ref90.low, ref90.high), abs=1e-9)
    low, high = stats.mean_interval(x, 0.95)
    assert low < low90 and high90 < high  # a 90% interval passed off as 95% fails here
    assert stats.t_test_p(x) == pytest.approx(scipy_stats.ttest_1samp(x, 0).pvalue, abs=1e-12)


def test_below_three_values_there_is_no_interval():
    assert all(np.isnan(stats.mean_interval([1.0, 2.0])))
    assert np.isnan(stats.t_test_p([1.0, 2.0])) and np.isnan(stats.half_width([5.0]))
    with pytest.raises(ValueError, match="level must be in"):
        stats.mean_interval([1.0, 2.0, 3.0], level=95)


def test_sign_flip_p_by_hand():
    # All 8 flips of [1, 2, 4]: |sums| 7, 5, 3, 1, 1, 3, 5, 7 → only ±(1+2+4) reach 7: 2/8.
    assert stats.sign_flip_p([1.0, 2.0, 4.0]) == 0.25
    # [1, 2, -4]: |sum| 1, the smallest any flip gives → 1.0. [3, 1, 1]: |sum| 5; the next
    # largest flips give 3 + 1 − 1 = 3 → only ±5 reach it: 2/8.
    assert stats.sign_flip_p([1.0, 2.0, -4.0]) == 1.0
    assert stats.sign_flip_p([3.0, 1.0, 1.0]) == 0.25
    # [1, 1, 1, 3]: |sum| 6; flips with |sum| ≥ 6: all plus and all minus (6), nothing else
    # (flipping a 1 gives 4) → 2/16.
    assert stats.sign_flip_p([1.0, 1.0, 1.0, 3.0]) == 0.125
    assert stats.sign_flip_p(np.arange(1.0, 11.0)) == 2 / 2 ** 10  # 10 values, both halves used


def test_holm_by_hand():
    # Sorted 0.01, 0.03, 0.04 → 3·0.01, 2·0.03, 1·0.04 = 0.03, 0.06, 0.04 → running max 0.06.
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = stats.holm([0.5, np.nan, 0.2])  # NaN is not in the family: m = 2
    assert adjusted[[0, 2]] == pytest.approx([0.5, 0.4]) and np.isnan(adjusted[1])
    assert stats.holm([0.4, 0.6]) == pytest.approx([0.8, 0.8])  # capped at 1 only above 1


def test_comparison_with_fv_is_a_paired_t_interval():
    cmp = stats.compare_to_reference(_gaps()).set_index("variant")
    ft = cmp.loc["finetune"]
    assert ft["n_pairs"] == 3 and ft["mean_diff"] == pytest.approx(1.75)
    assert (ft["ci_low"], ft["ci_high"]) == pytest.approx((0.106897, 3.393103), abs=1e-6)
    assert ft["p"] == pytest.approx(scipy_stats.ttest_1samp([2.0, 1.0, 2.25], 0).pvalue)
    assert ft["p_signflip"] == 0.25 and ft["note"] == ""
    ga = cmp.loc["grad_ascent"]  # 2 pairs: no interval, no t-test, said in the note
    assert ga["n_pairs"] == 2 and ga["mean_diff"] == 2.0
    assert np.isnan(ga["ci_low"]) and np.isnan(ga["p"]) and ga["note"] == "n < 3: no interval"
    assert ft["p_holm"] == pytest.approx(ft["p"])  # the only tested method of its cell
    assert set(cmp["scenario"]) == {"class:0"}  # random:10 has no forget vector to compare with


def _race(values: dict[str, list[float]], metric: str = "avg_gap"):
    return pd.DataFrame([{**CELL, "method": m, "variant": m, "seed": s, metric: v}
                         for m, vs in values.items() for s, v in enumerate(vs)])


def test_compare_to_best_ties_within_noise_and_not_far_away():
    gaps = _race({"retrain": [0.0, 0.0, 0.0, 0.0],  # left out: its gap is 0 by definition
                  "best": [1.0, 2.0, 1.5, 1.2],
                  "close": [1.1, 1.9, 1.7, 1.2],  # differences 0.1, -0.1, 0.2, 0: within noise
                  "far": [9.0, 10.5, 9.6, 9.9]})
    cmp = stats.compare_to_best(gaps).set_index("variant")
    assert "retrain" not in cmp.index and set(cmp["best"]) == {"best"}
    assert cmp.loc["best", "tied"] and cmp.loc["best", "note"] == "best"
    assert cmp.loc["close", "tied"] and not cmp.loc["far", "tied"]
    assert cmp.loc["far", "mean_diff"] == pytest.approx(8.325)
    assert cmp.loc["far", "p_holm"] == pytest.approx(2 * cmp.loc["far", "p"])  # family of 2
    assert cmp.loc["far", "p_holm"] < 0.05 <= cmp.loc["close", "p_holm"]


def test_compare_to_best_any_metric_and_direction():
    ua = _race({"a": [90.0, 91.0, 92.0], "b": [80.0, 80.5, 81.5]}, metric="ua")
    high = stats.compare_to_best(ua, metric="ua", lower_is_better=False).set_index("variant")
    assert high.loc["a", "note"] == "best" and high.loc["b", "mean_diff"] == pytest.approx(-10.33333, abs=1e-5)
    low = stats.compare_to_best(ua, metric="ua").set_index("variant")
    assert low.loc["b", "note"] == "best"
    two = stats.compare_to_best(_race({"a": [1.0, 2.0], "b": [5.0, 6.0]})).set_index("variant")
    assert not two.loc["b", "tied"] and two.loc["b", "note"] == "n < 3: no interval, not tested"


def test_kendall_tau_of_identical_and_reversed_rankings():
    same = _race({"a": [1.0, 1.5, 1.2], "b": [2.0, 2.5, 2.2], "c": [3.0, 3.1, 3.3]})
    row = stats.rank_stability(same).iloc[0]
    assert (row["n_seeds"], row["n_methods"], row["mean_tau"], row["min_tau"]) == (3, 3, 1.0, 1.0)
    flipped = _race({"a": [1.0, 3.0], "b": [2.0, 2.0], "c": [3.0, 1.0]})
    assert stats.rank_stability(flipped).iloc[0]["mean_tau"] == pytest.approx(-1.0)
    mixed = _race({"a": [1.0, 1.0, 3.0], "b": [2.0, 2.0, 2.0], "c": [3.0, 3.0, 1.0]})
    row = stats.rank_stability(mixed).iloc[0]  # pairs (0,1): 1, (0,2): −1, (1,2): −1
    assert row["mean_tau"] == pytest.approx(-1 / 3) and row["min_tau"] == -1.0
    one = stats.rank_stability(_race({"a": [1.0], "b": [2.0]})).iloc[0]
    assert np.isnan(one["mean_tau"]) and one["note"].startswith("fewer than 2 seeds")


def test_resolvable_difference_is_the_median_half_width():
    gaps = _race({"best": [1.0, 1.0, 1.0], "x": [2.0, 3.0, 5.0], "y": [1.0, 2.0, 2.0],
                  "z": [4.0, 4.0, 7.0]})
    # differences vs best: x [1, 2, 4], y [0, 1, 1], z [3, 3, 6]; half-widths 4.3027·sd/√3
    halves = [T2 * np.std(d, ddof=1) / np.sqrt(3) for d in ([1, 2, 4], [0, 1, 1], [3, 3, 6])]
    row = stats.resolvable_difference(gaps).iloc[0]
    assert (row["n"], row["n_comparisons"]) == (3, 3)
    assert row["resolvable"] == pytest.approx(np.median(halves))
    few = stats.resolvable_difference(_race({"a": [1.0, 2.0], "b": [3.0, 5.0]})).iloc[0]
    assert np.isnan(few["resolvable"]) and few["note"] == "n < 3: no interval"


def test_format_stats_is_readable():
    shown = stats.format_stats(stats.compare_to_reference(_gaps()))
    row = shown[shown["variant"].eq("finetune")].iloc[0]
    assert row["mean_diff"] == "1.75" and row["95% CI"] == "[0.11, 3.39]" and row["p_signflip"] == "0.250"
    assert list(shown.columns[shown.columns.get_loc("n_pairs"):][:3]) == ["n_pairs", "mean_diff", "95% CI"]
    ga = shown[shown["variant"].eq("grad_ascent")].iloc[0]
    assert (ga["95% CI"], ga["p"], ga["note"]) == ("", "", "n < 3: no interval")
    assert "90% CI" in stats.format_stats(stats.compare_to_reference(_gaps(), level=0.9))
    tied = stats.format_stats(stats.compare_to_best(_gaps()))
    assert set(tied["tied"]) <= {"tied", ""} and "best" not in tied.columns
    dist = stats.format_stats(stats.gap_distribution(_gaps()))
    assert dist.loc[dist["variant"].eq("forget_vector"), "gaps"].item() == "2.00, 1.25, 1.50"
