"""The TOML form of an ExperimentConfig, both ways (the keys are in mubench/config.py).

Reading (`load_config`, `config_from_dict`) checks each value's type and says in one sentence
which key of which file is wrong; writing (`config_to_toml`) gives back TOML that reads to an
equal config, which is what `mubench tune` hands to `mubench run --config`. Both live here so
the round trip is one module's job.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

from .config import (
    MOVED_EVALUATION_FIELDS,
    EvaluationConfig,
    ExecutionConfig,
    ExperimentConfig,
    TuneConfig,
    attack_tables,
    split_scenarios,
)
from .errors import ConfigError
from .params import apply_overrides, unknown_field

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# -- reading a config (a TOML file, or the dict it parses to) ----------------------------------
_EXPERIMENT_KEYS = {f.name for f in dataclasses.fields(ExperimentConfig)} - {
    "recipe", "method_params", "scenario_params", "bank", "tune", "evaluation", "execution", "source"}
_TOP_KEYS = {"experiment", "recipe", "methods", "bank", "tune", "evaluation", "execution"}


def _table(cls, table, source: str, section: str):
    """A config table checked and converted by the fields' declared constraints (params.py):
    unknown keys, wrong types and out-of-range values are one sentence naming file and table."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{section}] must be a table; got {table!r}")
    return apply_overrides(cls(), table, f"{source} [{section}]", "key")


def _evaluation_table(table: dict, source: str) -> EvaluationConfig:
    """[evaluation]: listing attacks (`attacks = [...]` or [evaluation.attacks.NAME] tables) replaces
    the dataset preset's (`EvaluationConfig.attack_tables`) unless `preset_attacks = true` keeps them."""
    moved = sorted(set(table) & set(MOVED_EVALUATION_FIELDS))
    if table.get("preset_attacks") is not None and not isinstance(table["preset_attacks"], bool):
        raise ConfigError(f"{source} [evaluation]: 'preset_attacks' must be true or false; got {table['preset_attacks']!r}")
    if moved:
        name = moved[0]
        attack, _, setting = MOVED_EVALUATION_FIELDS[name][len("attacks."):].partition(".")
        raise ConfigError(f"{source} [evaluation]: {name!r} moved to its attack's table; write "
                          f"[evaluation.attacks.{attack}] {setting} = {_toml_value(table[name])}")
    table = dict(table)
    if "attacks" in table:
        table["attacks"] = attack_tables(table["attacks"], f"{source} [evaluation] attacks")
    return _table(EvaluationConfig, table, source, "evaluation")


def config_from_dict(doc: dict, source: str = "config") -> ExperimentConfig:
    if "tuned" in doc:
        raise ConfigError(f"{source}: the [tuned] table is gone; tuned settings are files written by "
                          "`mubench tune`, read with [experiment] tuned = \"PATH\" (docs/tuning.md)")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown section [{sorted(unknown)[0]}]; valid: {', '.join(sorted(_TOP_KEYS))}")
    exp = dict(doc.get("experiment", {}))
    bad = set(exp) - _EXPERIMENT_KEYS
    if bad:
        raise unknown_field(f"{source} [experiment]", sorted(bad)[0], sorted(_EXPERIMENT_KEYS), "key")
    if isinstance(exp.get("scenarios"), str):  # commas inside scenarios: split before a kind only
        exp["scenarios"] = list(split_scenarios(exp["scenarios"]))
    experiment = _table(ExperimentConfig, exp, source, "experiment")
    bank = doc.get("bank", {})
    if not isinstance(bank, dict):
        raise ConfigError(f"{source}: [bank] must be a table of the forget-vector bank's settings; got {bank!r}")
    methods = doc.get("methods", {})
    if not isinstance(methods, dict) or any(not isinstance(v, dict) for v in methods.values()):
        raise ConfigError(f"{source}: [methods.NAME] tables must map hyper-parameter names to values")
    method_params, scenario_params = _method_tables(methods, source)
    return dataclasses.replace(
        experiment,
        recipe=dict(doc.get("recipe", {})),
        method_params=method_params,
        scenario_params=scenario_params,
        bank=dict(bank),
        tune=_tune_table(doc.get("tune", {}), source),
        evaluation=_evaluation_table(doc.get("evaluation", {}), source),
        execution=_table(ExecutionConfig, doc.get("execution", {}), source, "execution"),
        source=source,
    )


