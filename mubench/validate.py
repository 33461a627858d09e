"""Validate a whole experiment config before any job starts: one ConfigError, one sentence.

`validate_config` is called once by the planner (and by `mubench run` before it touches the
results folder), so a typo in a method name, a seed, a recipe field, a scenario or a device is
one line naming the bad value and what is accepted, not one failed job (or traceback) per cell.
What a value *means* is checked here; config.py only checks that TOML values have the right type.

Each check is also a function of its own (`check_seeds`, `check_device`, …) for commands that
take single values (`mubench train`). The [bank] table is not checked here: the plugin that owns
the forget-vector bank validates its own settings.
"""

from __future__ import annotations

import dataclasses

from .config import ExecutionConfig, ExperimentConfig
from .errors import ConfigError
from .params import apply_overrides, check_params, unknown_field

SEED_LIMIT = 2**32  # numpy's legacy RandomState and scikit-learn's random_state stop here


def validate_config(config: ExperimentConfig) -> None:
    """Raise ConfigError (or another MubenchError) for the first invalid value of `config`."""
    from .plugins import load_plugins

    load_plugins(config.plugins, strict_plugins=True)
    check_methods(config)
    check_seeds(config.seeds, _label(config, "--seeds", "seeds"))
    check_params(config, lambda name: _label(config, EXPERIMENT_FLAGS.get(name, f"[experiment] {name}"), name))
    check_tune(config)
    check_recipe(config.recipe, _label(config, "--set recipe", "[recipe]"))
    check_execution(config.execution, config)
    from .tuned import check_tuned_option

    try:
        check_tuned_option(config.tuned)
    except ConfigError as err:
        raise ConfigError(f"{_label(config, '--tuned', 'tuned')}: {err}") from None
    check_datasets(config.datasets, _label(config, "--datasets", "datasets"))
    check_attacks(config)
    check_models(config.models, _label(config, "--models", "models"))
    scenarios = check_scenarios(config.scenarios, _label(config, "--scenarios", "scenarios"))
    check_scenarios_fit(config, scenarios)


# The command-line flag of each [experiment] / [execution] / [tune] field that has one.
EXPERIMENT_FLAGS = {"datasets": "--datasets", "models": "--models", "scenarios": "--scenarios", "seeds": "--seeds",
                    "methods": "--methods", "out": "--out", "data_root": "--data-root", "train_subset": "--train-subset",
                    "tuned": "--tuned", "precision": "--precision", "plugins": "--plugin", "download": "--download"}
EXECUTION_FLAGS = {"backend": "--backend", "jobs": "--jobs", "scheduler": "--scheduler", "device": "--device",
                   "threads_per_worker": "--threads"}
TUNE_FLAGS = {"budget": "--budget", "protocol": "--protocol", "criterion": "--criterion", "validation": "--validation",
              "seeds": "--seeds", "scenarios": "--tune-scenarios"}


def _label(config: ExperimentConfig, flag: str, key: str) -> str:
    """Where a value came from, as the user wrote it: the flag, or the flag and the file's key."""
    if config.source == "defaults":
        return flag
    table = key if key.startswith("[") else f"[experiment] {key}"
    return f"{flag} / {config.source} {table}"


# -- methods ------------------------------------------------------------------------------------
def check_methods(config: ExperimentConfig) -> list[str]:
    """The selected methods exist, and every table of method values names a method and its fields."""
    from .unlearning import METHODS, calibration_methods

    if not config.methods:
        raise ConfigError(f"{_label(config, '--methods', 'methods')}: no methods selected; give names or "
                          "patterns, or 'all' (python -m mubench list methods)")
    methods = METHODS.select(config.methods)  # unknown names: a close-match suggestion
    for m in config.calibration:
        if m not in calibration_methods():  # an unknown name too: the message names the field
            where = "" if config.source == "defaults" else f"{config.source} "
            raise ConfigError(f"{where}[experiment] calibration: {m!r} is not a "
                              f"calibration row; choose from {', '.join(calibration_methods())}")
    for m in sorted(set(config.method_params) | set(config.scenario_params)):
        METHODS.get(m)  # an override for a method that does not exist is a typo, not a no-op
        owner = f"method {m!r}" + ("" if config.source == "defaults" else f" (--set / {config.source} [methods.{m}])")
        apply_overrides(METHODS.get(m).Params(), config.method_params.get(m, {}), owner)
        for spec, table in config.scenario_params.get(m, {}).items():
            apply_overrides(METHODS.get(m).Params(), {**config.method_params.get(m, {}), **table},
                            f'method {m!r} ({config.source} [methods.{m}."{spec}"])')
    return methods


def check_attacks(config: ExperimentConfig) -> None:
    """Every attack table names a registered attack (plugins included) and validates."""
    from .attacks import configure

    for dataset in config.datasets:
        configure(config.evaluation.attack_tables(dataset), config.source)


def check_tune(config: ExperimentConfig) -> None:
    """[tune]: its seeds, and a grid whose methods and fields exist (each candidate is converted
    and range-checked by `tuning.check_grid` when `mubench tune` runs)."""
    from .unlearning import METHODS

    check_seeds(config.tune.seeds, f"{config.source} [tune] seeds")
    if config.tune.scenarios:
        check_scenarios(config.tune.scenarios, _label(config, "--tune-scenarios", "[tune] scenarios"))
    check_params(config.tune, lambda name: _label(config, TUNE_FLAGS.get(name, f"[tune] {name}"), f"[tune] {name}"))
    for method, fields in config.tune.grid.items():
        valid = sorted(f.name for f in dataclasses.fields(METHODS.get(method).Params))
        for name in fields:
            if name not in valid:
                raise unknown_field(f"{config.source} [tune.grid.{method}]", name, valid)


