"""Paper tables: `reports/paper/*.toml` specs → the runner's jobs → tables in the paper's layout.

A spec declares one table of the forget-vector paper (Sun et al., arXiv 2412.16780): the grid
(an experiment config without `methods`), the rows (methods in the paper's order, with paper
labels and optional per-row parameters, so one method can fill several rows), the blocks
(groups of scenarios aggregated into one sub-table, e.g. every `class:*` scenario), the metric
columns, per-preset overrides (`quick`: a CPU-sized stand-in; `full`: the paper's setting) and
optional reference numbers with their source. The format is documented in docs/paper-tables.md.

Jobs are the runner's own (`build_plan`), so a paper table shares cached originals, Retrains
and method runs with `mubench run` on the same results root. Rows are matched to records by
job key, never by name, so a record of another grid cannot leak into a table.

Aggregation (what the paper does for class-wise forgetting: average over the forgotten
classes): every cell pools the ok jobs of its block — all (scenario, seed) pairs — and shows
their mean ± std (ddof 1). With every class run on every seed, the mean equals the mean over
classes of the per-class seed means. Avg. Gap is computed per job against the Retrain of the
same scenario and seed (report.with_gaps) before pooling; RTE × Retrain likewise per job.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import report
from .aggregate import aggregate
from .config import ExperimentConfig, config_from_dict
from .errors import ConfigError, MubenchError
from .store import Store

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SPEC_DIR = Path(__file__).resolve().parent.parent / "reports" / "paper"
PRESETS = ("quick", "full")
# Column names (record fields, lower snake) → the paper's headers.
COLUMNS = {**{k: v for k, v in report.TABLE_METRICS.items()}, "rte_rel": "RTE (× Retrain)"}
_TOP_KEYS = {"name", "title", "mirrors", "grid", "rows", "blocks", "columns", "presets", "reference"}
_PRESET_KEYS = {"note", "experiment", "recipe", "methods", "evaluation", "execution"}


@dataclass(frozen=True)
class Row:
    label: str  # the paper's name of the row (also the key of reference values)
    method: str  # registry name
    params: dict = field(default_factory=dict)  # overrides for this row only (e.g. weights="sum")


@dataclass(frozen=True)
class Block:
    id: str  # key of reference values
    title: str
    scenarios: tuple[str, ...]  # fnmatch patterns over the grid's scenarios ("class:*")

    def matches(self, scenario: str) -> bool:
        return any(fnmatch.fnmatchcase(scenario, p) for p in self.scenarios)


@dataclass(frozen=True)
class PaperSpec:
    name: str
    title: str
    mirrors: str  # which table/experiment of the paper this reproduces
    path: Path
    grid: dict  # an experiment-config document (experiments/*.toml syntax), no methods
    rows: tuple[Row, ...]
    blocks: tuple[Block, ...]
    columns: tuple[str, ...]
    presets: dict  # preset name → document merged over the grid (plus `note`)
    reference_source: str = ""
    reference: dict = field(default_factory=dict)  # block id → row label → column → number


# -- loading and validation -------------------------------------------------------------------
def spec_files(spec_dir: str | Path = SPEC_DIR) -> list[Path]:
    return sorted(Path(spec_dir).glob("*.toml"))


def find_spec(name: str, spec_dir: str | Path = SPEC_DIR) -> Path:
    """A spec by name (file stem in `spec_dir`) or by path to a .toml file."""
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"paper spec file {name!r} does not exist")
        return path
    path = Path(spec_dir) / f"{name}.toml"
    if not path.is_file():
        names = ", ".join(p.stem for p in spec_files(spec_dir)) or "none"
        raise ConfigError(f"unknown paper table {name!r}; valid: {names} (python -m mubench paper --list)")
    return path


def load_spec(path: str | Path) -> PaperSpec:
    """Parse and validate one spec; every error is one line naming the file and the key."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"paper spec file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML ({err})") from None
    where = str(path)
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; valid: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("name", "title", "mirrors"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise ConfigError(f"{where}: {key!r} must be a non-empty string")
    if doc["name"] != path.stem:
        raise ConfigError(f"{where}: 'name' is {doc['name']!r} but the file is {path.name}; they must match")
    grid = doc.get("grid", {})
    if not isinstance(grid, dict):
        raise ConfigError(f"{where}: [grid] must be a table (experiments/*.toml syntax)")
    if "methods" in grid.get("experiment", {}):
        raise ConfigError(f"{where} [grid.experiment]: 'methods' is not allowed; the [[rows]] choose the methods")
    rows = tuple(_row(r, i, where) for i, r in enumerate(_list(doc, "rows", where)))
    labels = [r.label for r in rows]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where} [[rows]]: duplicate label {next(x for x in labels if labels.count(x) > 1)!r}")
    blocks = tuple(_block(b, i, where) for i, b in enumerate(_list(doc, "blocks", where)))
    if len({b.id for b in blocks}) != len(blocks):
        raise ConfigError(f"{where} [[blocks]]: block ids must be unique")
    columns = doc.get("columns", ["ua", "ra", "ta", "mia_efficacy", "avg_gap", "rte_s"])
    if not isinstance(columns, list) or not columns:
        raise ConfigError(f"{where}: 'columns' must be a non-empty list of {', '.join(COLUMNS)}")
    for c in columns:
        if c not in COLUMNS:
            raise ConfigError(f"{where}: unknown column {c!r}; valid: {', '.join(COLUMNS)}")
    presets = doc.get("presets", {})
    if not isinstance(presets, dict):
        raise ConfigError(f"{where}: [presets] must be a table of [presets.quick] / [presets.full]")
    for name, table in presets.items():
        if name not in PRESETS:
            raise ConfigError(f"{where}: unknown preset [presets.{name}]; valid: {', '.join(PRESETS)}")
        bad = sorted(set(table) - _PRESET_KEYS)
        if bad:
            raise ConfigError(f"{where} [presets.{name}]: unknown key {bad[0]!r}; valid: {', '.join(sorted(_PRESET_KEYS))}")
        if "methods" in table.get("experiment", {}):
            raise ConfigError(f"{where} [presets.{name}.experiment]: 'methods' is not allowed; the [[rows]] choose the methods")
    if not str(presets.get("quick", {}).get("note", "")).strip():
        raise ConfigError(f"{where} [presets.quick]: 'note' must say what the quick preset substitutes "
                          "(it heads every quick table)")
    spec = PaperSpec(name=doc["name"], title=doc["title"], mirrors=doc["mirrors"], path=path, grid=grid,
                     rows=rows, blocks=blocks, columns=tuple(columns), presets=presets)
    return _with_reference(spec, doc.get("reference", {}), where)