def _scenario_spec(text, where: str) -> str:
    """Canonical scenario text ("random:10.0" → "random:10"), so tables match the runner's cells."""
    from .scenarios import parse_scenario

    try:
        return parse_scenario(text).spec
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _method_tables(methods: dict, source: str) -> tuple[dict, dict]:
    """[methods.NAME] → (all-scenario values, {scenario: values}); a sub-table is a scenario."""
    method_params, scenario_params = {}, {}
    for method, table in methods.items():
        method_params[method] = {k: v for k, v in table.items() if not isinstance(v, dict)}
        for key, sub in table.items():
            if not isinstance(sub, dict):
                continue
            where = f"{source} [methods.{method}.{json.dumps(key)}]"
            spec = _scenario_spec(key, f"{where} (a sub-table of [methods.{method}] names a scenario, "
                                       f"e.g. [methods.{method}.\"class:0\"])")
            if spec in scenario_params.get(method, {}):
                raise ConfigError(f"{where}: scenario {spec!r} has two tables; merge them")
            if any(isinstance(v, dict) for v in sub.values()):
                raise ConfigError(f"{where}: a scenario table holds hyper-parameter values, not tables")
            scenario_params.setdefault(method, {})[spec] = dict(sub)
    return method_params, scenario_params


def _tune_table(table: dict, source: str) -> TuneConfig:
    table = dict(table)
    grid = table.pop("grid", {})
    tune = _table(TuneConfig, table, source, "tune")
    for method, fields in grid.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"{source} [tune.grid]: expected [tune.grid.{method}] with FIELD = [values]")
        for name, values in fields.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{source} [tune.grid.{method}]: {name!r} must be a non-empty list of "
                                  f"candidate values; got {values!r}")
    return dataclasses.replace(tune, grid={m: {k: list(v) for k, v in f.items()} for m, f in grid.items()})


def read_toml(path: str | Path, what: str) -> dict:
    """A TOML file as a dict; a missing file or bad TOML is one sentence naming `what` it is."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{what} {path}: invalid TOML ({err})") from None


def load_config(path: str | Path) -> ExperimentConfig:
    return config_from_dict(read_toml(path, "config file"), source=str(path))


# -- writing a config back (what `mubench tune` hands to `mubench run --config`) --------------
_EXPERIMENT_ORDER = ("datasets", "models", "scenarios", "seeds", "methods", "out", "data_root",
                     "download", "train_subset", "validation", "tuned", "precision", "plugins")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # 0.1, 1e-05, inf, -inf and nan are all TOML floats
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def _toml_table(name: str, values: dict) -> list[str]:
    """A [name] table; None (TOML has no null) means 'the default', so its key is left out."""
    return [f"[{name}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items() if v is not None] + [""]


def config_to_toml(config: ExperimentConfig) -> str:
    """The config as TOML that `load_config` reads back to an equal config (source aside)."""
    out = _toml_table("experiment", {k: getattr(config, k) for k in _EXPERIMENT_ORDER})
    if config.recipe:
        out += _toml_table("recipe", config.recipe)
    for method in sorted(set(config.method_params) | set(config.scenario_params)):
        if config.method_params.get(method) or not config.scenario_params.get(method):
            out += _toml_table(f"methods.{_toml_key(method)}", config.method_params.get(method, {}))
        for spec, table in config.scenario_params.get(method, {}).items():
            out += _toml_table(f"methods.{_toml_key(method)}.{json.dumps(spec)}", table)
    if config.bank:
        out += _toml_table("bank", config.bank)
    out += _toml_table("evaluation", dataclasses.asdict(config.evaluation))
    execution = dataclasses.asdict(config.execution)
    slurm = execution.pop("slurm")
    out += _toml_table("execution", execution)
    if slurm:
        out += _toml_table("execution.slurm", slurm)
    if config.tune != TuneConfig():
        out += _toml_table("tune", {k: (list(v) if k in ("seeds", "scenarios") else v)
                                    for k, v in dataclasses.asdict(config.tune).items() if k != "grid"})
        for method, fields in config.tune.grid.items():
            out += _toml_table(f"tune.grid.{_toml_key(method)}", fields)
    return "\n".join(out)
