"""Seed-level statistics of a per-seed metric: distributions, paired comparisons, ties, rank stability.

Every function takes a per-seed frame — columns dataset, model, scenario, method, variant, seed and
one value column (`report.per_seed_gaps` gives `avg_gap`, already computed against each seed's
Retrain) — so this module never reads records and has no view of how a value is made.

Comparisons are paired by seed: two methods of the same seed share the split, the original model
and the Retrain reference, and differencing removes that shared noise, which with 3–5 seeds is
most of it. On the n per-seed differences d:

- the interval is the paired t-interval, mean(d) ± t_{n-1, 1-α/2} · sd(d) / √n (`mean_interval`);
- the primary test is the paired t-test (`t_test_p`), two-sided, whose 1 − level interval is the
  one printed (p < 1 − level exactly when the interval excludes 0);
- beside it, the exact sign-flip permutation p (`sign_flip_p`): the share of all 2^n sign flips
  of d whose |sum| reaches the observed one. It assumes no normality, only that d is symmetric
  about 0 under the null; but its smallest two-sided value is 2 / 2^n — 0.25 with 3 seeds, 0.125
  with 4, 0.0625 with 5 — so below 6 seeds it can never reject at 0.05: it shows how far the
  t-test leans on normality, it cannot confirm a difference by itself;
- within one cell and metric the methods' p-values are Holm-corrected (`holm`): with nine
  methods, some unadjusted p < 0.05 is likely by chance alone.

What 3 seeds can and cannot show. With n = 3, t_{2, 0.975} = 4.303, so the 95% half-width is
4.303 / √3 ≈ 2.5 times the sample std of the differences: only differences several seed-stds
large are resolvable, and the std itself rests on 2 degrees of freedom. `resolvable_difference`
prints that half-width per cell. No interval or t-test is given below 3 paired seeds (NaN, and a
`note` says so). An earlier version printed the percentile bootstrap of the mean: with 3 seeds
that is [min, max] of the three differences, which covers the mean about 75% of the time, not 95%.

"Tied with the best" (`compare_to_best`) means not significantly different from the method with
the best mean after Holm correction — not shown equal: with 3 seeds a tie is mostly a statement
about how little 3 seeds resolve. The best is chosen from the same data, which favours finding it
different from the rest; the tie groups are, if anything, too small. `rank_stability` says how
much the methods' order moves from seed to seed (Kendall τ between per-seed rankings).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as sps

CELL = ["dataset", "model", "scenario"]
REFERENCE = "forget_vector"  # the variant `compare_to_reference` compares every method with
MIN_PAIRS = 3  # below this no interval or t-test: sd on 1 degree of freedom says nothing useful
MAX_EXACT = 20  # sign flips are enumerated exactly up to 2^20 (two halves of 2^10 each)
EXCLUDE = ("retrain", "original", "retrain_seed")  # never "the best": the reference and the calibration rows
NO_INTERVAL = f"n < {MIN_PAIRS}: no interval"


def _values(values) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    return v[np.isfinite(v)]


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}")


def half_width(values, level: float = 0.95) -> float:
    """t_{n-1, 1-α/2} · sd / √n of `values` (α = 1 − level); NaN below 3 values."""
    _check_level(level)
    v = _values(values)
    if v.size < MIN_PAIRS:
        return np.nan
    return float(sps.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))


def mean_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The t-interval of the mean of `values` at `level` (two-sided); (NaN, NaN) below 3 values."""
    v = _values(values)
    h = half_width(v, level)
    if np.isnan(h):
        return (np.nan, np.nan)
    return (float(v.mean() - h), float(v.mean() + h))


def t_test_p(values) -> float:
    """Two-sided one-sample t-test p of mean(values) = 0; NaN below 3 values. Zero spread gives
    1 for a zero mean and 0 otherwise (the t-interval is then the single point mean)."""
    v = _values(values)
    if v.size < MIN_PAIRS:
        return np.nan
    m, sd = v.mean(), v.std(ddof=1)
    if sd == 0:
        return 1.0 if m == 0 else 0.0
    return float(2 * sps.t.sf(abs(m) / (sd / np.sqrt(v.size)), v.size - 1))


