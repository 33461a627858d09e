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
"""

from __future__ import annotations

import dataclasses
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
    method_params: dict = field(default_factory=dict)  # method → {field: value}
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    source: str = "defaults"  # where the config came from (for error messages)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_EXPERIMENT_KEYS = {f.name for f in dataclasses.fields(ExperimentConfig)} - {
    "recipe", "method_params", "evaluation", "execution", "source"}
_TOP_KEYS = {"experiment", "recipe", "methods", "evaluation", "execution"}


def _as_tuple(value, key: str, source: str, item_type=str) -> tuple:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{source}: {key!r} must be a list; got {value!r}")
    try:
        return tuple(item_type(v) for v in value)
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
    methods = doc.get("methods", {})
    if not isinstance(methods, dict) or any(not isinstance(v, dict) for v in methods.values()):
        raise ConfigError(f"{source}: [methods.NAME] tables must map hyper-parameter names to values")
    return ExperimentConfig(
        **kwargs,
        recipe=dict(doc.get("recipe", {})),
        method_params={k: dict(v) for k, v in methods.items()},
        evaluation=_sub_config(EvaluationConfig, doc.get("evaluation", {}), source, "evaluation"),
        execution=_sub_config(ExecutionConfig, doc.get("execution", {}), source, "execution"),
        source=source,
    )


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
