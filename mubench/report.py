"""Result records → pandas → summary tables (as data) → Markdown / LaTeX / CSV / HTML files.

Tables are computed as DataFrames by pure functions first (mean ± std over seeds, per-seed gaps
to Retrain, failed and missing jobs) and only then rendered, so every format shows the same
numbers. A report never trains: a job the grid expects but that has no record is listed as
missing, with the command that fills it; a failed job stays in the table as failed.

Avg. Gap is recomputed here from each record's ua/ra/ta/mia_efficacy against the Retrain of the
same (dataset, model, scenario, seed) rather than trusted from the record, and any disagreement
with the stored value is reported as a note (SPEC §5 defines the gap per seed, then aggregates).
"""

from __future__ import annotations

import base64
import html
import importlib.util
import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError, MubenchError
from .store import Store

CELL = ["dataset", "model", "scenario"]
GAP_METRICS = ("ua", "ra", "ta", "mia_efficacy")
# Result columns (API, lower snake) → the paper's names, which appear only in rendered tables.
TABLE_METRICS = {"ua": "UA", "ra": "RA", "ta": "TA", "mia_efficacy": "MIA-Efficacy",
                 "avg_gap": "Avg. Gap", "rte_s": "RTE (s)", "params_changed": "params changed"}
# Registry names → report labels; the order is the row order of every table (Retrain first).
METHOD_LABELS = {"retrain": "Retrain", "finetune": "FT", "grad_ascent": "GA",
                 "random_label": "RL", "l1_sparse": "l1-sparse", "salun": "SalUn",
                 "forget_vector": "FV", "fv_arithmetic": "FV-arith"}
# Old column names → current ones, mapped on read so results written by older versions still load.
RENAMED_COLUMNS = {"mia": "mia_efficacy", "rte": "rte_s", "gap": "avg_gap"}
# Columns that describe a job rather than measure it; every other numeric column is a metric.
PROVENANCE = ["key", "status", "error", "traceback_file", "scenario_kind", "method_version",
              "display_name", "tuned", "split_hash", "original_key", "retrain_key",
              "original_train_acc", "original_test_acc", "device", "n_jobs", "started",
              "finished", "wall_s"]
_NOT_METRICS = set(CELL) | set(PROVENANCE) | {"seed", "method", "variant", "params", "info",
                                             "versions", "superseded", "gap_ref_key", "kind",
                                             "non_default_params"}
FORMATS = ("md", "latex", "csv", "html", "parquet")
GAP_TOLERANCE = 1e-3  # stored vs recomputed Avg. Gap differing by more than this is noted


def method_label(variant: str) -> str:
    """`salun[sparsity=0.3]` → `SalUn[sparsity=0.3]`; unknown method names are shown as is."""
    base, bracket, rest = variant.partition("[")
    return METHOD_LABELS.get(base, base) + bracket + rest


def _method_rank(method: str) -> int:
    order = list(METHOD_LABELS)
    return order.index(method) if method in order else len(order)


# -- loading ----------------------------------------------------------------------------------
def load_records(root: str | Path) -> pd.DataFrame:
    """One row per method job under `<root>/records/method/`, failed jobs included (see
    `records_frame` for the columns). No records at all is an error naming the folder."""
    store = Store(root)
    records = list(store.iter_records("method"))
    if not records:
        raise MubenchError(
            f"no method records under {str(store.root / 'records' / 'method')!r}; produce results "
            f"with `python -m mubench run --out {store.root}` or pass --results DIR")
    df = records_frame(records)
    df["results_root"] = str(store.root)  # figures the runner drew live under it
    return df


def records_frame(records: Iterable[dict]) -> pd.DataFrame:
    """Method records (as dicts) → one row per job, the frame every table is computed from.

    Columns: the record's identity, provenance and metric fields (`versions` flattened to
    `version_<name>`, old column names mapped to current ones), plus `variant` (the display
    name, e.g. `salun[sparsity=0.3]`) and `superseded` (True for an older record of the same
    cell, variant and seed — a failed try followed by a success, or a previous method version;
    tables use the newest ok one). Records of other kinds (no `method`) are ignored.
    """
    rows = [_normalise(r) for r in records if r.get("method")]
    df = pd.DataFrame(rows)
    for col in CELL + ["method", "status", "display_name", "finished", "error", "seed"]:
        if col not in df:
            df[col] = None
    for col in GAP_METRICS + ("avg_gap", "rte_s", "params_changed"):  # JSON null → NaN
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else np.nan
    df["status"] = df["status"].fillna("ok")
    df["variant"] = df["display_name"].where(df["display_name"].notna(), df["method"])
    for col in ("seed", "n_jobs", "method_version"):  # failed rows' NaN would make them floats
        if col in df:
            try:
                df[col] = pd.to_numeric(df[col]).astype("Int64")
            except (TypeError, ValueError):
                pass  # a non-integer version string stays as written
    df["superseded"] = _superseded(df) if len(df) else pd.Series(dtype=bool)
    df["_rank"] = df["method"].map(_method_rank)
    df = df.sort_values(CELL + ["_rank", "variant", "seed"], kind="stable")
    return df.drop(columns="_rank").reset_index(drop=True)


