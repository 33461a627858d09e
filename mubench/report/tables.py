"""Tables as data: the expected grid, missing and failed jobs, per-seed gaps, mean ± std over
seeds, and the summary table of strings that every renderer prints."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from .. import stats
from ..aggregate import aggregate
from .calibration import calibration_flags, non_discriminating, null_bands
from .records import (
    CELL,
    JOB,
    current,
    current_ok,
    method_label,
    sort_rows,
    table_metrics,
    with_gaps,
)


def expected_jobs(df: pd.DataFrame) -> pd.DataFrame:
    """The grid the records imply: per cell, every variant seen × every seed seen (Retrain is
    always expected, since every gap needs it)."""
    rows = []
    for cell, group in df.groupby(CELL, sort=False):
        variants = dict(zip(group["variant"], group["method"], strict=False))
        variants.setdefault("retrain", "retrain")
        for variant, method in variants.items():
            for seed in sorted(group["seed"].dropna().unique()):
                rows.append((*cell, method, variant, int(seed)))
    return pd.DataFrame(rows, columns=JOB)


def missing_jobs(df: pd.DataFrame) -> pd.DataFrame:
    """Expected (cell, variant, seed) with no record at all."""
    have = df[CELL + ["variant", "seed"]].astype({"seed": "int64"}).drop_duplicates()
    merged = expected_jobs(df).merge(have, how="left", on=CELL + ["variant", "seed"], indicator=True)
    return merged[merged["_merge"].eq("left_only")].drop(columns="_merge").reset_index(drop=True)


def failed_jobs(df: pd.DataFrame) -> pd.DataFrame:
    """Current records with status failed (a later ok record of the same job hides older fails)."""
    cur = current(df)
    cols = JOB + [c for c in ("error", "traceback_file", "key") if c in df]
    return cur[cur["status"].ne("ok")][cols].reset_index(drop=True)


def per_seed_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """(cell, method, variant, seed, avg_gap) for every ok job with a Retrain: the input of stats."""
    g = current_ok(with_gaps(df))
    g = g[g["avg_gap"].notna()]
    return g[JOB + ["avg_gap"]].reset_index(drop=True)


def summary_stats(df: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, variant, table metric): mean, std (ddof 1) over the ok seeds, and how many of
    the expected seeds are ok, failed or missing (`mubench.aggregate`)."""
    df = with_gaps(df)
    expected = expected_jobs(df)
    have = current(df).drop(columns=["method"]).astype({"seed": "int64"})
    jobs = expected.merge(have, how="left", on=CELL + ["variant", "seed"])
    jobs["status"] = jobs["status"].fillna("missing")
    stats = aggregate(jobs, CELL + ["variant"], table_metrics(df))
    methods = expected.drop_duplicates(CELL + ["variant"]).set_index(CELL + ["variant"])["method"]
    stats.insert(len(CELL), "method", [methods[tuple(r)] for r in stats[CELL + ["variant"]].itertuples(index=False)])
    stats.insert(len(CELL) + 2, "label", stats["variant"].map(method_label))
    return sort_rows(stats, ["variant"])


def format_number(metric: str, mean: float, std: float) -> str:
    """`mean ± std` as every table prints it (decimals by metric; no ± for NaN std)."""
    if metric == "params_changed":
        text = f"{mean:,.0f}"
        return text if not (std > 0) else f"{text} ± {std:,.0f}"
    if metric == "rte_s":  # seconds span 1 s (FV-arith) to hours (Retrain): decimals by size
        digits = 0 if mean >= 100 else 1 if mean >= 10 else 2
        text = f"{mean:,.{digits}f}"
        return text if math.isnan(std) else f"{text} ± {std:,.{digits}f}"
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def _seed_status(r) -> str:
    parts = [f"{r.n_ok}/{r.n_expected}"]
    parts += [f"{n} {what}" for n, what in ((r.n_failed, "failed"), (r.n_missing, "missing")) if n]
    return parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")


UNSTABLE_UA_RANGE = 20.0  # SPEC §3: a per-seed UA range above this many points flags a row