def _list(doc: dict, key: str, where: str) -> list:
    value = doc.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where}: at least one [[{key}]] table is required")
    return value


def _row(table: dict, i: int, where: str) -> Row:
    at = f"{where} [[rows]] #{i + 1}"
    bad = sorted(set(table) - {"label", "method", "params"})
    if bad:
        raise ConfigError(f"{at}: unknown key {bad[0]!r}; valid: label, method, params")
    for key in ("label", "method"):
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise ConfigError(f"{at}: {key!r} must be a non-empty string")
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{at}: 'params' must be a table of hyper-parameters, e.g. {{weights = \"sum\"}}")
    if table["method"] == "retrain" and params:
        raise ConfigError(f"{at}: Retrain is the reference of every gap; set its parameters in [grid.methods.retrain]")
    return Row(table["label"], table["method"], dict(params))


def _block(table: dict, i: int, where: str) -> Block:
    at = f"{where} [[blocks]] #{i + 1}"
    bad = sorted(set(table) - {"id", "title", "scenarios"})
    if bad:
        raise ConfigError(f"{at}: unknown key {bad[0]!r}; valid: id, title, scenarios")
    for key in ("id", "title"):
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise ConfigError(f"{at}: {key!r} must be a non-empty string")
    scenarios = table.get("scenarios")
    if not isinstance(scenarios, list) or not scenarios or not all(isinstance(s, str) for s in scenarios):
        raise ConfigError(f"{at}: 'scenarios' must be a non-empty list of patterns, e.g. [\"class:*\"]")
    return Block(table["id"], table["title"], tuple(scenarios))


def _with_reference(spec: PaperSpec, ref: dict, where: str) -> PaperSpec:
    """`[reference] source = "..."` and `[reference.values.BLOCK."ROW LABEL"] column = number`."""
    if not isinstance(ref, dict) or set(ref) - {"source", "values"}:
        raise ConfigError(f"{where} [reference]: only 'source' and [reference.values.BLOCK.\"ROW\"] tables are allowed")
    values = ref.get("values", {})
    blocks, labels = {b.id for b in spec.blocks}, {r.label for r in spec.rows}
    out: dict = {}
    for block, rows in values.items():
        if block not in blocks:
            raise ConfigError(f"{where} [reference.values.{block}]: no block with that id; valid: {', '.join(sorted(blocks))}")
        for label, cols in rows.items():
            if label not in labels:
                raise ConfigError(f"{where} [reference.values.{block}]: no row labelled {label!r}; "
                                  f"valid: {', '.join(r.label for r in spec.rows)}")
            for col, value in cols.items():
                at = f"{where} [reference.values.{block}.{label!r}]"
                if col not in spec.columns:
                    raise ConfigError(f"{at}: {col!r} is not one of this table's columns ({', '.join(spec.columns)})")
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{at}: {col!r} must be a number; got {value!r}")
                out.setdefault(block, {}).setdefault(label, {})[col] = float(value)
    source = str(ref.get("source", "")).strip()
    if out and not source:
        raise ConfigError(f"{where} [reference]: 'source' must say where the reference numbers come from")
    return dataclasses.replace(spec, reference_source=source, reference=out)


# -- spec → configs → jobs --------------------------------------------------------------------
def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def preset_config(spec: PaperSpec, preset: str, out: str | None = None) -> ExperimentConfig:
    """The grid with `[presets.<preset>]` merged over it, as a validated config (no methods:
    `passes` adds them). `out` (the results root) overrides the spec's."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    over = {k: v for k, v in spec.presets.get(preset, {}).items() if k != "note"}
    doc = _merge(spec.grid, over)
    config = config_from_dict(doc, source=f"{spec.path} [presets.{preset}]")
    if out is not None:
        config = dataclasses.replace(config, out=out)
    for sc in config.scenarios:
        if not any(b.matches(sc) for b in spec.blocks):
            raise ConfigError(f"{spec.path} [presets.{preset}]: scenario {sc!r} belongs to no [[blocks]]")
    for b in spec.blocks:
        if not any(b.matches(sc) for sc in config.scenarios):
            raise ConfigError(f"{spec.path} [presets.{preset}]: block {b.id!r} matches none of the "
                              f"scenarios {', '.join(config.scenarios)}")
    return config


def passes(spec: PaperSpec, config: ExperimentConfig) -> list[tuple[ExperimentConfig, dict[str, Row]]]:
    """One config per pass: pass k runs the k-th row of every method (one method can fill several
    rows with different parameters). Every pass keeps the grid's method parameters, so the
    forget-vector bank (keyed by forget_vector's parameters) is the same in all of them."""
    by_method: dict[str, list[Row]] = {}
    for row in spec.rows:
        by_method.setdefault(row.method, []).append(row)
    out = []
    for k in range(max(len(v) for v in by_method.values())):
        chosen = {m: rows[k] for m, rows in by_method.items() if len(rows) > k}
        params = dict(config.method_params)
        for m, row in chosen.items():
            if row.params:
                params[m] = {**params.get(m, {}), **row.params}
        out.append((dataclasses.replace(config, methods=tuple(chosen), method_params=params), chosen))
    return out


@dataclass
class PaperPlan:
    """The merged job graph of every pass, and which row and block each method job fills."""

    config: ExperimentConfig
    plan: object  # runner.Plan
    jobs: pd.DataFrame  # key, row, block, dataset, model, scenario, seed (one per method job)


def plan_table(spec: PaperSpec, preset: str, out: str | None = None) -> PaperPlan:
    from .runner import build_plan, merge_plans
    from .unlearning import METHODS

    config = preset_config(spec, preset, out)
    store = Store(config.out)
    plans, rows = [], []
    for pass_config, chosen in passes(spec, config):
        try:
            plan = build_plan(pass_config, store)
        except MubenchError as err:
            raise type(err)(f"{spec.path}: {err}") from None
        plans.append(plan)
        for job in plan.evaluations():
            if job.method in chosen:
                block = next(b.id for b in spec.blocks if b.matches(job.scenario))
                rows.append({"key": job.key, "row": chosen[job.method].label, "block": block,
                             "dataset": job.dataset, "model": job.model, "scenario": job.scenario,
                             "seed": job.seed})
    for row in spec.rows:  # validated by build_plan already; this names the row on a typo
        METHODS.get(row.method)
    jobs = pd.DataFrame(rows).drop_duplicates(["key", "row"]).reset_index(drop=True)
    return PaperPlan(config, merge_plans(plans), jobs)


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
    from .runner import recipe_for

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