def _signed_sums(x: np.ndarray) -> np.ndarray:
    signs = 1 - 2 * ((np.arange(2 ** x.size)[:, None] >> np.arange(x.size)) & 1)
    return signs @ x


def sign_flip_p(values) -> float:
    """Exact two-sided sign-flip permutation p of mean(values) = 0: the share of the 2^n sign
    assignments whose |sum| is at least the observed |sum| (the observed one counts). Smallest
    possible value 2 / 2^n (0.25 for n = 3). NaN for no values or more than 20."""
    v = _values(values)
    if v.size == 0 or v.size > MAX_EXACT:
        return np.nan
    half = v.size // 2
    sums = np.abs(_signed_sums(v[:half])[:, None] + _signed_sums(v[half:])[None, :])
    observed = abs(v.sum())
    return float(np.mean(sums >= observed - 1e-9 * np.abs(v).sum()))  # float noise in the sums


def holm(p) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input's order; NaN entries stay NaN and are not
    counted in the family. Sorted ascending, p_(i) becomes max_{j ≤ i} min(1, (m − j + 1) p_(j))."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def paired_test(diffs, level: float = 0.95) -> dict:
    """n_pairs, mean_diff, the t-interval, t-test p and exact sign-flip p of paired differences."""
    d = _values(diffs)
    low, high = mean_interval(d, level)
    return {"n_pairs": int(d.size), "mean_diff": float(d.mean()) if d.size else np.nan,
            "ci_low": low, "ci_high": high, "p": t_test_p(d), "p_signflip": sign_flip_p(d),
            "note": NO_INTERVAL if d.size < MIN_PAIRS else ""}


def gap_distribution(gaps: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, variant): the per-seed Avg. Gap values in seed order, n, mean, std, min, max."""
    rows = []
    for (*cell, variant), g in gaps.groupby(CELL + ["variant"], sort=False):
        g = g.sort_values("seed")
        v = g["avg_gap"].to_numpy(float)
        rows.append({**dict(zip(CELL, cell, strict=True)), "method": g["method"].iloc[0],
                     "variant": variant, "seeds": [int(s) for s in g["seed"]],
                     "gaps": [float(x) for x in v], "n": len(v), "mean": v.mean(),
                     "std": v.std(ddof=1) if len(v) > 1 else np.nan,
                     "min": v.min(), "max": v.max()})
    columns = CELL + ["method", "variant", "seeds", "gaps", "n", "mean", "std", "min", "max"]
    return pd.DataFrame(rows, columns=columns)


def paired_differences(per_seed: pd.DataFrame, reference: str = REFERENCE,
                       metric: str = "avg_gap") -> pd.DataFrame:
    """Per (cell, variant, seed) with the reference present for that seed: `diff` = the metric −
    the reference's (`ref_value`). For Avg. Gap, positive means the method sits further from
    Retrain than the reference. Retrain itself is left out (its gap is 0 by definition, so the
    row says nothing new); rows keep the input's order."""
    ref = per_seed[per_seed["variant"].eq(reference)][CELL + ["seed", metric]]
    ref = ref.rename(columns={metric: "ref_value"})
    others = per_seed[per_seed["variant"].ne(reference) & per_seed["method"].ne("retrain")]
    pairs = others.merge(ref, on=CELL + ["seed"], how="inner")  # keeps the left frame's order
    pairs["diff"] = pairs[metric] - pairs["ref_value"]
    return pairs.reset_index(drop=True)


COMPARE = ["n_pairs", "mean_diff", "ci_low", "ci_high", "p", "p_holm", "p_signflip"]


