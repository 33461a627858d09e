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
    return (pd.to_numeric(part["ua_all"], errors="coerce") - _per_step_reference(part, "ua_all")).abs()


def _per_step_reference(part: pd.DataFrame, column: str) -> pd.Series:
    """Each row's step-and-seed Retrain value of `column`."""
    values = pd.to_numeric(part[column], errors="coerce")
    retrain = part["method"].eq("retrain")
    reference = values[retrain].groupby([part.loc[retrain, "step"], part.loc[retrain, "seed"]]).first()
    return pd.Series(reference.reindex(pd.MultiIndex.from_arrays([part["step"], part["seed"]])).to_numpy(),
                     index=part.index)


def chain_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per chain and method variant, one number per chain (issue 26): the **chain Avg. Gap**, the
    mean over the chain's steps of each step's Avg. Gap with its UA term on everything forgotten
    so far (|UA(all) − Retrain's|) instead of on request t alone — so giving an earlier request
    back costs as much as never forgetting it — per seed, then mean ± std over seeds; beside it the
    per-step Avg. Gap averaged the same way, the last step's UA (all) gap and the last step's
    cumulative RTE over Retrain's."""
    ok = current_ok(with_gaps(df))
    if "step" not in ok or "ua_all" not in ok:
        return pd.DataFrame()
    rows = []
    for cell, g in ok.groupby(["dataset", "model"], sort=False):
        for chain, steps in chains(g["scenario"].unique()).items():
            part = g[g["scenario"].isin(steps)]
            ua_gap = (pd.to_numeric(part["ua"], errors="coerce") - _per_step_reference(part, "ua")).abs()
            all_gap = _ua_all_gap(part)
            part = part.assign(chain_gap=pd.to_numeric(part["avg_gap"], errors="coerce") + (all_gap - ua_gap) / 4,
                               ua_all_gap=all_gap)
            last = part["step"].astype(int).eq(len(steps))
            for variant, h in part.groupby("variant", sort=False):
                seeds = h.groupby("seed")
                complete = seeds["step"].nunique().eq(len(steps))  # a seed without every step is left out
                per_seed = seeds[["chain_gap", "avg_gap"]].mean()[complete]
                final = h[last.loc[h.index]]
                rows.append({"dataset": cell[0], "model": cell[1], "chain": chain, "method": h["method"].iloc[0],
                             "variant": variant, "seeds": f"{int(complete.sum())}/{len(complete)}",
                             "chain_gap": per_seed["chain_gap"].mean(), "chain_gap_std": per_seed["chain_gap"].std(),
                             "step_gap": per_seed["avg_gap"].mean(),
                             "final_ua_all_gap": pd.to_numeric(final["ua_all_gap"], errors="coerce").mean(),
                             "final_rte_rel": pd.to_numeric(final.get("rte_cum_rel"), errors="coerce").mean()})
    return pd.DataFrame(rows)


def chain_summary_text(table: pd.DataFrame) -> pd.DataFrame:
    """`chain_summary` for the renderers."""
    def num(x, d=2):
        return "" if pd.isna(x) else f"{x:.{d}f}"

    return pd.DataFrame({
        "dataset": table["dataset"], "model": table["model"], "chain": table["chain"],
        "method": table["variant"].map(method_label), "seeds": table["seeds"],
        "chain Avg. Gap": [num(m) + ("" if pd.isna(s) else f" ± {s:.2f}") for m, s in
                           zip(table["chain_gap"], table["chain_gap_std"], strict=True)],
        "per-step Avg. Gap": table["step_gap"].map(num), "last UA (all) gap": table["final_ua_all_gap"].map(num),
        "last cumulative RTE / Retrain's": table["final_rte_rel"].map(lambda x: num(x, 3)),
    })


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
                             "variant": variant, "step": int(step),
                             "request": parse_scenario(h["scenario"].iloc[0]).request.spec,  # a records.csv has no text column for it
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
