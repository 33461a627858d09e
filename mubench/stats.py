"""Seed-level statistics of Avg. Gap: the per-seed distribution, and paired comparisons with FV.

Every function takes the per-seed gaps that `report.per_seed_gaps` returns — columns dataset,
model, scenario, method, variant, seed, avg_gap (already computed against each seed's Retrain)
— so this module never reads records and has no view of how a gap is made.

The comparison is paired by seed because the forget vector and a baseline of the same seed share
the split, the original model and the Retrain reference: differencing removes that shared noise,
which with 3–5 seeds is most of it. The interval is a percentile bootstrap over the seed-level
differences with a seeded generator, so a report is reproducible to the digit. With few seeds it
is a rough interval (3 seeds give only 10 distinct resamples); the report shows `n_pairs`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CELL = ["dataset", "model", "scenario"]
REFERENCE = "forget_vector"  # the variant every other method is compared with


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


def bootstrap_mean_ci(values, n_boot: int = 10_000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (resampled with replacement)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (float(low), float(high))


def paired_differences(gaps: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """Per (cell, variant, seed) with the reference present for that seed: `diff` = gap − the
    reference's gap. Positive means the method sits further from Retrain than the reference.
    Retrain itself is left out (its gap is 0 by definition, so the row says nothing new);
    rows keep the input's order."""
    ref = gaps[gaps["variant"].eq(reference)][CELL + ["seed", "avg_gap"]]
    ref = ref.rename(columns={"avg_gap": "ref_gap"})
    others = gaps[gaps["variant"].ne(reference) & gaps["method"].ne("retrain")]
    pairs = others.merge(ref, on=CELL + ["seed"], how="inner")  # keeps the left frame's order
    pairs["diff"] = pairs["avg_gap"] - pairs["ref_gap"]
    return pairs.reset_index(drop=True)


def compare_to_reference(gaps: pd.DataFrame, reference: str = REFERENCE, n_boot: int = 10_000,
                         seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Per (cell, variant): paired seeds, mean difference of Avg. Gap (method − reference) and
    its bootstrap interval. Cells without the reference give no rows."""
    rows = []
    pairs = paired_differences(gaps, reference)
    for (*cell, variant), g in pairs.groupby(CELL + ["variant"], sort=False):
        d = g.sort_values("seed")["diff"].to_numpy(float)
        low, high = bootstrap_mean_ci(d, n_boot=n_boot, seed=seed, level=level)
        rows.append({**dict(zip(CELL, cell, strict=True)), "method": g["method"].iloc[0],
                     "variant": variant, "reference": reference, "n_pairs": len(d),
                     "mean_diff": float(d.mean()), "ci_low": low, "ci_high": high,
                     "level": level})
    columns = CELL + ["method", "variant", "reference", "n_pairs", "mean_diff", "ci_low",
                      "ci_high", "level"]
    return pd.DataFrame(rows, columns=columns)


def format_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Round numbers and join lists so a stats frame prints as a readable table."""
    out = frame.drop(columns=[c for c in ("level", "reference") if c in frame]).copy()
    for col in ("seeds", "gaps"):
        if col in out:
            fmt = "{:.2f}" if col == "gaps" else "{}"
            out[col] = out[col].map(lambda xs, f=fmt: ", ".join(f.format(x) for x in xs))
    for col in ("mean", "std", "min", "max", "mean_diff", "ci_low", "ci_high"):
        if col in out:
            out[col] = out[col].map(lambda x: "" if pd.isna(x) else f"{x:.2f}")
    if {"ci_low", "ci_high"} <= set(out.columns):
        level = int(round(frame["level"].iloc[0] * 100)) if len(frame) else 95
        out[f"{level}% CI"] = "[" + out.pop("ci_low") + ", " + out.pop("ci_high") + "]"
    return out.drop(columns=["method"]).reset_index(drop=True)
