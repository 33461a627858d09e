"""What each cell's calibration rows say about the other rows: null bands, which columns can tell
forgetting from not forgetting there, and the flags a reader must see beside a number.

Two calibration rows run in every cell (mubench/methods/original.py, retrain.py): the untouched
Original (what doing nothing scores) and Retrain with an independent seed (what an ideal unlearner
scores: a second model that never saw D_f). From them and from the attacks' own null fields:

- `null_bands`: per cell and attack column with a null, [lo, hi] of what never-trained models read
  (the records' `*_null_lo/hi`, every seed, and the independent Retrain's value of the column);
- `calibration_check`: per cell and column, whether the Original is separated from Retrain beyond
  that noise (metrics: beyond the independent Retrain's largest per-seed distance to Retrain;
  attacks: outside the null band). A column that is not is *non-discriminating* in that cell: its
  differences between methods there are noise, whoever they favour (SPEC §5's sanity check, run);
- `calibration_flags`: per row, the artifacts that look like results — an SVC extrapolation
  (`mia_extrapolates`, on how many seeds), an attack read outside its null band (above:
  identifiable as trained on D_f; below: identifiable as over-forgotten), a degenerate attack
  (saturated φ, no IN/OUT separation), and a no-op (0 parameters changed, δ ≈ 0, or every table
  metric equal to the Original's on every seed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attacks import degenerate_fields, report_columns
from ..attacks import null_bands as attack_null_fields
from .records import CELL, GAP_METRICS, TABLE_METRICS, current_ok

ORIGINAL, INDEPENDENT = "original", "retrain_seed"  # the calibration rows (their method names)
CALIBRATION_FLAGS = {ORIGINAL: "calibration: no unlearning", INDEPENDENT: "calibration: an independent Retrain"}
NOOP_DELTA_NORM = 1e-3  # ‖δ‖₂ below this: the input perturbation changes no prediction in practice
SAME_AS_ORIGINAL = 1e-9  # every table metric within this of the Original's, per seed: a no-op
DEGENERATE_SHARE = 50.0  # % of D_f an attack cannot read (its `Attack.degenerate` fields) that makes it degenerate


def _num(frame: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(frame[col], errors="coerce") if col in frame else pd.Series(np.nan, index=frame.index)


def null_bands(df: pd.DataFrame) -> dict[tuple, dict[str, tuple[float, float]]]:
    """cell → attack column → (lo, hi): the range of the records' null fields over the cell's
    rows and seeds, widened to the independent Retrain's values of that column."""
    ok = current_ok(df)
    out: dict[tuple, dict] = {}
    for cell, g in ok.groupby(CELL, sort=False):
        bands = {}
        for column, (lo_field, hi_field) in attack_null_fields().items():
            values = [*_num(g, lo_field).dropna(), *_num(g, hi_field).dropna(),
                      *_num(g[g["method"].eq(INDEPENDENT)], column).dropna()]
            if values:
                bands[column] = (float(min(values)), float(max(values)))
        out[tuple(cell)] = bands
    return out


def _per_seed(g: pd.DataFrame, method: str, column: str) -> pd.Series:
    rows = g[g["method"].eq(method)]
    return _num(rows, column).set_axis(rows["seed"].to_numpy()).dropna()


