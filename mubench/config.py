"""Typed experiment configuration: dataclass defaults < TOML file < command-line flags.

    [experiment]                      # every key optional; defaults = the embedded digits grid
    datasets  = ["digits"]
    models    = []                    # empty → each dataset's preset model
    scenarios = ["class:0", "random:10"]
    seeds     = [0, 1, 2]
    methods   = ["all"]               # names or fnmatch patterns ("fv*")
    out       = "results"
    data_root = ""                    # "" → $MUBENCH_DATA or ~/.cache/mubench/data
    train_subset = 0                  # >0: fixed stratified subset of the training set
    precision = "auto"                # auto | fp32 | bf16
    plugins   = []

    [recipe]                          # overrides of the original model's recipe (all datasets)
    epochs = 30

    [methods.salun]                   # hyper-parameter overrides, validated against Params
    lr = 0.02
    [methods.salun."class:0"]         # ... for one scenario only (beats [methods.salun])
    lr = 0.05

    [tuned]                           # which per-scenario tables `mubench tune` chose (marker)
    salun = ["class:0"]

    [tune]                            # read by `mubench tune` only
    seeds = [100, 101]                # tuning seeds, disjoint from the reporting seeds
    [tune.grid.salun]                 # candidates per field (grid = their product)
    lr = [0.02, 0.05, 0.1]

    [bank]                            # the forget-vector bank's own settings (its plugin checks them)
    epochs = 60

    [evaluation]
    controls = true                   # bypass / random-δ / KL extras
    mia_legacy_first_n = false

    [execution]
    backend   = "loky"                # loky | dask | sequential
    jobs      = 0                     # 0 → one per GPU, else one per CPU core
    scheduler = ""                    # dask: tcp://host:8786
    device    = "auto"
    [execution.slurm]                 # dask_jobqueue.SLURMCluster(**this) when present
    cores = 4

Method hyper-parameters resolve in five layers, each beating the one before: Params defaults <
dataset preset (mubench/presets.py, per scenario kind) < [methods.NAME] < [methods.NAME."SCENARIO"]
< --set (`method_overrides` merges the two file layers; `with_set_params` applies --set).

Scenario lists given as one string split only before a scenario kind (`split_scenarios`), so
`class:0,classes:1,2,subset:1,2:50` is three scenarios. Values are checked for type here and
for meaning (known names, ranges, devices) by `mubench.validate.validate_config`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BACKENDS = ("loky", "dask", "sequential")


@dataclass(frozen=True)
class ExecutionConfig:
    backend: str = "loky"  # loky (local processes), dask (a cluster), sequential (this process)
    jobs: int = 0  # parallel workers; 0 → one per GPU, or one per CPU core
    scheduler: str = ""  # dask scheduler address (tcp://host:port)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads_per_worker: int = 0  # torch threads per worker; 0 → cores / workers
    slurm: dict = field(default_factory=dict)  # dask_jobqueue.SLURMCluster keyword arguments


@dataclass(frozen=True)
class EvaluationConfig:
    controls: bool = True  # bypass / random-δ noise / KL-to-Retrain extras
    extra_mia: bool = False  # entropy / m-entropy / correctness MIA variants
    mia_legacy_first_n: bool = False  # OPTML's first-n shadow sets instead of seeded random ones


TUNING_SEEDS = (100, 101)  # disjoint from the reporting seeds 0, 1, 2 (docs/tuning.md)


@dataclass(frozen=True)
class TuneConfig:
    seeds: tuple[int, ...] = TUNING_SEEDS  # seeds the search runs on (not the reporting seeds)
    grid: dict = field(default_factory=dict)  # method → {field: [candidate values]}


@dataclass(frozen=True)
class ExperimentConfig:
    datasets: tuple[str, ...] = ("digits",)
    models: tuple[str, ...] = ()  # empty → each dataset's preset model
    scenarios: tuple[str, ...] = ("class:0", "random:10")
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = ("all",)
    out: str = "results"
    data_root: str = ""
    download: bool = False
    train_subset: int = 0  # >0: a fixed stratified subset of the training set (CPU-sized grids)
    precision: str = "auto"
    plugins: tuple[str, ...] = ()
    recipe: dict = field(default_factory=dict)  # overrides of the preset recipe (and recipe.optim)
    method_params: dict = field(default_factory=dict)  # method → {field: value} (all scenarios)
    scenario_params: dict = field(default_factory=dict)  # method → {scenario: {field: value}}
    tuned: dict = field(default_factory=dict)  # method → scenarios whose table `tune` chose
    bank: dict = field(default_factory=dict)  # [bank]: the forget-vector bank's settings (its plugin validates)
    tune: TuneConfig = field(default_factory=TuneConfig)  # the search of `mubench tune`
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    source: str = "defaults"  # where the config came from (for error messages)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_EXPERIMENT_KEYS = {f.name for f in dataclasses.fields(ExperimentConfig)} - {
    "recipe", "method_params", "scenario_params", "tuned", "bank", "tune", "evaluation", "execution", "source"}
_TOP_KEYS = {"experiment", "recipe", "methods", "tuned", "bank", "tune", "evaluation", "execution"}


def split_scenarios(text: str) -> tuple[str, ...]:
    """`class:0,classes:1,2,subset:1,2:50` → its three scenarios: a comma separates scenarios only
    where a kind (a word and a colon, `random:`) follows it; class lists are digits and commas.
    Any word counts, not only the known kinds, so `class:0,foo:1` names 'foo:1' as the bad one."""
    parts = (p.strip(" ,") for p in re.split(r",\s*(?=[A-Za-z][\w-]*:)", text))  # "a,,b" and "a," too
    return tuple(p for p in parts if p)


def _strict_int(value) -> int:
    """int() that refuses what is not already an integer (1.5, True, "1.5")."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(value)
    return int(value)


