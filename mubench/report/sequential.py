"""Sequential deletion in reports (mubench/sequential.py): one row per (chain, method, step), mean
over seeds, and a figure per chain of Avg. Gap and cumulative RTE against the step.

A chain's steps are recorded as ordinary cells (scenario = the chain of the first t requests), so
every other table already shows each step on its own; this table lines them up. A chain is each
recorded chain no other recorded chain extends; its rows are the records of its steps.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..plots import Figure, method_color, pyplot, save_figure, slug
from ..scenarios import parse_scenario
from .records import current_ok, method_label, with_gaps

STEP_METRICS = ("ua", "ua_all", "ua_all_gap", "ra", "ta", "mia_efficacy", "avg_gap", "rte_cum_s", "rte_cum_rel")


def _ua_all_gap(part: pd.DataFrame) -> pd.Series:
    """|UA over everything forgotten so far − that step's and seed's Retrain's|: the chain-level
    gap on forgetting. Avg. Gap reads request t alone, so a method that forgets request t and
    gives the earlier requests back (measured: composed forget vectors on a class chain,
    reports/digits-sequential) looks close to Retrain there and far from it here."""
    ua_all = pd.to_numeric(part["ua_all"], errors="coerce")
    retrain = part["method"].eq("retrain")
    reference = ua_all[retrain].groupby([part.loc[retrain, "step"], part.loc[retrain, "seed"]]).first()
    keys = pd.MultiIndex.from_arrays([part["step"], part["seed"]])
    return (ua_all - reference.reindex(keys).to_numpy()).abs()


def chains(scenarios) -> dict[str, list[str]]:
    """The longest chains among `scenarios` (sequential ones only) → their steps' specs, in order."""
    specs = {s for s in scenarios if str(s).startswith("sequential:")}
    steps = {s: [x.spec for x in parse_scenario(s).steps()] for s in specs}
    shorter = {x for s in specs for x in steps[s][:-1]}
    return {s: steps[s] for s in sorted(specs - shorter)}


def chain_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per chain, method variant and step: n seeds and the mean of `STEP_METRICS` (Avg. Gap against
    the Retrain of that step and seed, recomputed as every table does). Empty without chains."""
    ok = current_ok(with_gaps(df))
    if "step" not in ok:
        return pd.DataFrame()
    rows = []
    for cell, g in ok.groupby(["dataset", "model"], sort=False):
        for chain, steps in chains(g["scenario"].unique()).items():
            part = g[g["scenario"].isin(steps)]
            if "ua_all" in part:
                part = part.assign(ua_all_gap=_ua_all_gap(part))
            for (variant, step), h in part.groupby(["variant", "step"], sort=False):
                means = {m: pd.to_numeric(h[m], errors="coerce").mean() for m in STEP_METRICS if m in h}
                rows.append({"dataset": cell[0], "model": cell[1], "chain": chain, "method": h["method"].iloc[0],
                             "variant": variant, "step": int(step), "request": h["request"].iloc[0],
                             "n_seeds": h["seed"].nunique(), **means})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).sort_values(["dataset", "model", "chain", "variant", "step"], kind="stable",
                                          ignore_index=True)


def chain_table_text(table: pd.DataFrame) -> pd.DataFrame:
    """`chain_table` for the renderers: method labels, numbers to 2 decimals."""
    out = table.drop(columns="method").rename(columns={"variant": "method"})
    out["method"] = out["method"].map(method_label)
    for m in STEP_METRICS:
        if m in out:
            out[m] = out[m].map(lambda x: "" if pd.isna(x) else f"{x:.2f}")
    return out


def chain_figures(table: pd.DataFrame, out_dir: Path) -> list[Figure]:
    """Per chain: Avg. Gap (left) and cumulative RTE in seconds (right, log) against the step,
    one line per method variant in its method's colour (mean over seeds)."""
    figures = []
    if table.empty:
        return figures
    plt = pyplot()
    for (dataset, model, chain), g in table.groupby(["dataset", "model", "chain"], sort=False):
        fig, (gap, cost) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
        for variant, h in g.groupby("variant", sort=False):
            style = {"color": method_color(h["method"].iloc[0]), "marker": "o", "label": method_label(variant)}
            gap.plot(h["step"], h["avg_gap"], **style)
            cost.plot(h["step"], h["rte_cum_s"], **style)
        steps = sorted(g["step"].unique())
        for ax, label in ((gap, "Avg. Gap to that step's Retrain"), (cost, "cumulative RTE (s)")):
            ax.set_xticks(steps)
            ax.set_xlabel("step (request)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        cost.set_yscale("log")
        fig.legend(*gap.get_legend_handles_labels(), fontsize=8, frameon=False, loc="outside right upper")
        title = f"{dataset} / {model} / {chain}: Avg. Gap and cumulative cost per step"
        fig.suptitle(title, fontsize=10)
        cell = (dataset, model, chain)
        figures.append(save_figure(fig, out_dir / slug(dataset, model, chain, "steps"), cell, "steps", title))
    return figures