def compare_to_reference(per_seed: pd.DataFrame, reference: str = REFERENCE, metric: str = "avg_gap",
                         level: float = 0.95) -> pd.DataFrame:
    """Per (cell, variant): paired seeds, mean difference (method − reference), its paired
    t-interval at `level`, t-test p, Holm-corrected within the cell (`p_holm`), exact sign-flip
    p, and a `note` below 3 pairs. Cells without the reference give no rows."""
    _check_level(level)
    rows = []
    pairs = paired_differences(per_seed, reference, metric)
    for (*cell, variant), g in pairs.groupby(CELL + ["variant"], sort=False):
        rows.append({**dict(zip(CELL, cell, strict=True)), "method": g["method"].iloc[0],
                     "variant": variant, "reference": reference,
                     **paired_test(g.sort_values("seed")["diff"], level), "level": level})
    columns = CELL + ["method", "variant", "reference", *COMPARE, "note", "level"]
    out = pd.DataFrame(rows, columns=columns)
    for _, idx in out.groupby(CELL, sort=False).groups.items():
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p"])
    return out


def _cells(per_seed: pd.DataFrame, metric: str, exclude):
    """(cell, its rows as a seed × variant table, variant → method) per cell, without `exclude`d
    methods and missing values. A (cell, variant, seed) given twice is an error (pivot)."""
    kept = per_seed[~per_seed["method"].isin(exclude) & per_seed[metric].notna()]
    for cell, g in kept.groupby(CELL, sort=False):
        wide = g.pivot(index="seed", columns="variant", values=metric)
        yield cell, wide[list(dict.fromkeys(g["variant"]))], dict(zip(g["variant"], g["method"], strict=True))


def compare_to_best(per_seed: pd.DataFrame, metric: str = "avg_gap", lower_is_better: bool = True,
                    level: float = 0.95, exclude=EXCLUDE) -> pd.DataFrame:
    """Per (cell, variant): paired comparison with the cell's best variant (smallest mean of
    `metric`, or largest if not `lower_is_better`; `exclude`d methods take no part). mean_diff =
    method − best, its t-interval, t-test p, `p_holm` (Holm over the cell's compared methods),
    exact sign-flip p, and `tied`: True for the best itself and for every method whose p_holm ≥
    1 − level. Below 3 paired seeds there is no test: tied is False and `note` says so
    ("n < 3: no interval, not tested")."""
    _check_level(level)
    rows = []
    for cell, wide, methods in _cells(per_seed, metric, exclude):
        means = wide.mean()
        best = means.idxmin() if lower_is_better else means.idxmax()
        part = []
        for variant in wide.columns:
            if variant == best:
                test = {"n_pairs": int(wide[best].notna().sum()), "mean_diff": 0.0, "note": "best"}
            else:
                test = paired_test((wide[variant] - wide[best]).dropna(), level)
                test["note"] = f"{NO_INTERVAL}, not tested" if test["note"] else ""
            part.append({**dict(zip(CELL, cell, strict=True)), "method": methods[variant],
                         "variant": variant, "best": best, "metric": metric, **test, "level": level})
        part = pd.DataFrame(part)
        part["p_holm"] = holm(part["p"] if "p" in part else np.full(len(part), np.nan))
        part["tied"] = part["variant"].eq(best) | part["p_holm"].ge(1 - level)
        rows.append(part)
    columns = CELL + ["method", "variant", "best", "metric", *COMPARE, "tied", "note", "level"]
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.concat(rows, ignore_index=True).reindex(columns=columns)