# -- seeds ---------------------------------------------------------------------------------------
def check_seeds(seeds, label: str = "--seeds") -> None:
    if not seeds:
        raise ConfigError(f"{label}: no seeds given; give at least one, e.g. 0,1,2")
    seen = set()
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
            raise ConfigError(f"{label}: seed {seed!r} is not an integer in [0, 2**32)")
        if seed in seen:
            raise ConfigError(f"{label}: seed {seed} is given twice; each seed is one run, give it once")
        seen.add(seed)


# -- recipe --------------------------------------------------------------------------------------
def check_recipe(recipe: dict, label: str = "[recipe]") -> None:
    """[recipe] / --set recipe.FIELD: known fields of Recipe or OptimSpec, converted and in range
    (their declared constraints)."""
    from .training import Recipe, recipe_with

    recipe_with(Recipe(), recipe, label)


# -- execution -----------------------------------------------------------------------------------
def check_execution(execution: ExecutionConfig, config: ExperimentConfig | None = None) -> None:
    def label(flag: str, key: str) -> str:
        return _label(config, flag, f"[execution] {key}") if config else flag

    check_params(execution, lambda key: label(EXECUTION_FLAGS.get(key, key), key))
    # A Dask cluster's workers have their own devices; this machine's say nothing about them.
    check_device(execution.device, label("--device", "device"), present=execution.backend != "dask")


def check_device(device: str, label: str = "--device", present: bool = True) -> None:
    """auto, cpu, cuda, cuda:N or mps; with `present`, one that this machine actually has."""
    import torch

    text = str(device).strip()
    if text == "auto":
        return
    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{label}: {text!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{label}: {text!r} is not supported; use auto, cpu, cuda or cuda:N")
    if not present or dev.type == "cpu":
        return
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{label}: {text!r} is not present on this machine (no MPS); use auto or cpu")
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigError(f"{label}: {text!r} is not present: this machine has no CUDA GPU "
                          f"(torch {torch.__version__}, CUDA {torch.version.cuda}); use auto or cpu")
    if dev.index is not None and dev.index >= count:
        raise ConfigError(f"{label}: {text!r} is not present: this machine has {count} CUDA device(s), "
                          f"cuda:0 to cuda:{count - 1}; use one of them, cuda or auto")


# -- datasets, models, scenarios -----------------------------------------------------------------
def check_datasets(datasets, label: str = "--datasets") -> None:
    from .data import DATASETS

    if not datasets:
        raise ConfigError(f"{label}: no datasets given (python -m mubench list datasets)")
    for name in datasets:
        if name.startswith("imagefolder:"):
            if not name.split(":", 1)[1].strip():
                raise ConfigError(f"{label}: {name!r} names no folder; use imagefolder:PATH")
            continue
        DATASETS.get(name)  # unknown: a close-match suggestion


def check_models(models, label: str = "--models") -> None:
    from .models import MODELS

    for name in models:
        if not (name.startswith("vit_") and name not in MODELS):  # vit_* go to timm
            MODELS.get(name)


def check_scenarios(scenarios, label: str = "--scenarios") -> list:
    """Every scenario or family entry parses (class lists may hold commas: split with
    config.split_scenarios); returns the parsed entries (scenarios.Scenario or Family)."""
    from .scenarios import parse_entry

    if not scenarios:
        raise ConfigError(f"{label}: no scenarios given; e.g. class:0,random:10 (python -m mubench list scenarios)")
    parsed = []
    for text in scenarios:
        try:
            parsed.append(parse_entry(text))
        except ConfigError as err:
            raise ConfigError(f"{label}: {err}") from None
    return parsed


def check_scenarios_fit(config: ExperimentConfig, scenarios) -> None:
    """Scenarios that name classes, and class samples, fit every dataset's class count (loads the
    data if need be)."""
    from .scenarios import Family, parse_entry

    named = [sc for sc in scenarios if (sc.sample is not None if isinstance(sc, Family) else sc.classes)]
    if not named:
        return
    for dataset in config.datasets:
        classes = num_classes(dataset, config)
        for sc in named:
            try:
                parse_entry(sc, classes)
            except ConfigError as err:
                raise ConfigError(f"{_label(config, '--scenarios', 'scenarios')}: {err} on dataset "
                                  f"{dataset!r} ({classes} classes)") from None


def num_classes(dataset: str, config: ExperimentConfig) -> int:
    """From the registry entry's `num_classes` when it declares one, else from the loaded data
    (cached: the planner's own load that follows is then free)."""
    from .data import DATASETS, LoadOptions
    from .pipeline import cached_dataset

    if dataset in DATASETS and "num_classes" in DATASETS.entry(dataset).meta:
        return int(DATASETS.entry(dataset).meta["num_classes"])
    options = LoadOptions(data_root=config.data_root or None, download=config.download,
                          train_subset=config.train_subset)
    return cached_dataset(dataset, options).num_classes
