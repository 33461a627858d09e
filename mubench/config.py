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
    validation = 0.0                  # >0: this fraction of the training set replaces the test set (tuning)
    tuned     = "auto"                # tuned settings: auto (shipped mubench/tuned/*.toml) | none | PATH
    precision = "auto"                # auto | fp32 | bf16
    plugins   = []

    [recipe]                          # overrides of the original model's recipe (all datasets)
    epochs = 30

    [methods.salun]                   # hyper-parameter overrides, validated against Params
    lr = 0.02
    [methods.salun."class:0"]         # ... for one scenario only (beats [methods.salun])
    lr = 0.05

    [tune]                            # read by `mubench tune` only (docs/tuning.md)
    seeds = [100, 101, 102]           # tuning seeds, disjoint from the reporting seeds
    budget = 8                        # candidates per method and scenario kind, drawn from Params.SEARCH
    [tune.grid.salun]                 # optional: explicit candidates instead of the drawn ones
    lr = [0.02, 0.05, 0.1]

    [bank]                            # the forget-vector bank's own settings (its plugin checks them)
    epochs = 60

    [evaluation]
    controls = true                   # bypass / random-δ / KL extras
    mia_legacy_first_n = false
    attacks = ["svc", "refmia"]       # default: the dataset preset's (digits: svc + refmia, else svc);
                                      # or one table per attack (mubench/attacks/, docs/metrics.md):
    # [evaluation.attacks.refmia]     # the reference-model screen
    # models = 4                      # K' models trained on D_r
    # [evaluation.attacks.ulira]      # U-LiRA
    # shadows = 16                    # K, even; shadows per cell
    # variance = "tied"               # tied | per_side

    [execution]
    backend   = "loky"                # loky | dask | sequential
    jobs      = 0                     # 0 → one per GPU, else one per CPU core
    scheduler = ""                    # dask: tcp://host:8786
    device    = "auto"
    [execution.slurm]                 # dask_jobqueue.SLURMCluster(**this) when present
    cores = 4