def _normalise(record: dict) -> dict:
    row = {RENAMED_COLUMNS.get(k, k): v for k, v in record.items()}
    for name, version in (row.pop("versions", None) or {}).items():
        row[f"version_{name}"] = version
    return row


def _superseded(df: pd.DataFrame) -> pd.Series:
    order = df.assign(_ok=df["status"].eq("ok"), _fin=df["finished"].fillna("").astype(str))
    order = order.sort_values(["_ok", "_fin"], ascending=False, kind="stable")
    first = ~order.duplicated(CELL + ["variant", "seed"], keep="first")
    return ~first.reindex(df.index)


def _current(df: pd.DataFrame) -> pd.DataFrame:
    return df[~df["superseded"]]


# -- gaps and tidy data -----------------------------------------------------------------------
def with_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """Recompute `avg_gap` per row against the Retrain of the same cell and seed.

    The stored value moves to `avg_gap_stored`; `gap_ref_key` names the Retrain record used
    (the one the record's `retrain_key` names if present, else the cell's `retrain` of that
    seed). Rows without an ok Retrain get NaN. Idempotent.
    """
    if "avg_gap_stored" in df:
        return df
    df = df.copy()
    ok = _current(df)
    ok = ok[ok["status"].eq("ok")]
    retrains = ok[ok["method"].eq("retrain")]
    by_key = {r.key: r for r in retrains.itertuples()} if "key" in retrains else {}
    by_seed = {}
    for r in retrains.sort_values("variant", key=lambda s: s.ne("retrain")).itertuples():
        by_seed.setdefault((r.dataset, r.model, r.scenario, r.seed), r)
    gaps, refs = [], []
    for row in df.itertuples():
        ref = by_key.get(getattr(row, "retrain_key", None)) if row.method != "retrain" else None
        ref = ref or by_seed.get((row.dataset, row.model, row.scenario, row.seed))
        if row.method == "retrain" and row.status == "ok":
            ref = row  # Retrain is its own reference: gap 0 by definition
        if ref is None or row.status != "ok":
            gaps.append(np.nan)
            refs.append(None)
            continue
        diffs = [abs(float(getattr(row, m)) - float(getattr(ref, m))) for m in GAP_METRICS]
        gaps.append(float(np.mean(diffs)))
        refs.append(getattr(ref, "key", None))
    df["avg_gap_stored"] = df["avg_gap"]
    df["avg_gap"] = gaps
    df["gap_ref_key"] = refs
    return df


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Numeric result columns in a stable order: the table metrics first, then the extras."""
    numeric = [c for c in df.columns if c not in _NOT_METRICS and not c.startswith("version_")
               and pd.api.types.is_numeric_dtype(df[c])]
    head = [c for c in TABLE_METRICS if c in numeric]
    return head + sorted(c for c in numeric if c not in head)


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Long form: one row per (dataset, model, scenario, method, seed, metric) with `value`,
    plus provenance columns. Failed jobs keep one row per table metric with a NaN value and
    their status and error, so a CSV never silently loses them."""
    df = with_gaps(df)
    metrics = metric_columns(df)
    ident = CELL + ["method", "variant", "seed"]
    prov = [c for c in PROVENANCE if c in df] + sorted(c for c in df if c.startswith("version_"))
    long = df.melt(id_vars=ident + prov + ["superseded"], value_vars=metrics,
                   var_name="metric", value_name="value")
    failed_or_set = long["status"].ne("ok") | long["value"].notna()
    keep = failed_or_set & (long["status"].eq("ok") | long["metric"].isin(TABLE_METRICS))
    long = long[keep]
    return long[ident + ["metric", "value"] + prov + ["superseded"]].reset_index(drop=True)


# -- tables as data ---------------------------------------------------------------------------
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
    return pd.DataFrame(rows, columns=CELL + ["method", "variant", "seed"])


