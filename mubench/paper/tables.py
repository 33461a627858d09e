"""Paper tables: the planned jobs' records → pooled numbers per block and row → rendered
tables with their banner and notes (see the package docstring)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import report
from ..aggregate import aggregate
from ..config import ExperimentConfig
from ..store import Store

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

from .spec import COLUMNS, PaperPlan, PaperSpec, preset_config


# -- records → numbers → tables ---------------------------------------------------------------
def job_frame(jobs: pd.DataFrame, store: Store) -> pd.DataFrame:
    """The planned jobs joined with their records (report.records_frame columns, gaps
    recomputed per job); a job without a record gets status `missing`."""
    records = [r for r in (store.read_record("method", k) for k in jobs["key"].unique()) if r]
    frame = report.with_gaps(report.records_frame(records)) if records else pd.DataFrame({"key": []})
    rte = dict(zip(frame["key"], frame["rte_s"], strict=True)) if "rte_s" in frame else {}
    if len(frame):
        ref = frame["gap_ref_key"].map(rte)
        frame["rte_rel"] = frame["rte_s"] / ref.where(ref > 0)
    keep = [c for c in frame.columns if c not in ("dataset", "model", "scenario", "seed")]
    merged = jobs.merge(frame[keep], on="key", how="left")
    merged["status"] = merged["status"].fillna("missing") if "status" in merged else "missing"
    return merged


def block_stats(frame: pd.DataFrame, spec: PaperSpec) -> pd.DataFrame:
    """Per (dataset, model, block, row, column): mean and std (ddof 1) pooled over the block's
    ok (scenario, seed) jobs, with job counts (`mubench.aggregate`); every (block, row) of the
    spec appears, with zero counts where it has no job."""
    by = ["dataset", "model", "block", "row"]
    stats = aggregate(frame, by, spec.columns)
    pairs = frame[["dataset", "model"]].drop_duplicates().itertuples(index=False)
    full = pd.DataFrame([(d, m, b.id, r.label, c) for d, m in pairs for b in spec.blocks for r in spec.rows
                         for c in spec.columns], columns=[*by, "column"])
    out = full.merge(stats.rename(columns={"metric": "column"}), how="left", on=[*by, "column"])
    counts = ["n_values", "n_expected", "n_ok", "n_failed", "n_missing"]
    out[counts] = out[counts].fillna(0).astype(int)
    return out


def _cell(column: str, mean: float, std: float) -> str:
    if math.isnan(mean):
        return "n/a"
    if column == "rte_rel":
        return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"
    return report.format_number(column, mean, std)


def _jobs_text(r) -> str:
    text = f"{r.n_ok}/{r.n_expected}"
    extra = [f"{n} {w}" for n, w in ((r.n_failed, "failed"), (r.n_missing, "missing")) if n]
    return text + (f" ({', '.join(extra)})" if extra else "")


def layout_tables(stats: pd.DataFrame, spec: PaperSpec, references: bool) -> list[tuple[str, pd.DataFrame]]:
    """(caption, table) per (dataset, model, block): rows in spec order, the spec's columns with
    the paper's headers; with `references`, each referenced column is followed by the reference
    and the difference (ours − reference)."""
    tables = []
    for (dataset, model), part in stats.groupby(["dataset", "model"], sort=False):
        for block in spec.blocks:
            ref = spec.reference.get(block.id, {}) if references else {}
            ref_cols = {c for values in ref.values() for c in values}
            lines = []
            for row in spec.rows:
                cells = part[part["block"].eq(block.id) & part["row"].eq(row.label)].set_index("column")
                first = cells.iloc[0]
                line = {"method": row.label}
                for col in spec.columns:
                    c = cells.loc[col]
                    if c.n_ok == 0:
                        line[COLUMNS[col]] = "failed" if c.n_failed else "missing"
                    else:
                        line[COLUMNS[col]] = _cell(col, c["mean"], c["std"])
                    if col in ref_cols:
                        value = ref.get(row.label, {}).get(col)
                        line[f"{COLUMNS[col]} (ref)"] = "" if value is None else _cell(col, value, np.nan)
                        diff = c["mean"] - value if value is not None and c.n_values else np.nan
                        line[f"Δ {COLUMNS[col]}"] = "" if math.isnan(diff) else f"{diff:+.2f}"
                line["jobs"] = _jobs_text(first)
                lines.append(line)
            tables.append((f"{block.title} — {dataset} / {model}", pd.DataFrame(lines)))
    return tables


def banner(spec: PaperSpec, preset: str, config: ExperimentConfig) -> str:
    """The line that heads every rendered table: which preset, and for quick exactly what stands
    in for what (read from the resolved configs, so it cannot drift from what ran)."""
    full = preset_config(spec, "full")
    cells = ", ".join(f"{d}/{m}" for d in config.datasets for m in (config.models or ("preset model",)))
    paper = ", ".join(f"{d}/{m}" for d in full.datasets for m in (full.models or ("preset model",)))
    if preset == "full":
        return f"Preset full: the paper's setting ({paper}, seeds {_ints(config.seeds)})."
    from ..runner import recipe_for

    epochs = ", ".join(f"{d}: {recipe_for(d, config.recipe).epochs}" for d in config.datasets)
    subset = f", training subset of {config.train_subset} images" if config.train_subset else ""
    overrides = "; ".join(f"{m}.{k}={v}" for m, kv in config.method_params.items() for k, v in kv.items())
    note = spec.presets["quick"]["note"].strip().rstrip(".")
    return (f"QUICK PRESET — {cells} stand-in for {paper}{subset}; original/Retrain epochs "
            f"({epochs}); seeds {_ints(config.seeds)}; scenarios {', '.join(config.scenarios)}; "
            + (f"method overrides {overrides}; " if overrides else "")
            + f"{note}. A CPU-sized smoke version: not comparable to the paper's numbers.")


def _ints(values) -> str:
    return ", ".join(str(v) for v in values)


def table_notes(frame: pd.DataFrame, spec: PaperSpec, preset: str, references: bool) -> list[str]:
    notes = ["Each cell pools the block's ok jobs — every (scenario, seed) pair, i.e. for class-wise "
             "blocks every forgotten class on every seed — as mean ± std (ddof 1); with all jobs ok the "
             "mean is the paper's average over classes. Avg. Gap and RTE × Retrain are computed per job "
             "against the Retrain of the same scenario and seed before pooling. `jobs` = ok/expected."]
    ok = frame[frame["status"].eq("ok")]
    if "original_train_acc" in ok:  # SPEC §1: an under-fitted original makes forgetting look easy
        for (dataset, model), g in ok.groupby(["dataset", "model"], sort=False):
            train = pd.to_numeric(g["original_train_acc"], errors="coerce").dropna()
            test = pd.to_numeric(g["original_test_acc"], errors="coerce").dropna()
            if len(train):
                notes.append(f"original {dataset}/{model}: train accuracy {train.mean():.1f}%, "
                             f"test accuracy {test.mean():.1f}% (mean over seeds)")
    for r in frame[frame["status"].eq("failed")].itertuples():
        notes.append(f"failed: {r.row} {r.dataset}/{r.model}/{r.scenario} seed {r.seed}: {getattr(r, 'error', '')}")
    n_missing = int(frame["status"].eq("missing").sum())
    if n_missing:
        notes.append(f"{n_missing} job(s) have no record yet; fill them with "
                     f"`python -m mubench paper {spec.name} --preset {preset}`")
    if "bank_s" in frame:
        for row, g in frame[frame["status"].eq("ok")].groupby("row", sort=False):
            banks = pd.to_numeric(g["bank_s"], errors="coerce").dropna()
            if len(banks):
                notes.append(f"{row}: RTE excludes the one-time class-wise forget-vector bank, "
                             f"{report.format_number('rte_s', banks.mean(), banks.std())} s")
    if spec.reference:
        notes.append(f"reference numbers: {spec.reference_source}; Δ = ours − reference"
                     if references else "reference numbers are shown for the full preset only")
    return notes


@dataclass
class Rendered:
    markdown: str
    latex: str
    tables: list  # (caption, DataFrame)
    stats: pd.DataFrame


def render(spec: PaperSpec, preset: str, pplan: PaperPlan) -> Rendered:
    """The table(s) of a spec from whatever records exist (missing jobs are marked, not run)."""
    frame = job_frame(pplan.jobs, Store(pplan.config.out))
    stats = block_stats(frame, spec)
    references = preset == "full" and bool(spec.reference)
    tables = layout_tables(stats, spec, references)
    head = banner(spec, preset, pplan.config)
    notes = table_notes(frame, spec, preset, references)
    md = [f"# {spec.title}", "", f"Mirrors: {spec.mirrors}", "", f"**{head}**", ""]
    for caption, table in tables:
        md += [f"## {caption}", "", report.markdown_table(table), ""]
    md += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    tex = [f"% {spec.title} — generated by `python -m mubench paper {spec.name} --preset {preset}`; "
           "needs \\usepackage{booktabs}", f"% {head}"] + [f"% note: {n}" for n in notes]
    for caption, table in tables:
        label = f"{caption} [{'QUICK PRESET, not comparable to the paper' if preset == 'quick' else 'full'}]"
        tex += ["", report.latex_table(table, label)]
    return Rendered("\n".join(md), "\n".join(tex) + "\n", tables, stats)


def write_outputs(spec: PaperSpec, preset: str, rendered: Rendered, out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{spec.name}-{preset}.md", out / f"{spec.name}-{preset}.tex"]
    paths[0].write_text(rendered.markdown, encoding="utf-8")
    paths[1].write_text(rendered.latex, encoding="utf-8")
    return paths