Method hyper-parameters resolve in six layers, each beating the one before: Params defaults <
the method's sizing preset (`Method.presets`: batch sizes, epoch caps; never a searched field) <
tuned settings (mubench/tuned.py: the file's table for the method and scenario kind) <
[methods.NAME] < [methods.NAME."SCENARIO"] < --set (`method_overrides` merges the two file
layers; `with_set_params` applies --set).

Scenario lists given as one string split only before a scenario kind (`split_scenarios`), so
`class:0,classes:1,2,subset:1,2:50` is three scenarios. The TOML form, both ways, is
mubench/config_toml.py: `load_config` / `config_from_dict` read a file and check each value's
type, `config_to_toml` writes a config back; `mubench.validate.validate_config` checks meaning
(known names, ranges, devices).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from .device import PRECISIONS
from .errors import ConfigError
from .params import Interval, Options, param

BACKENDS = ("loky", "dask", "sequential")


@dataclass(frozen=True)
class ExecutionConfig:
    backend: str = param("loky", Options(BACKENDS), "loky (local processes), dask (a cluster), sequential (this process)")
    jobs: int = param(0, Interval(0, None), "parallel workers; 0 → one per GPU, or cores / threads_per_worker on CPU")
    scheduler: str = param("", None, "dask scheduler address (tcp://host:port)")
    device: str = param("auto", None, "auto | cpu | cuda | cuda:N (validate.check_device)")
    # Fixed, never derived from how many jobs are ready: CPU results depend on the thread count
    # (docs/reproducibility.md), so it is part of every CPU job's key (device.compute_signature).
    threads_per_worker: int = param(1, Interval(1, None),
                                    "torch threads of every CPU job (part of its key: results depend on it)")
    slurm: dict = param(help="dask_jobqueue.SLURMCluster keyword arguments", factory=dict)


# Flat [evaluation] fields of attack settings that became attack tables (mubench/attacks/).
MOVED_EVALUATION_FIELDS = {"ulira_shadows": "attacks.ulira.shadows", "ulira_variance": "attacks.ulira.variance",
                           "reference_models": "attacks.refmia.models"}


def attack_tables(value, where: str = "[evaluation] attacks") -> dict[str, dict]:
    """`["svc", "ulira"]`, `"svc,ulira"` or `{"ulira": {"shadows": 16}}` → {name: its table}.
    Names and values are checked once plugins are loaded (`attacks.configure`)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected attack names; got {value!r}")
        return {v: {} for v in value}
    if isinstance(value, dict) and all(isinstance(t, dict) for t in value.values()):
        return {name: dict(table) for name, table in value.items()}
    raise ConfigError(f"{where}: expected a list of attack names or [evaluation.attacks.NAME] tables; got {value!r}")


@dataclass(frozen=True)
class EvaluationConfig:
    controls: bool = param(True, None, "bypass / random-δ noise / KL-to-Retrain extras")
    extra_mia: bool = param(False, None, "entropy / m-entropy / correctness MIA variants")
    mia_legacy_first_n: bool = param(False, None, "OPTML's first-n shadow sets instead of seeded random ones")
    # The attacks that run, each with its instance table ([evaluation.attacks.ulira] shadows = 16;
    # `attacks = ["svc", "refmia"]` for default tables). The SVC (SPEC §5) always runs.
    attacks: dict = param(help="attack name → its table (mubench/attacks/)", factory=dict)
    # Also run the dataset preset's attacks (presets.Preset.attacks: the screen on digits);
    # None: yes unless `attacks` lists some
    preset_attacks: bool | None = param(None, None, "also run the dataset preset's attacks (default: unless attacks are listed)")

    def __post_init__(self):
        object.__setattr__(self, "attacks", attack_tables(self.attacks))

    def attack_tables(self, dataset: str) -> dict[str, dict]:
        """{name: table} of the attacks run on `dataset`: the preset's (when on), then the listed ones."""
        from .presets import preset_for

        on = self.preset_attacks if self.preset_attacks is not None else not self.attacks
        preset = {name: {} for name in preset_for(dataset).attacks} if on else {}
        return {**preset, **self.attacks}


TUNING_SEEDS = (100, 101, 102)  # disjoint from the reporting seeds 0, 1, 2 (docs/tuning.md)
PROTOCOLS = ("heldout", "test")  # selection on a validation split held out of train | on the test set
CRITERIA = ("mean+std", "mean")  # of the Avg. Gap over the tuning seeds


@dataclass(frozen=True)
class TuneConfig:
    seeds: tuple[int, ...] = param(TUNING_SEEDS, None, "seeds the search runs on (not the reporting seeds)")
    scenarios: tuple[str, ...] = param((), None, "forget sets the search runs on, disjoint from the reported ones; "
                                       "empty → drawn from the classes no reported scenario forgets (tuning.tuning_scenarios)")
    grid: dict = param(help="method → {field: [candidate values]} (replaces the draw)", factory=dict)
    budget: int = param(8, Interval(1, None), "candidates per (method, scenario kind), drawn from Params.SEARCH")
    protocol: str = param("heldout", Options(PROTOCOLS), "heldout (SPEC §3) | test (the references' protocol, labelled so)")
    validation: float = param(0.1, Interval(0, 1, "neither"), "fraction of the training set held out as the tuning cells' test split")
    criterion: str = param("mean+std", Options(CRITERIA), "how a candidate's Avg. Gaps over the tuning seeds are scored")


@dataclass(frozen=True)
class ExperimentConfig:
    datasets: tuple[str, ...] = param(("digits",), None, "dataset names")
    models: tuple[str, ...] = param((), None, "model names; empty → each dataset's preset model")
    scenarios: tuple[str, ...] = param(("class:0", "random:10"), None, "forget scenarios")
    seeds: tuple[int, ...] = param((0, 1, 2), None, "reporting seeds")
    methods: tuple[str, ...] = param(("all",), None, "method names or fnmatch patterns")
    calibration: tuple[str, ...] = param(("original", "retrain_seed"), None,
                                         "calibration rows every cell gets: the untouched original, an independent Retrain")
    out: str = param("results", None, "results root")
    data_root: str = param("", None, "where datasets live; '' → $MUBENCH_DATA or ~/.cache/mubench/data")
    download: bool = param(False, None, "fetch missing datasets")
    train_subset: int = param(0, Interval(0, None), ">0: a fixed stratified subset of the training set (CPU-sized grids)")
    validation: float = param(0.0, Interval(0, 1, "left"), ">0: a held-out fraction of the training set is the test split (tuning cells)")
    tuned: str = param("auto", None, "tuned settings: auto (shipped file for the dataset and model), none, or a path")
    precision: str = param("auto", Options(PRECISIONS), "training precision: auto | fp32 | bf16")
    plugins: tuple[str, ...] = param((), None, "plugin files to load")
    recipe: dict = param(help="overrides of the preset recipe (and recipe.optim)", factory=dict)
    method_params: dict = param(help="method → {field: value} (all scenarios)", factory=dict)
    scenario_params: dict = param(help="method → {scenario: {field: value}}", factory=dict)
    bank: dict = param(help="[bank]: the forget-vector bank's settings (its plugin validates)", factory=dict)
    tune: TuneConfig = field(default_factory=TuneConfig)  # the search of `mubench tune`
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    source: str = "defaults"  # where the config came from (for error messages)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def split_scenarios(text: str) -> tuple[str, ...]:
    """`class:0,classes:1,2,subset:1,2:50` → its three scenarios: a comma separates scenarios only
    where a kind (a word and a colon, `random:`) follows it; class lists are digits and commas.
    Any word counts, not only the known kinds, so `class:0,foo:1` names 'foo:1' as the bad one."""
    parts = (p.strip(" ,") for p in re.split(r",\s*(?=[A-Za-z][\w-]*:)", text))  # "a,,b" and "a," too
    return tuple(p for p in parts if p)


def method_overrides(config: ExperimentConfig, method: str, scenario: str) -> dict:
    """The file layers of one method in one scenario (canonical text): [methods.NAME] with
    [methods.NAME."SCENARIO"] on top."""
    table = config.scenario_params.get(method, {}).get(scenario, {})
    return {**config.method_params.get(method, {}), **table}


def with_set_params(config: ExperimentConfig, sets: dict[str, dict]) -> ExperimentConfig:
    """The command-line layer: `--set METHOD.FIELD=VALUE` beats both file layers.

    A value set here replaces that field in every scenario table of the method.
    """
    method_params = {m: dict(v) for m, v in config.method_params.items()}
    scenario_params = {m: {s: dict(t) for s, t in tables.items()} for m, tables in config.scenario_params.items()}
    for method, values in sets.items():
        method_params[method] = {**method_params.get(method, {}), **values}
        for _spec, table in scenario_params.get(method, {}).items():
            if set(values) & set(table):
                for name in values:
                    table.pop(name, None)
        if method in scenario_params:
            scenario_params[method] = {s: t for s, t in scenario_params[method].items() if t}
    return dataclasses.replace(config, method_params=method_params, scenario_params=scenario_params)


SET_TABLES = ("recipe", "bank", "evaluation")  # `--set OWNER.FIELD=VALUE` owners that are config tables, not methods


def with_set_options(config: ExperimentConfig, sets: dict[str, dict]) -> ExperimentConfig:
    """Every `--set`: `recipe.FIELD` into [recipe], `bank.FIELD` into [bank], the rest into the
    methods' tables (`with_set_params`). Values stay strings; their owners convert them."""
    rest = {owner: values for owner, values in sets.items() if owner not in SET_TABLES}
    config = with_set_params(config, rest) if rest else config
    return dataclasses.replace(config, recipe={**config.recipe, **sets.get("recipe", {})},
                               bank={**config.bank, **sets.get("bank", {})},
                               evaluation=with_evaluation_sets(config.evaluation, sets.get("evaluation", {})))


def with_evaluation_sets(evaluation: EvaluationConfig, values: dict[str, str]) -> EvaluationConfig:
    """`--set evaluation.controls=false`: strings to the field's type (a bool true/false).
    `--set evaluation.attacks=svc,ulira` names the attacks that run (instead of the preset's);
    `--set evaluation.attacks.ulira.shadows=8` sets one field of an attack's table and turns it on.
    Attack values stay strings: the attack's Params convert them."""
    fields = {f.name for f in dataclasses.fields(EvaluationConfig)}
    out: dict = {}
    attacks = {name: dict(table) for name, table in evaluation.attacks.items()}
    for name, text in values.items():
        if name.startswith("attacks."):
            attack, _, setting = name[len("attacks."):].partition(".")
            if not attack or not setting:
                raise ConfigError(f"--set evaluation.{name}: expected evaluation.attacks.NAME.FIELD=VALUE")
            attacks.setdefault(attack, {})[setting] = text
            if evaluation.preset_attacks is None and not evaluation.attacks:  # the preset's stay on beside it
                out.setdefault("preset_attacks", True)
        elif name == "attacks":
            attacks = {a: attacks.get(a, {}) for a in attack_tables(text, "--set evaluation.attacks")}
            out["preset_attacks"] = False
        elif name in MOVED_EVALUATION_FIELDS:
            raise ConfigError(f"--set evaluation.{name}: this setting moved to its attack's table; "
                              f"use --set evaluation.{MOVED_EVALUATION_FIELDS[name]}={text}")
        elif name not in fields:
            raise ConfigError(f"--set evaluation.{name}: unknown field; valid: {', '.join(sorted(fields))}, "
                              "attacks.NAME.FIELD")
        elif text.lower() not in ("true", "false"):  # every other field is a switch
            raise ConfigError(f"--set evaluation.{name}: expected true or false; got {text!r}")
        else:
            out[name] = text.lower() == "true"
    return dataclasses.replace(evaluation, attacks=attacks, **out)


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
