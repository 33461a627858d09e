"""Paper table specs: loading and validating `reports/paper/*.toml`, and turning a spec into
the runner's configs and one merged plan (see the package docstring)."""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import report
from ..config import ExperimentConfig
from ..config_toml import config_from_dict, read_toml
from ..errors import ConfigError, MubenchError
from ..store import Store

SPEC_DIR = Path(__file__).resolve().parents[2] / "reports" / "paper"
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
    doc = read_toml(path, "paper spec file")
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
    rows = _with_calibration(tuple(_row(r, i, where) for i, r in enumerate(_list(doc, "rows", where))))
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


def _with_calibration(rows: tuple[Row, ...]) -> tuple[Row, ...]:
    """The spec's rows with the calibration rows (the untouched original, an independent Retrain)
    after Retrain's, or first: every paper table shows what doing nothing and a second Retrain
    score, which the paper's own tables do not (their reference values for them read n/a)."""
    from ..plugins import load_plugins
    from ..unlearning import METHODS, calibration_methods

    load_plugins()
    named = {r.method for r in rows}
    extra = tuple(Row(METHODS.get(m).label, m) for m in calibration_methods() if m not in named)
    at = next((i + 1 for i, r in enumerate(rows) if r.method == "retrain"), 0)
    return rows[:at] + extra + rows[at:]


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
    if config.evaluation.preset_attacks is None:  # paper tables print SPEC §5's SVC: no screen models unless asked
        config = dataclasses.replace(config, evaluation=dataclasses.replace(config.evaluation, preset_attacks=False))
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
    from ..runner import build_plan, merge_plans
    from ..unlearning import METHODS

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


