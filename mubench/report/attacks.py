"""The per-example attacks in reports: SVC MIA-Efficacy beside U-LiRA per method, and two
figures per cell — per-example attack success, and the population vs the per-example attack —
so a reader sees where SPEC §5's SVC misjudges a method (../shared/MIA.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..attacks import ATTACKS, report_columns
from .records import CELL, attack_metrics, current_ok, method_label


def _attacked(df: pd.DataFrame, fields=None) -> pd.Series:
    """Rows with a value of any of `fields` (default: every attack's summary columns)."""
    fields = attack_metrics() if fields is None else fields
    found = [pd.to_numeric(df[f], errors="coerce").notna() for f in fields if f in df]
    return pd.concat(found, axis=1).any(axis=1) if found else pd.Series(False, index=df.index)


def has_attack(df: pd.DataFrame, fields=None) -> bool:
    return bool(_attacked(df, fields).any())


def side_by_side(df: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, method): mean over seeds of the SVC's MIA-Efficacy (with Retrain's, its
    target) beside every attack's side-by-side columns (U-LiRA's AUC, CI, TPRs and per-example
    wins, the reference-model screen with its null band, a plugin's own) and the text columns
    the attacks describe their rows with (`Attack.describe`); seconds are per cell."""
    ok = current_ok(df)
    retrain = ok[ok["method"].eq("retrain")].groupby(CELL)["mia_efficacy"].mean()
    rows = ok[_attacked(ok)].copy()
    columns = report_columns("side")
    cols = [c for c in columns if c in rows]
    for c in cols:
        rows[c] = pd.to_numeric(rows[c], errors="coerce")
    groups = [rows[c] for c in CELL + ["variant"]]
    table = rows.groupby(CELL + ["variant"], sort=False)[cols].mean()
    table.insert(1, "Retrain's MIA-Efficacy", [retrain.get(tuple(i[:3]), np.nan) for i in table.index])
    table["seeds"] = rows.groupby(CELL + ["variant"], sort=False).size()
    for entry in ATTACKS.entries():
        for name, text in entry.obj.describe(rows).items():
            table[name] = text.groupby(groups, sort=False).agg(lambda v: " + ".join(sorted(set(v) - {""})))
    table = table.rename(columns=columns).round(2).reset_index()
    table["method"] = table.pop("variant").map(method_label)
    return table.set_index(CELL + ["method"])


def _margins(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """variant → per-example margins Λ_pos(x) − Λ_neg(x), pooled over seeds."""
    out = {}
    for variant, g in rows.groupby("variant", sort=False):
        values = [np.asarray(m, float) for m in g["ulira_margin"] if isinstance(m, list)]
        if values:
            out[variant] = np.concatenate(values)
    return out


def attack_figures(df: pd.DataFrame, out_dir: Path) -> list:
    """Per cell with U-LiRA records: the per-example success curve and the SVC-vs-U-LiRA plot."""
    from ..plots import _slug

    figures = []
    if not has_attack(df, ("ulira_auc",)):
        return figures
    ok = current_ok(df)
    for cell, rows in ok.groupby(CELL, sort=False):
        attacked = rows[pd.to_numeric(rows.get("ulira_auc"), errors="coerce").notna()]
        if attacked.empty:
            continue
        stem = Path(out_dir) / _slug(*cell)
        figures.append(plot_example_success(attacked, cell, stem.with_name(stem.name + "_ulira_examples")))
        retrain = rows.loc[rows["method"].eq("retrain"), "mia_efficacy"].mean()
        figures.append(plot_svc_vs_ulira(attacked, retrain, cell, stem.with_name(stem.name + "_svc_vs_ulira")))
    return figures


def plot_example_success(rows: pd.DataFrame, cell: tuple, stem: Path):
    """Share of forget examples whose U-LiRA margin over Retrain exceeds t, per method."""
    from ..plots import _pyplot, _save, method_color

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    methods = dict(zip(rows["variant"], rows["method"], strict=False))
    for variant, margin in _margins(rows).items():
        t = np.sort(margin)
        share = 100.0 * (1.0 - np.arange(len(t)) / len(t))
        ax.step(t, share, where="post", color=method_color(methods[variant]), label=method_label(variant))
    ax.axvline(0, color="k", lw=0.8, ls=":")
    ax.axhline(50, color="k", lw=0.8, ls=":")
    ax.set_xscale("symlog")
    ax.set_xlabel("per-example margin Λ(unlearned) − Λ(Retrain)")
    ax.set_ylabel("% of forget examples above")
    ax.legend(fontsize=7)
    title = f"U-LiRA per example: {' / '.join(map(str, cell))}"
    ax.set_title(title, fontsize=9)
    return _save(fig, stem, cell, "ulira_examples", title)


def plot_svc_vs_ulira(rows: pd.DataFrame, retrain_mia: float, cell: tuple, stem: Path):
    """Each method at (SVC MIA-Efficacy, U-LiRA AUC), mean ± std over seeds; the ideal is the
    crossing of Retrain's MIA-Efficacy and AUC 50."""
    from ..plots import _pyplot, _save, method_color

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for variant, g in rows.groupby("variant", sort=False):
        x, y = pd.to_numeric(g["mia_efficacy"]), pd.to_numeric(g["ulira_auc"])
        ax.errorbar(x.mean(), y.mean(), xerr=x.std(ddof=1) if len(g) > 1 else None,
                    yerr=y.std(ddof=1) if len(g) > 1 else None, fmt="o",
                    color=method_color(g["method"].iloc[0]), label=method_label(variant))
    ax.axhline(50, color="k", lw=0.8, ls=":")
    if np.isfinite(retrain_mia):
        ax.axvline(retrain_mia, color="k", lw=0.8, ls=":")
    ax.set_xlabel("SVC MIA-Efficacy (%; ideal: Retrain's, dotted)")
    ax.set_ylabel("U-LiRA AUC (%; ideal 50)")
    ax.legend(fontsize=7)
    title = f"population vs per-example attack: {' / '.join(map(str, cell))}"
    ax.set_title(title, fontsize=9)
    return _save(fig, stem, cell, "svc_vs_ulira", title)