def rank_stability(per_seed: pd.DataFrame, metric: str = "avg_gap", exclude=EXCLUDE) -> pd.DataFrame:
    """Per cell: Kendall τ between the methods' values (so their rankings) of every pair of
    seeds, over the methods both seeds have; its mean and min. 1 = every seed ranks the methods
    alike, −1 = reversed, ≈ 0 = unrelated. Fewer than 2 seeds (or 2 methods) give NaN and a note."""
    rows = []
    for cell, wide, _ in _cells(per_seed, metric, exclude):
        taus = []
        for i, j in combinations(wide.index, 2):
            both = wide.loc[[i, j]].dropna(axis=1)
            if both.shape[1] >= 2:
                tau = sps.kendalltau(both.iloc[0], both.iloc[1])[0]
                taus += [] if np.isnan(tau) else [float(tau)]
        rows.append({**dict(zip(CELL, cell, strict=True)), "n_seeds": len(wide),
                     "n_methods": wide.shape[1], "mean_tau": np.mean(taus) if taus else np.nan,
                     "min_tau": min(taus) if taus else np.nan,
                     "note": "" if taus else "fewer than 2 seeds with 2 methods: no τ"})
    return pd.DataFrame(rows, columns=CELL + ["n_seeds", "n_methods", "mean_tau", "min_tau", "note"])


def resolvable_difference(per_seed: pd.DataFrame, metric: str = "avg_gap", lower_is_better: bool = True,
                          level: float = 0.95, exclude=EXCLUDE) -> pd.DataFrame:
    """Per cell: the median half-width of the paired t-intervals against the best
    (`compare_to_best`), over the comparisons with the cell's usual number of pairs `n`: a mean
    difference below `resolvable` cannot be told from 0 with n seeds. NaN below 3 pairs."""
    cmp = compare_to_best(per_seed, metric, lower_is_better, level, exclude)
    cmp = cmp[cmp["variant"].ne(cmp["best"])]
    rows = []
    for cell, g in cmp.groupby(CELL, sort=False):
        n = int(g["n_pairs"].mode().max())
        half = ((g["ci_high"] - g["ci_low"]) / 2)[g["n_pairs"].eq(n)].dropna()
        rows.append({**dict(zip(CELL, cell, strict=True)), "n": n, "n_comparisons": len(half),
                     "resolvable": float(half.median()) if len(half) else np.nan, "level": level,
                     "note": "" if len(half) else NO_INTERVAL})
    return pd.DataFrame(rows, columns=CELL + ["n", "n_comparisons", "resolvable", "level", "note"])


def _p(x) -> str:
    return "" if pd.isna(x) else ("<0.001" if x < 0.001 else f"{x:.3f}")


def format_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Round numbers (p to 3 decimals), join lists, print `tied` as "tied"/"" and the interval as
    one "[low, high]" column named by its level (e.g. "95% CI"), so a stats frame reads as a table."""
    out = frame.drop(columns=[c for c in ("level", "reference", "best", "metric", "method")
                              if c in frame]).copy()
    for col in ("seeds", "gaps"):
        if col in out:
            fmt = "{:.2f}" if col == "gaps" else "{}"
            out[col] = out[col].map(lambda xs, f=fmt: ", ".join(f.format(x) for x in xs))
    for col in ("mean", "std", "min", "max", "mean_diff", "ci_low", "ci_high", "resolvable",
                "mean_tau", "min_tau"):
        if col in out:
            out[col] = out[col].map(lambda x: "" if pd.isna(x) else f"{x:.2f}")
    for col in ("p", "p_holm", "p_signflip"):
        if col in out:
            out[col] = out[col].map(_p)
    if "tied" in out:
        out["tied"] = out["tied"].map(lambda t: "tied" if t is True or t is np.True_ else "")
    if "note" in out:
        out["note"] = out["note"].fillna("")
    if {"ci_low", "ci_high"} <= set(out.columns):
        level = frame["level"].iloc[0] if len(frame) else 0.95
        where = out.columns.get_loc("ci_low")
        ci = "[" + out.pop("ci_low") + ", " + out.pop("ci_high") + "]"
        out.insert(where, f"{level * 100:g}% CI", ci.where(ci != "[, ]", ""))
    if "level" in frame and "resolvable" in out and len(frame):
        out = out.rename(columns={"resolvable": f"resolvable ({frame['level'].iloc[0] * 100:g}%)"})
    return out.reset_index(drop=True)