def missing_jobs(df: pd.DataFrame) -> pd.DataFrame:
    """Expected (cell, variant, seed) with no record at all."""
    have = df[CELL + ["variant", "seed"]].astype({"seed": "int64"}).drop_duplicates()
    merged = expected_jobs(df).merge(have, how="left", on=CELL + ["variant", "seed"], indicator=True)
    return merged[merged["_merge"].eq("left_only")].drop(columns="_merge").reset_index(drop=True)


def failed_jobs(df: pd.DataFrame) -> pd.DataFrame:
    """Current records with status failed (a later ok record of the same job hides older fails)."""
    cur = _current(df)
    cols = CELL + ["method", "variant", "seed"] + [c for c in ("error", "traceback_file", "key") if c in df]
    return cur[cur["status"].ne("ok")][cols].reset_index(drop=True)


def per_seed_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """(cell, method, variant, seed, avg_gap) for every ok job with a Retrain: the input of stats."""
    g = with_gaps(_current(df))
    g = g[g["status"].eq("ok") & g["avg_gap"].notna()]
    return g[CELL + ["method", "variant", "seed", "avg_gap"]].reset_index(drop=True)


def summary_stats(df: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, variant, table metric): mean, std (ddof 1) over the ok seeds, and how many of
    the expected seeds are ok, failed or missing."""
    df = with_gaps(df)
    cur = _current(df)
    expected = expected_jobs(df)
    missing = missing_jobs(df).groupby(CELL + ["variant"]).size()
    rows = []
    for (*cell, variant), exp in expected.groupby(CELL + ["variant"], sort=False):
        jobs = cur[(cur[CELL] == cell).all(axis=1) & cur["variant"].eq(variant)]
        ok = jobs[jobs["status"].eq("ok")]
        counts = {"n_expected": len(exp), "n_ok": len(ok), "n_failed": int(jobs["status"].ne("ok").sum()),
                  "n_missing": int(missing.get((*cell, variant), 0))}
        for metric in TABLE_METRICS:
            values = pd.to_numeric(ok[metric], errors="coerce").dropna()
            rows.append({**dict(zip(CELL, cell, strict=True)), "method": exp["method"].iloc[0],
                         "variant": variant, "label": method_label(variant), "metric": metric,
                         "mean": values.mean() if len(values) else np.nan,
                         "std": values.std(ddof=1) if len(values) > 1 else np.nan,
                         "n_values": len(values), **counts})
    out = pd.DataFrame(rows)
    out["_rank"] = out["method"].map(_method_rank)
    out = out.sort_values(CELL + ["_rank", "variant"], kind="stable").drop(columns="_rank")
    return out.reset_index(drop=True)


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


_fmt_number = format_number


def _seed_status(r) -> str:
    parts = [f"{r.n_ok}/{r.n_expected}"]
    parts += [f"{n} {what}" for n, what in ((r.n_failed, "failed"), (r.n_missing, "missing")) if n]
    return parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rendered-ready table: index (dataset, model, scenario, method label), Retrain first;
    columns UA, RA, TA, MIA-Efficacy, Avg. Gap, RTE (s), params changed (mean ± std over the ok
    seeds), and `seeds` ("2/3 (1 failed)"). A variant with no ok seed reads `failed`/`missing`."""
    stats = summary_stats(df)
    rows = {}
    for r in stats.itertuples():
        row = rows.setdefault((r.dataset, r.model, r.scenario, r.label), {"seeds": _seed_status(r)})
        if r.n_values:
            row[TABLE_METRICS[r.metric]] = _fmt_number(r.metric, r.mean, r.std)
        elif r.n_ok:
            row[TABLE_METRICS[r.metric]] = "n/a"  # ok jobs without this value (e.g. no Retrain)
        else:
            row[TABLE_METRICS[r.metric]] = "failed" if r.n_failed else "missing"
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=CELL + ["method"])
    return table[list(TABLE_METRICS.values()) + ["seeds"]]


def fill_command(root: str | Path | None, job) -> str:
    """The command that produces a missing job's record (a variant's non-default parameters,
    read back from its display name `method[k=v,...]`, become `--set method.k=v`)."""
    sets = "".join(f" --set {job.method}.{kv}"
                   for kv in job.variant.partition("[")[2].rstrip("]").split(",") if kv)
    out = f" --out {root}" if root is not None else ""
    return (f"python -m mubench run{out} --datasets {job.dataset} --models {job.model} "
            f"--scenarios {job.scenario} --methods {job.method} --seeds {job.seed}{sets}")