def _as_tuple(value, key: str, source: str, item_type=str) -> tuple:
    if isinstance(value, str):
        parts = split_scenarios(value) if key == "scenarios" else value.split(",")
        value = [v.strip() for v in parts if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{source}: {key!r} must be a list; got {value!r}")
    convert = _strict_int if item_type is int else item_type
    try:
        return tuple(convert(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key!r} must be a list of {item_type.__name__}; got {value!r}") from None


def _sub_config(cls, table: dict, source: str, section: str):
    valid = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in valid:
            raise ConfigError(f"{source} [{section}]: unknown key {key!r}; valid: {', '.join(valid)}")
        default = valid[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{source} [{section}]: {key!r} must be true or false; got {value!r}")
        if isinstance(default, int) and not isinstance(default, bool) and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{source} [{section}]: {key!r} must be an integer; got {value!r}")
        if isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{source} [{section}]: {key!r} must be a string; got {value!r}")
        values[key] = value
    return cls(**values)


def config_from_dict(doc: dict, source: str = "config") -> ExperimentConfig:
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown section [{sorted(unknown)[0]}]; valid: {', '.join(sorted(_TOP_KEYS))}")
    exp = dict(doc.get("experiment", {}))
    bad = set(exp) - _EXPERIMENT_KEYS
    if bad:
        raise ConfigError(f"{source} [experiment]: unknown key {sorted(bad)[0]!r}; valid: {', '.join(sorted(_EXPERIMENT_KEYS))}")
    kwargs: dict[str, Any] = {}
    for key in ("datasets", "models", "scenarios", "methods", "plugins"):
        if key in exp:
            kwargs[key] = _as_tuple(exp[key], key, source)
    if "seeds" in exp:
        kwargs["seeds"] = _as_tuple(exp["seeds"], "seeds", source, int)
    for key in ("out", "data_root", "precision"):
        if key in exp:
            kwargs[key] = str(exp[key])
    if "download" in exp:
        kwargs["download"] = bool(exp["download"])
    if "train_subset" in exp:
        if isinstance(exp["train_subset"], bool) or not isinstance(exp["train_subset"], int) or exp["train_subset"] < 0:
            raise ConfigError(f"{source} [experiment]: 'train_subset' must be a non-negative integer; got {exp['train_subset']!r}")
        kwargs["train_subset"] = exp["train_subset"]
    bank = doc.get("bank", {})
    if not isinstance(bank, dict):
        raise ConfigError(f"{source}: [bank] must be a table of the forget-vector bank's settings; got {bank!r}")
    methods = doc.get("methods", {})
    if not isinstance(methods, dict) or any(not isinstance(v, dict) for v in methods.values()):
        raise ConfigError(f"{source}: [methods.NAME] tables must map hyper-parameter names to values")
    method_params, scenario_params = _method_tables(methods, source)
    return ExperimentConfig(
        **kwargs,
        recipe=dict(doc.get("recipe", {})),
        method_params=method_params,
        scenario_params=scenario_params,
        tuned=_tuned_table(doc.get("tuned", {}), scenario_params, source),
        bank=dict(bank),
        tune=_tune_table(doc.get("tune", {}), source),
        evaluation=_sub_config(EvaluationConfig, doc.get("evaluation", {}), source, "evaluation"),
        execution=_sub_config(ExecutionConfig, doc.get("execution", {}), source, "execution"),
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


def _tuned_table(table: dict, scenario_params: dict, source: str) -> dict:
    """[tuned] NAME = ["class:0", ...]: each entry must name a [methods.NAME."SCENARIO"] table."""
    tuned = {}
    for method, scenarios in table.items():
        if method == "retrain":
            raise ConfigError(f"{source} [tuned]: 'retrain' is the reference of every gap and is never tuned")
        if isinstance(scenarios, str):
            scenarios = list(split_scenarios(scenarios))
        specs = tuple(_scenario_spec(s, f"{source} [tuned] {method}")
                      for s in _as_tuple(scenarios, method, f"{source} [tuned]"))
        for spec in specs:
            if spec not in scenario_params.get(method, {}):
                raise ConfigError(f"{source} [tuned]: {method} {spec!r} has no [methods.{method}.\"{spec}\"] "
                                  "table holding the tuned values")
        tuned[method] = specs
    return tuned


def _tune_table(table: dict, source: str) -> TuneConfig:
    bad = set(table) - {"seeds", "grid"}
    if bad:
        raise ConfigError(f"{source} [tune]: unknown key {sorted(bad)[0]!r}; valid: grid, seeds")
    seeds = _as_tuple(table["seeds"], "seeds", f"{source} [tune]", int) if "seeds" in table else TUNING_SEEDS
    grid = table.get("grid", {})
    for method, fields in grid.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"{source} [tune.grid]: expected [tune.grid.{method}] with FIELD = [values]")
        for name, values in fields.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{source} [tune.grid.{method}]: {name!r} must be a non-empty list of "
                                  f"candidate values; got {values!r}")
    return TuneConfig(seeds=seeds, grid={m: {k: list(v) for k, v in f.items()} for m, f in grid.items()})


def method_overrides(config: ExperimentConfig, method: str, scenario: str) -> tuple[dict, bool]:
    """The file layers of one method in one scenario (canonical text): [methods.NAME] with
    [methods.NAME."SCENARIO"] on top, and whether the config marks that table as tuned."""
    table = config.scenario_params.get(method, {}).get(scenario, {})
    return {**config.method_params.get(method, {}), **table}, scenario in config.tuned.get(method, ())


def with_set_params(config: ExperimentConfig, sets: dict[str, dict]) -> ExperimentConfig:
    """The command-line layer: `--set METHOD.FIELD=VALUE` beats both file layers.

    A value set here replaces that field in every scenario table of the method; a tuned table
    that loses a field is no longer marked tuned (its numbers no longer come from the search).
    """
    method_params = {m: dict(v) for m, v in config.method_params.items()}
    scenario_params = {m: {s: dict(t) for s, t in tables.items()} for m, tables in config.scenario_params.items()}
    tuned = {m: list(v) for m, v in config.tuned.items()}
    for method, values in sets.items():
        method_params[method] = {**method_params.get(method, {}), **values}
        for spec, table in scenario_params.get(method, {}).items():
            if set(values) & set(table):
                for name in values:
                    table.pop(name, None)
                if spec in tuned.get(method, ()):
                    tuned[method].remove(spec)
        if method in scenario_params:
            scenario_params[method] = {s: t for s, t in scenario_params[method].items() if t}
    return dataclasses.replace(config, method_params=method_params, scenario_params=scenario_params,
                               tuned={m: tuple(v) for m, v in tuned.items() if v})


SET_TABLES = ("recipe", "bank")  # `--set OWNER.FIELD=VALUE` owners that are config tables, not methods


def with_set_options(config: ExperimentConfig, sets: dict[str, dict]) -> ExperimentConfig:
    """Every `--set`: `recipe.FIELD` into [recipe], `bank.FIELD` into [bank], the rest into the
    methods' tables (`with_set_params`). Values stay strings; their owners convert them."""
    rest = {owner: values for owner, values in sets.items() if owner not in SET_TABLES}
    config = with_set_params(config, rest) if rest else config
    return dataclasses.replace(config, recipe={**config.recipe, **sets.get("recipe", {})},
                               bank={**config.bank, **sets.get("bank", {})})


def load_config(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path}: invalid TOML ({err})") from None
    return config_from_dict(doc, source=str(path))


def parse_set_options(items: list[str], source: str = "--set") -> dict[str, dict[str, str]]:
    """`--set salun.lr=0.02` → {"salun": {"lr": "0.02"}}; `recipe.epochs=5` goes to "recipe"."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"{source} {item!r}: expected METHOD.FIELD=VALUE (e.g. salun.lr=0.02)")
        lhs, value = item.split("=", 1)
        owner, name = lhs.strip().split(".", 1)
        out.setdefault(owner, {})[name.strip()] = value.strip()
    return out


def with_overrides(config: ExperimentConfig, **changes) -> ExperimentConfig:
    """Flags override the file: only values that were given (not None) replace the config's."""
    given = {k: v for k, v in changes.items() if v is not None}
    execution = {k[len("execution_"):]: given.pop(k) for k in list(given) if k.startswith("execution_")}
    if execution:
        given["execution"] = dataclasses.replace(config.execution, **execution)
    return dataclasses.replace(config, **given)


# -- writing a config back (what `mubench tune` hands to `mubench run --config`) --------------
_EXPERIMENT_ORDER = ("datasets", "models", "scenarios", "seeds", "methods", "out", "data_root",
                     "download", "train_subset", "precision", "plugins")


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
    return [f"[{name}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items()] + [""]


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
    if config.tuned:
        out += _toml_table("tuned", {m: list(v) for m, v in config.tuned.items()})
    if config.bank:
        out += _toml_table("bank", config.bank)
    out += _toml_table("evaluation", dataclasses.asdict(config.evaluation))
    execution = dataclasses.asdict(config.execution)
    slurm = execution.pop("slurm")
    out += _toml_table("execution", execution)
    if slurm:
        out += _toml_table("execution.slurm", slurm)
    if config.tune != TuneConfig():
        out += _toml_table("tune", {"seeds": list(config.tune.seeds)})
        for method, fields in config.tune.grid.items():
            out += _toml_table(f"tune.grid.{_toml_key(method)}", fields)
    return "\n".join(out)