def row_flags(df: pd.DataFrame) -> dict[tuple, str]:
    """(dataset, model, scenario, label) → what a reader must see beside the numbers: the tuning
    protocol of tuned rows ("tuned (heldout)", and "selected on this forget set" where the search
    selected on the reported forget set: report/transfer.py), "unstable" where the ok seeds' UA spans more
    than UNSTABLE_UA_RANGE points (a method flipping between forgetting and not, SPEC §3), and
    the calibration flags (calibration rows, SVC extrapolations, attacks outside their null
    band, degenerate attacks, no-ops: report/calibration.py)."""
    from .transfer import SELECTED_HERE, selected_here_rows

    ok = current_ok(df)
    calibrated = calibration_flags(df)
    selected = selected_here_rows(df)
    out = {}
    for (*cell, variant), g in ok.groupby(CELL + ["variant"], sort=False):
        flags = []
        if "tuning_protocol" in g and g["tuning_protocol"].notna().all():
            flags.append(f"tuned ({', '.join(sorted(set(g['tuning_protocol'])))})")
            if (*cell, variant) in selected:
                flags.append(SELECTED_HERE)
        ua = pd.to_numeric(g["ua"], errors="coerce").dropna()
        if len(ua) > 1 and ua.max() - ua.min() > UNSTABLE_UA_RANGE:
            flags.append(f"unstable (UA range {ua.max() - ua.min():.1f})")
        flags += calibrated.get((*cell, variant), [])
        out[(*cell, method_label(variant))] = "; ".join(flags)
    return out


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rendered-ready table: index (dataset, model, scenario, method label), Retrain first;
    columns UA, RA, TA, MIA-Efficacy, Avg. Gap, RTE (s), params changed (mean ± std over the ok
    seeds), the attacks' summary columns, `seeds` ("2/3 (1 failed)") and `flags` (`row_flags`).
    A variant with no ok seed reads `failed`/`missing`. Each cell ends with a `null band` row:
    per attack column, what models that never saw D_f read (report/calibration.py)."""
    df = with_gaps(df)
    stats = summary_stats(df)
    flags = row_flags(df)
    names = table_metrics(df)
    rows = {}
    for r in stats.itertuples():
        where = (r.dataset, r.model, r.scenario, r.label)
        row = rows.setdefault(where, {"seeds": _seed_status(r), "flags": flags.get(where, "")})
        if r.n_values:
            row[names[r.metric]] = format_number(r.metric, r.mean, r.std)
        elif r.n_ok:
            row[names[r.metric]] = "n/a"  # ok jobs without this value (e.g. no Retrain, no attack)
        else:
            row[names[r.metric]] = "failed" if r.n_failed else "missing"
    for cell, bands in null_bands(df).items():
        shown = {names[c]: f"[{lo:.1f}, {hi:.1f}]" for c, (lo, hi) in bands.items() if c in names}
        if shown and any(k[:3] == cell for k in rows):
            rows[(*cell, NULL_BAND_ROW)] = {**shown, "seeds": "", "flags": "what never-trained models read"}
    table = pd.DataFrame.from_dict(rows, orient="index").fillna("")
    table.index = pd.MultiIndex.from_tuples(table.index, names=CELL + ["method"])
    table = _cells_in_order(table[list(names.values()) + ["seeds", "flags"]])
    table.attrs["cell_notes"] = cell_notes(df)  # what renderers print under each cell's table
    return table


NULL_BAND_ROW = "null band"  # the pseudo-row under each cell's rows: each attack column's band


def _cells_in_order(table: pd.DataFrame) -> pd.DataFrame:
    """Each cell's rows together (the null-band row was appended after every cell's rows)."""
    cells = list(dict.fromkeys(table.index.droplevel("method")))
    order = {c: i for i, c in enumerate(cells)}
    keys = [order[k[:3]] for k in table.index]
    return table.iloc[sorted(range(len(table)), key=lambda i: keys[i])]


def per_cell(table: pd.DataFrame) -> Iterable[tuple[tuple, pd.DataFrame]]:
    """A summary table's (dataset, model, scenario) parts, in order, each indexed by method."""
    for cell, part in table.groupby(level=CELL, sort=False):
        yield cell, part.droplevel(CELL)


def cell_notes(df: pd.DataFrame) -> dict[tuple, list[str]]:
    """cell → the sentences printed under its table: its non-discriminating columns, and the
    smallest Avg. Gap difference its seeds resolve (`stats.resolvable_difference`)."""
    out: dict[tuple, list[str]] = {}
    for cell, labels in non_discriminating(df).items():
        out.setdefault(cell, []).append(
            f"Non-discriminating here: {', '.join(labels)}. The Original (no unlearning) reads within Retrain-like "
            "noise on them (metrics: within the independent Retrain's largest distance to Retrain; attacks: inside "
            "the null band), so in this cell they cannot tell forgetting from not forgetting: do not rank methods "
            "on them here (a method outside an attack's band differs from Retrain in a way doing nothing does not).")
    for r in stats.resolvable_difference(per_seed_gaps(df)).itertuples():
        if pd.notna(r.resolvable):
            out.setdefault((r.dataset, r.model, r.scenario), []).append(
                f"With {r.n} seeds, Avg. Gap differences below {r.resolvable:.2f} points are not resolvable here "
                f"(median half-width of the paired {r.level:.0%} t-intervals against the best method).")
    return out