def calibration_check(df: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, column): the Original's mean, what Retrain-like noise allows (`noise` for
    metrics, `null_lo/hi` for attacks) and `discriminating` (False: the column cannot tell the
    Original from Retrain in this cell). Cells without an Original row give no rows; a metric
    without an independent Retrain row reads discriminating NaN (not checked)."""
    ok = current_ok(df)
    bands = null_bands(df)
    rows = []
    for cell, g in ok.groupby(CELL, sort=False):
        if not g["method"].eq(ORIGINAL).any():
            continue
        for column in (*GAP_METRICS, "avg_gap"):
            orig, ref = _per_seed(g, ORIGINAL, column), _per_seed(g, "retrain", column)
            twin = _per_seed(g, INDEPENDENT, column)
            if column == "avg_gap":  # already a distance to Retrain
                separation, noise = orig.mean(), twin.max() if len(twin) else np.nan
            else:
                separation = (orig - ref).dropna().mean()
                separation = abs(separation) if pd.notna(separation) else np.nan
                noise = (twin - ref).dropna().abs().max() if len(twin) else np.nan
            checked = pd.notna(separation) and pd.notna(noise)
            rows.append({**dict(zip(CELL, cell, strict=True)), "column": column, "original": orig.mean(),
                         "separation": separation, "noise": noise, "null_lo": np.nan, "null_hi": np.nan,
                         "discriminating": bool(separation > noise) if checked else np.nan})
        for column, (lo, hi) in bands.get(tuple(cell), {}).items():
            orig = _per_seed(g, ORIGINAL, column)
            if orig.empty:
                continue
            rows.append({**dict(zip(CELL, cell, strict=True)), "column": column, "original": orig.mean(),
                         "separation": np.nan, "noise": np.nan, "null_lo": lo, "null_hi": hi,
                         "discriminating": bool(not lo <= orig.mean() <= hi)})
    columns = CELL + ["column", "original", "separation", "noise", "null_lo", "null_hi", "discriminating"]
    return pd.DataFrame(rows, columns=columns)


def column_label(column: str) -> str:
    """A record column's table header, without its '(ideal …)' part."""
    names = {**TABLE_METRICS, **report_columns("summary")}
    return names.get(column, column).split(" (")[0]


def non_discriminating(df: pd.DataFrame) -> dict[tuple, list[str]]:
    """cell → the labels of its non-discriminating columns (calibration_check)."""
    check = calibration_check(df)
    out: dict[tuple, list[str]] = {}
    for r in check[check["discriminating"].eq(False)].itertuples():
        out.setdefault((r.dataset, r.model, r.scenario), []).append(column_label(r.column))
    return out


def calibration_flags(df: pd.DataFrame) -> dict[tuple, list[str]]:
    """(dataset, model, scenario, variant) → the flags of that row (see the module docstring)."""
    bands = null_bands(df)
    degenerate = degenerate_fields()
    out: dict[tuple, list[str]] = {}
    for cell, rows in current_ok(df).groupby(CELL, sort=False):
        cell_bands = bands.get(tuple(cell), {})
        for variant, g in rows.groupby("variant", sort=False):
            method, flags = g["method"].iloc[0], []
            if method in CALIBRATION_FLAGS:
                flags.append(CALIBRATION_FLAGS[method])
            hits = int(_num(g, "mia_extrapolates").fillna(0).astype(bool).sum())
            if hits:
                flags.append(f"MIA-Efficacy extrapolates ({hits}/{len(g)} seeds)")
            if method not in ("retrain", ORIGINAL):
                flags += _noop(g, rows)
            if method != "retrain":
                for column, (lo, hi) in cell_bands.items():
                    mean = _num(g, column).mean()
                    if pd.notna(mean) and not lo <= mean <= hi:
                        side = "above" if mean > hi else "below"
                        what = "identifiable" if side == "above" else "identifiable: over-forgetting"
                        flags.append(f"{column_label(column)} {side} null band ({what})")
            for field, text in degenerate.items():
                share = _num(g, field).mean()
                if pd.notna(share) and share >= DEGENERATE_SHARE:
                    flags.append(text.format(share))
            out[(*cell, variant)] = flags
    return out


def _noop(g: pd.DataFrame, cell_rows: pd.DataFrame) -> list[str]:
    """A method that changed nothing: 0 parameters, δ ≈ 0, or the Original's numbers on every seed."""
    if _num(g, "params_changed").eq(0).all():
        return ["no-op: 0 parameters changed"]
    norms = [i.get("delta_norm") for i in g.get("info", pd.Series(dtype=object)) if isinstance(i, dict)]
    if norms and len(norms) == len(g) and all(n is not None and n < NOOP_DELTA_NORM for n in norms):
        return [f"no-op: ‖δ‖₂ < {NOOP_DELTA_NORM:g}"]
    original = cell_rows[cell_rows["method"].eq(ORIGINAL)].set_index("seed")
    if original.empty:
        return []
    same = 0
    for r in g.itertuples():
        if r.seed in original.index and all(
                abs(float(getattr(r, m)) - float(original.at[r.seed, m])) <= SAME_AS_ORIGINAL for m in GAP_METRICS):
            same += 1
    return [f"no-op: reads as the Original on {same}/{len(g)} seeds"] if same == len(g) else []

