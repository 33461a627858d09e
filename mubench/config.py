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
                                      # "refmia": reference models, "ulira": shadow models (docs/metrics.md)
    ulira_shadows = 16                # K, even; shadows per cell (U-LiRA only)
    reference_models = 4              # K' models trained on D_r (reference screen only)

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

from .errors import ConfigError

BACKENDS = ("loky", "dask", "sequential")


@dataclass(frozen=True)
class ExecutionConfig:
    backend: str = "loky"  # loky (local processes), dask (a cluster), sequential (this process)
    jobs: int = 0  # parallel workers; 0 → one per GPU, or one per CPU core
    scheduler: str = ""  # dask scheduler address (tcp://host:port)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads_per_worker: int = 0  # torch threads per worker; 0 → cores / workers
    slurm: dict = field(default_factory=dict)  # dask_jobqueue.SLURMCluster keyword arguments


ATTACKS = ("svc", "refmia", "ulira")  # [evaluation] attacks (docs/metrics.md); the SVC always runs
ULIRA_VARIANCES = ("tied", "per_side")  # lira_stats.fit_gaussians: one tied σ, or one per side (MIA.md's text)
# The σ rule of U-LiRA runs made before the option existed: Evaluate keys leave it out (their
# records stay valid) and a record without `ulira_variance` used it.
UNKEYED_ULIRA_VARIANCE = "per_side"


@dataclass(frozen=True)
class EvaluationConfig:
    controls: bool = True  # bypass / random-δ noise / KL-to-Retrain extras
    extra_mia: bool = False  # entropy / m-entropy / correctness MIA variants
    mia_legacy_first_n: bool = False  # OPTML's first-n shadow sets instead of seeded random ones
    # "svc" (SPEC §5, always run), "refmia" (reference-model screen), "ulira" (shadow models);
    # None: the dataset preset's (presets.Preset.attacks: the screen is on for digits)
    attacks: tuple[str, ...] | None = None
    ulira_shadows: int = 16  # K shadows per cell (even); only read when "ulira" is in attacks
    # U-LiRA's pooled σ: "tied" over both sides, or "per_side" as MIA.md writes it; tied is the
    # default because per side misreads a class-wise null (docs/metrics.md, "Which σ")
    ulira_variance: str = "tied"
    reference_models: int = 4  # K' reference models per retain set; only read when "refmia" is in attacks

    def __post_init__(self):
        if self.attacks is not None:
            attacks = (self.attacks,) if isinstance(self.attacks, str) else tuple(self.attacks)
            object.__setattr__(self, "attacks", attacks)
            bad = [a for a in attacks if a not in ATTACKS]
            if bad:
                raise ConfigError(f"[evaluation] attacks: unknown attack {bad[0]!r}; valid: {', '.join(ATTACKS)}")
        k = self.ulira_shadows
        if isinstance(k, bool) or not isinstance(k, int) or k < 2 or k % 2:
            raise ConfigError(f"[evaluation] ulira_shadows must be an even integer >= 2 (8+ for real use); got {k!r}")
        if self.ulira_variance not in ULIRA_VARIANCES:
            raise ConfigError(f"[evaluation] ulira_variance: {self.ulira_variance!r} is not one of "
                              f"{', '.join(ULIRA_VARIANCES)}")
        r = self.reference_models
        if isinstance(r, bool) or not isinstance(r, int) or r < 2:
            raise ConfigError(f"[evaluation] reference_models must be an integer >= 2; got {r!r}")

    def attacks_for(self, dataset: str) -> tuple[str, ...]:
        """The attacks run on `dataset`: the configured ones, else its preset's; SVC first."""
        from .presets import preset_for

        chosen = self.attacks if self.attacks is not None else preset_for(dataset).attacks
        return ("svc", *[a for a in ATTACKS[1:] if a in chosen])


TUNING_SEEDS = (100, 101, 102)  # disjoint from the reporting seeds 0, 1, 2 (docs/tuning.md)
PROTOCOLS = ("heldout", "test")  # selection on a validation split held out of train | on the test set
CRITERIA = ("mean+std", "mean")  # of the Avg. Gap over the tuning seeds


@dataclass(frozen=True)
class TuneConfig:
    seeds: tuple[int, ...] = TUNING_SEEDS  # seeds the search runs on (not the reporting seeds)
    grid: dict = field(default_factory=dict)  # method → {field: [candidate values]} (replaces the draw)
    budget: int = 8  # candidates per (method, scenario kind), drawn from the method's Params.SEARCH
    protocol: str = "heldout"  # heldout (SPEC §3) | test (the references' protocol, labelled so)
    validation: float = 0.1  # fraction of the training set held out as the tuning cells' test split
    criterion: str = "mean+std"  # how a candidate's Avg. Gaps over the tuning seeds are scored


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
    validation: float = 0.0  # >0: a held-out fraction of the training set is the test split (tuning cells)
    tuned: str = "auto"  # tuned settings: "auto" (shipped file for the dataset and model), "none", or a path
    precision: str = "auto"
    plugins: tuple[str, ...] = ()
    recipe: dict = field(default_factory=dict)  # overrides of the preset recipe (and recipe.optim)
    method_params: dict = field(default_factory=dict)  # method → {field: value} (all scenarios)
    scenario_params: dict = field(default_factory=dict)  # method → {scenario: {field: value}}
    bank: dict = field(default_factory=dict)  # [bank]: the forget-vector bank's settings (its plugin validates)
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
    """`--set evaluation.attacks=svc,ulira`, `--set evaluation.ulira_shadows=8`: strings to the
    field's type (a tuple is comma-separated, a bool true/false, a string as given, an int digits)."""
    fields = {f.name: f for f in dataclasses.fields(EvaluationConfig)}
    out = {}
    for name, text in values.items():
        if name not in fields:
            raise ConfigError(f"--set evaluation.{name}: unknown field; valid: {', '.join(fields)}")
        default = fields[name].default
        if name == "attacks":
            out[name] = tuple(v.strip() for v in text.split(",") if v.strip())
        elif isinstance(default, bool):
            if text.lower() not in ("true", "false"):
                raise ConfigError(f"--set evaluation.{name}: expected true or false; got {text!r}")
            out[name] = text.lower() == "true"
        elif isinstance(default, str):
            out[name] = text
        else:
            try:
                out[name] = int(text)
            except ValueError:
                raise ConfigError(f"--set evaluation.{name}: expected an integer; got {text!r}") from None
    return dataclasses.replace(evaluation, **out)


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
