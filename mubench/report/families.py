"""Per-family aggregates (issue 25): a conclusion over many forget sets, not one.

A scenario family (`class:all`, `class:sample:K`, `class:rest:K`, `random:1+10+50`) is run as its
member forget sets, each an ordinary cell whose records name the family. Its aggregate is the
mean over the family's forget sets within each seed, then mean ± std over seeds: the seed is the
unit of replication (a forget set is a condition every seed runs), so the std says how much a
conclusion moves with the training run, and `across sets` (the std over forget sets of their
seed-means) says how much it moves with the forget set. A seed that lacks a member's ok record
is left out of the family's numbers (it would average another family), and `seeds` says so.

Below the aggregate, the paired comparison with the family's best method (stats.compare_to_best
on the per-seed family means) says which differences the seeds resolve.
"""

from __future__ import annotations

import pandas as pd

from .. import stats
from .records import current_ok, method_label, sort_rows, with_gaps

METRICS = {"ua": "UA", "ra": "RA", "ta": "TA", "mia_efficacy": "MIA-Efficacy", "avg_gap": "Avg. Gap",
           "tow": "ToW"}  # ToW: Zhao et al.'s tug of war (mubench/hardness.py)
DIGITS = {"tow": 3}  # decimals where 2 do not fit the metric's scale
FAMILY = ["dataset", "model", "family"]


def family_records(df: pd.DataFrame) -> pd.DataFrame:
    """The ok, newest records that name a family (with gaps): a member's own rows, kept even where
    the same forget set also ran alone (per-cell tables show that one)."""
    df = with_gaps(df)
    if "family" not in df:
        return df.iloc[0:0]
    return df[~df["superseded"] & df["status"].eq("ok") & df["family"].notna() & df["family"].astype(str).ne("")]


def family_seed_means(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """(per (dataset, model, family, method, variant, seed): the mean over the family's forget sets
    of each metric, only where the seed has every member; {(dataset, model, family): members}).
    The family stands in the `scenario` column too, so stats' per-cell functions take it as is."""
    ok = family_records(df)
    if ok.empty:
        return pd.DataFrame(), {}
    members = {key: sorted(set(g["scenario"])) for key, g in ok.groupby(FAMILY, sort=False)}
    rows = []
    for (*fam, method, variant, seed), g in ok.groupby(FAMILY + ["method", "variant", "seed"], sort=False):
        if set(g["scenario"]) != set(members[tuple(fam)]):
            continue
        values = {m: pd.to_numeric(g[m], errors="coerce").mean() for m in METRICS if m in g}  # over forget sets
        rows.append({**dict(zip(FAMILY, fam, strict=True)), "scenario": fam[2], "method": method,
                     "variant": variant, "seed": int(seed), **values})
    return pd.DataFrame(rows), members


def family_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per family and method: forget sets, seeds (complete / seen), each metric's mean ± std over
    seeds of the per-seed family means (ToW beside the Avg. Gap), and Avg. Gap's std across
    forget sets."""
    per_seed, members = family_seed_means(df)
    if per_seed.empty:
        return pd.DataFrame()
    ok = family_records(df)
    rows = []
    for (*fam, method, variant), g in per_seed.groupby(FAMILY + ["method", "variant"], sort=False):
        mine = ok[(ok[FAMILY] == pd.Series(fam, index=FAMILY)).all(axis=1) & ok["variant"].eq(variant)]
        per_set = pd.to_numeric(mine.groupby("scenario")["avg_gap"].mean(), errors="coerce")
        row = {**dict(zip(FAMILY, fam, strict=True)), "method": method, "variant": variant,
               "forget sets": len(members[tuple(fam)]), "seeds": f"{len(g)}/{mine['seed'].nunique()}"}
        for metric, label in METRICS.items():
            values = g[metric].dropna() if metric in g else pd.Series(dtype=float)
            row[label] = _pm(values, DIGITS.get(metric, 2))
        row["Avg. Gap across sets"] = f"{per_set.std():.2f}" if per_set.notna().sum() > 1 else ""
        rows.append(row)
    table = sort_rows(pd.DataFrame(rows).assign(scenario=lambda t: t["family"]), [])
    return table.assign(method=table.pop("variant").map(method_label)).drop(columns="scenario")


def family_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Paired comparison of each method's per-seed family Avg. Gap with the family's best."""
    per_seed, _ = family_seed_means(df)
    if per_seed.empty or "avg_gap" not in per_seed:
        return pd.DataFrame()
    compared = stats.compare_to_best(per_seed[["dataset", "model", "scenario", "method", "variant", "seed", "avg_gap"]])
    return compared.rename(columns={"scenario": "family"})


def _pm(values: pd.Series, digits: int = 2) -> str:
    return ("" if values.empty else f"{values.mean():.{digits}f}" if len(values) < 2
            else f"{values.mean():.{digits}f} ± {values.std():.{digits}f}")


def hardness_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per hardness-stratified forget set (`random:P:atyp-low|mid|high`) and method: the set's
    measured entanglement (Zhao et al.'s ES of forget vs retain features, mean over seeds),
    UA, Avg. Gap and ToW, mean ± std over seeds — how each method fares as the examples get harder."""
    from ..errors import ConfigError
    from ..scenarios import parse_scenario

    ok = current_ok(with_gaps(df))
    if "forget_es" not in ok:
        return pd.DataFrame()
    def stratified(spec: str) -> bool:
        try:
            return parse_scenario(spec).hardness != ""
        except ConfigError:  # a scenario this version does not know (records of another version)
            return False

    hard = ok[[stratified(s) for s in ok["scenario"]]]
    rows = []
    for (dataset, model, scenario, method, variant), g in hard.groupby(
            ["dataset", "model", "scenario", "method", "variant"], sort=False):
        num = {m: pd.to_numeric(g[m], errors="coerce").dropna() for m in ("forget_es", "ua", "avg_gap", "tow")}
        rows.append({"dataset": dataset, "model": model, "scenario": scenario, "method": method, "variant": variant,
                     "forget ES": _pm(num["forget_es"], 1), "UA": _pm(num["ua"]), "Avg. Gap": _pm(num["avg_gap"]),
                     "ToW": _pm(num["tow"], 3), "seeds": len(g)})
    if not rows:
        return pd.DataFrame()
    table = sort_rows(pd.DataFrame(rows), [])
    return table.assign(method=table.pop("variant").map(method_label))