def summary_markdown(df: pd.DataFrame, root: str | Path | None = None) -> str:
    """The summary tables and notes as Markdown, without figures or seed statistics: what
    `mubench run` prints when it finishes."""
    if df.empty:
        return "(no finished method jobs)"
    df = with_gaps(df)
    notes = report_notes(df, root)
    text = render_markdown(summary_table(df), notes)
    return text.split("\n", 2)[2]  # drop the page title: the caller prints its own context


def report_notes(df: pd.DataFrame, root: str | Path | None = None) -> list[str]:
    """Everything a reader must know that the table cells cannot show, one sentence each."""
    df = with_gaps(df)
    notes = []
    for r in failed_jobs(df).itertuples():
        where = f"; traceback in {r.traceback_file}" if getattr(r, "traceback_file", None) else ""
        notes.append(f"failed: {r.dataset}/{r.model}/{r.scenario} {r.variant} seed {r.seed}: "
                     f"{getattr(r, 'error', None) or 'no error text'}{where}")
    for r in missing_jobs(df).itertuples():
        notes.append(f"missing: {r.dataset}/{r.model}/{r.scenario} {r.variant} seed {r.seed}; "
                     f"fill it with `{fill_command(root, r)}`")
    cur = _current(df)
    ok = cur[cur["status"].eq("ok")]
    for r in ok[ok["avg_gap"].isna()].itertuples():
        notes.append(f"no Retrain for {r.dataset}/{r.model}/{r.scenario} seed {r.seed}: "
                     f"Avg. Gap of {r.variant} cannot be computed")
    stored = pd.to_numeric(ok["avg_gap_stored"], errors="coerce")
    off = ok[stored.notna() & ok["avg_gap"].notna() & ((stored - ok["avg_gap"]).abs() > GAP_TOLERANCE)]
    for r in off.itertuples():
        notes.append(f"Avg. Gap of {r.variant} on {r.dataset}/{r.model}/{r.scenario} seed {r.seed}: "
                     f"record says {float(r.avg_gap_stored):.4f}, recomputed {r.avg_gap:.4f} "
                     "against that seed's Retrain (the table uses the recomputed value)")
    if "bank_s" in ok:  # SPEC §5: the arithmetic bank is a one-time cost, reported apart from RTE
        banks = ok.assign(bank_s=pd.to_numeric(ok["bank_s"], errors="coerce")).dropna(subset=["bank_s"])
        for (*cell, variant), g in banks.groupby(CELL + ["variant"], sort=False):
            notes.append(f"{method_label(variant)} on {'/'.join(cell)}: RTE excludes the one-time "
                         f"class-wise bank, {_fmt_number('rte_s', g['bank_s'].mean(), g['bank_s'].std())} s "
                         f"over {len(g)} seed(s)")
    n_old = int(df["superseded"].sum())
    if n_old:
        notes.append(f"{n_old} older record(s) of re-run jobs are superseded by newer ones and not "
                     "shown in the tables (they stay in the CSV with superseded=True)")
    return notes


def provenance_line(df: pd.DataFrame, root: str | Path) -> str:
    """Where the numbers come from, in one line (per-record provenance is in the CSV)."""
    def seen(col):
        return ", ".join(sorted({str(v) for v in df[col].dropna()})) if col in df else "?"
    return (f"{len(df)} method records from {root} (devices: {seen('device')}; mubench "
            f"{seen('version_mubench')}, torch {seen('version_torch')}; last finished "
            f"{max(df['finished'].dropna().astype(str), default='?')}).")


# -- rendering --------------------------------------------------------------------------------
def _cells(table: pd.DataFrame) -> Iterable[tuple[tuple, pd.DataFrame]]:
    for cell, part in table.groupby(level=CELL, sort=False):
        yield cell, part.droplevel(CELL)


def render_markdown(table: pd.DataFrame, notes: Sequence[str] = (),
                    extra_sections: Sequence[tuple[str, pd.DataFrame]] = (), intro: str = "") -> str:
    """One GitHub-Markdown table per (dataset, model, scenario), then extra tables and notes."""
    out = ["# mubench report", ""] + ([intro, ""] if intro else [])
    for (dataset, model, scenario), part in _cells(table):
        out += [f"## {dataset} / {model} / {scenario}", "", _md_table(part.reset_index()), ""]
    for title, frame in extra_sections:
        out += [f"## {title}", "", _md_table(frame) if len(frame) else "(none)", ""]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def markdown_table(frame: pd.DataFrame) -> str:
    """One GitHub-Markdown table of a frame's columns and rows (index not shown)."""
    def cell(v):
        return str(v).replace("|", "\\|")
    head = [cell(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


_md_table = markdown_table


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    text = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))
    return text.replace("±", r"$\pm$")


