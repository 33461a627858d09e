"""`write_report`: load a results folder's records and write every requested format and figure."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from pathlib import Path

from ..analysis.cells import load_cells
from ..errors import ConfigError, MubenchError
from .attacks import has_attack, side_by_side
from .families import family_comparison, family_table, hardness_table
from .html import render_html
from .latex import render_latex
from .markdown import render_markdown
from .notes import provenance_line, report_notes
from .records import current, load_records, method_label, tidy, with_gaps
from .sequential import (
    chain_figures,
    chain_summary,
    chain_summary_text,
    chain_table,
    chain_table_text,
)
from .tables import per_seed_gaps, summary_stats, summary_table
from .transfer import transfer_table, transfer_text

FORMATS = ("md", "latex", "csv", "html", "parquet")
FILE_NAMES = {"md": "report.md", "latex": "report.tex", "csv": "records.csv",
              "html": "report.html", "parquet": "records.parquet"}


def stored_cells(root: str | Path):
    """(cell, method, seed) → the stored cell of the grids run into `root` (analysis.cells, loaded
    on first use, through the jobs of each run's plan), for figures drawn from stored predictors;
    None for a root without a run config (figures that need predictors are then left out)."""
    cache: dict = {}

    def stored(cell: tuple, method: str, seed: int):
        if "cells" not in cache and str(root).endswith(".csv"):
            warnings.warn("figures from stored predictors left out: a records.csv holds numbers, not predictors "
                          "(give the results folder to draw them)", stacklevel=2)
            cache["cells"] = {}
        if "cells" not in cache:
            try:
                cache["cells"] = {(c.dataset, c.model, c.scenario, c.seed): c for c in load_cells(root)}
            except MubenchError as err:
                warnings.warn(f"figures from stored predictors left out: {err}", stacklevel=2)
                cache["cells"] = {}
        return cache["cells"].get((*cell, seed))

    return stored


def write_report(root: str | Path, out_dir: str | Path | None = None,
                 formats: Sequence[str] = ("md", "latex", "csv", "html")) -> list[Path]:
    """Load the records under `root`, write the requested formats and the figures (PNG + PDF)
    into `out_dir` (default `<root>/report`), and return the written paths."""
    from .. import plots, stats

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown report format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    out = Path(out_dir) if out_dir is not None else Path(root) / "report"
    df = with_gaps(load_records(root))
    table, notes = summary_table(df), report_notes(df, root)
    gaps = per_seed_gaps(df)
    extra = [("Avg. Gap per seed", stats.gap_distribution(gaps)),
             ("Paired comparison with FV: mean over the n_pairs seeds of (Avg. Gap − FV's Avg. Gap), "
              "paired 95% t-interval, t-test p (p_holm: Holm-corrected within the cell) and the exact "
              "sign-flip p (never below 0.25 with 3 seeds); > 0 means FV is closer to Retrain",
              stats.compare_to_reference(gaps)),
             ("Tied with the best (Avg. Gap, paired t-test, Holm-corrected): mean_diff = method − the "
              "cell's best mean, paired 95% t-interval over n_pairs seeds; tied = not significantly "
              "different at 0.05 after correction (not shown equal)", stats.compare_to_best(gaps)),
             ("Rank stability across seeds (Kendall τ between every two seeds' rankings of the "
              "methods, Retrain left out): 1 = same order, 0 = unrelated", stats.rank_stability(gaps)),
             ("Smallest resolvable difference: with n seeds, differences in Avg. Gap below this many "
              "points (the median half-width of the paired 95% t-intervals against the best) are not "
              "resolvable here", stats.resolvable_difference(gaps))]
    extra = [(title, stats.format_stats(f).pipe(
                 lambda t: t.assign(variant=t["variant"].map(method_label)) if "variant" in t else t)
              .rename(columns={"variant": "method"})) for title, f in extra]
    if has_attack(df):
        extra.append(("SVC MIA-Efficacy (population) beside the per-example attacks (U-LiRA, the reference-model "
                      "screen and its null band: what models that never saw D_f read), mean over seeds",
                      side_by_side(df).reset_index()))
    families = family_table(df)
    if not families.empty:
        extra.append(("Scenario families: per seed the mean over the family's forget sets, then mean ± std over "
                      "seeds (seeds: complete/seen; a seed without every member is left out); Avg. Gap across sets: "
                      "the std over forget sets of their seed-means", families))
        extra.append(("Families, paired comparison with the family's best (Avg. Gap of the per-seed family means, "
                      "Holm-corrected t-test; tied = not significantly different at 0.05)",
                      stats.format_stats(family_comparison(df)).assign(
                          variant=lambda t: t["variant"].map(method_label)).rename(columns={"variant": "method"})))
    strata = hardness_table(df)
    if not strata.empty:
        extra.append(("Hardness-stratified forget sets (random:P:atyp-low|mid|high, mubench/hardness.py): each set's "
                      "entanglement with the retain set (Zhao et al.'s ES of the original's features), UA, Avg. Gap and "
                      "ToW (their tug of war, 1 = Retrain), mean ± std over seeds", strata))
    transfer = transfer_table(df)
    if not transfer.empty:
        extra.append(("Tuning vs reported (does the selection transfer?): each tuned row's Avg. Gap in its search "
                      "(the chosen candidate, mean ± std over the tuning runs, on the forget sets and seeds named) "
                      "beside its Avg. Gap here; a row selected on its own reported forget set says so",
                      transfer_text(transfer)))
    steps = chain_table(df)
    if not steps.empty:
        extra.append(("Sequential deletion, per chain, method and step (mean over seeds): UA and MIA-Efficacy on "
                      "request t, UA (all) on everything forgotten so far and its gap to that step's "
                      "Retrain's (ua_all_gap), Avg. Gap to that step's Retrain, "
                      "cumulative RTE and its ratio to Retrain's (one retrain per request)", chain_table_text(steps)))
        extra.append(("Sequential deletion, per chain: the chain Avg. Gap (mean over steps of each step's Avg. Gap "
                      "with its UA term on everything forgotten so far, per seed, then mean ± std over seeds; a "
                      "request given back later costs as much as one never forgotten) beside the per-step Avg. Gap "
                      "averaged the same way", chain_summary_text(chain_summary(df))))
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    figures = plots.report_figures(current(df), summary_stats(df), out / "figures", stored_cells(root))
    figures += chain_figures(steps, out / "figures")
    written += [p for fig in figures for p in fig.paths]
    if "parquet" in formats and importlib.util.find_spec("pyarrow") is None:
        skipped = "Parquet skipped: pyarrow is not installed (pip install pyarrow)"
        notes.append(skipped)
        warnings.warn(skipped, stacklevel=2)
        formats = [f for f in formats if f != "parquet"]
    intro = provenance_line(df, root)
    texts = {"md": lambda: render_markdown(table, notes, extra, intro),
             "latex": lambda: render_latex(table, notes),
             "html": lambda: render_html(table, notes, extra, figures, intro)}
    for fmt in dict.fromkeys(formats):
        path = out / FILE_NAMES[fmt]
        if fmt == "csv":
            tidy(df).to_csv(path, index=False)
        elif fmt == "parquet":
            tidy(df).to_parquet(path, index=False)
        else:
            path.write_text(texts[fmt](), encoding="utf-8")
        written.append(path)
    return written