def render_latex(table: pd.DataFrame, notes: Sequence[str] = ()) -> str:
    """One booktabs `table` per cell (needs \\usepackage{booktabs}); notes as % comments."""
    out = ["% generated by `python -m mubench report`; needs \\usepackage{booktabs}"]
    out += [f"% note: {n}" for n in notes]
    for (dataset, model, scenario), part in _cells(table):
        out += ["", latex_table(part.reset_index(), f"{dataset} / {model} / {scenario}")]
    return "\n".join(out) + "\n"


def latex_table(frame: pd.DataFrame, caption: str) -> str:
    """One booktabs `table` of a frame's columns and rows (first column left-aligned)."""
    cols = list(frame.columns)
    out = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(caption)}}}",
           r"\begin{tabular}{l" + "r" * (len(cols) - 1) + "}", r"\toprule",
           " & ".join(_latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    out += [" & ".join(_latex_escape(v) for v in row) + r" \\" for row in frame.itertuples(index=False)]
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{padding:.3em .7em;text-align:right;border-bottom:1px solid #e4e4e4;white-space:nowrap}
th{border-bottom:2px solid #444}td:first-child,th:first-child{text-align:left}
td.bad{color:#b00020;font-weight:600}figure{margin:1em 0}img{max-width:100%}
figcaption{font-size:.85em;color:#555}li{margin:.2em 0}
"""


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        tds = []
        for v in row:
            text = str(v)
            bad = text in ("failed", "missing") or "failed" in text or "missing" in text
            tds.append(f'<td class="bad">{html.escape(text)}</td>' if bad else f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_figure(fig) -> str:
    data = base64.b64encode(fig.png.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(fig.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>")


def render_html(table: pd.DataFrame, notes: Sequence[str] = (),
                extra_sections: Sequence[tuple[str, pd.DataFrame]] = (), figures: Sequence = (),
                intro: str = "") -> str:
    """One self-contained page: inline CSS, figures as base64 PNG, no external assets or scripts."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>mubench report</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>mubench report</h1>",
           "<p>Mean ± std over seeds; Avg. Gap is computed per seed against that seed's Retrain. "
           "RTE is the wall-clock time of the unlearning call.</p>"]
    out += [f"<p>{html.escape(intro)}</p>"] if intro else []
    for cell, part in _cells(table):
        out.append(f"<h2>{html.escape(' / '.join(map(str, cell)))}</h2>")
        out.append(_html_table(part.reset_index()))
        out += [_html_figure(f) for f in figures if tuple(f.cell) == tuple(cell)]
    for title, frame in extra_sections:
        out.append(f"<h2>{html.escape(title)}</h2>")
        out.append(_html_table(frame) if len(frame) else "<p>(none)</p>")
    if notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(root: str | Path, out_dir: str | Path | None = None,
                 formats: Sequence[str] = ("md", "latex", "csv", "html")) -> list[Path]:
    """Load the records under `root`, write the requested formats and the figures (PNG + PDF)
    into `out_dir` (default `<root>/report`), and return the written paths."""
    from . import plots, stats

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown report format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    out = Path(out_dir) if out_dir is not None else Path(root) / "report"
    df = with_gaps(load_records(root))
    table, notes = summary_table(df), report_notes(df, root)
    gaps = per_seed_gaps(df)
    extra = [("Avg. Gap per seed", stats.gap_distribution(gaps)),
              ("Paired comparison with FV: mean over seeds of (Avg. Gap − FV's Avg. Gap), "
              "seeded 95% bootstrap interval; > 0 means FV is closer to Retrain",
              stats.compare_to_reference(gaps))]
    extra = [(title, stats.format_stats(f).assign(variant=lambda f: f["variant"].map(method_label))
              .rename(columns={"variant": "method"})) for title, f in extra]
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    figures = plots.report_figures(df, summary_stats(df), out / "figures")
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
    names = {"md": "report.md", "latex": "report.tex", "csv": "records.csv",
             "html": "report.html", "parquet": "records.parquet"}
    for fmt in dict.fromkeys(formats):
        path = out / names[fmt]
        if fmt == "csv":
            tidy(df).to_csv(path, index=False)
        elif fmt == "parquet":
            tidy(df).to_parquet(path, index=False)
        else:
            path.write_text(texts[fmt](), encoding="utf-8")
        written.append(path)
    return written
