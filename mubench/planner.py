"""Expand a config into the graph of typed jobs (jobs.py, method_jobs.py), in dependency order.

Per (dataset, model, seed): one `Original`, and one `Resource` per resource a selected method
requires (settings from the resource's own config table). Scenario families (`class:all`,
`class:sample:K`, `random:1+10+50`) are expanded into their member scenarios with the dataset's
class count; a member's Evaluates name the family (`Plan.families` lists the members). Per scenario of that seed: one
`Split`, Retrain's `Unlearn` and `Evaluate`, and an `Unlearn` + `Evaluate` per other method,
whose Evaluate reads Retrain's as its reference. A method's values come from the tuned settings
that match (dataset, subset, model) beneath the user's (mubench/tuned.py). The whole config is validated before any job
runs. Jobs shared by several configs (paper passes, tuning candidates) merge by key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from .attacks import Attack, CellJobs, configure
from .config import ExperimentConfig, method_overrides
from .data import LoadOptions
from .device import compute_signature, resolve_device
from .errors import ConfigError
from .jobs import Job, Original, Resource, Split
from .method_jobs import Evaluate, Unlearn
from .params import apply_overrides, keyed_params
from .pipeline import architecture_key, cached_dataset, data_key
from .presets import preset_for, run_precision
from .scenarios import expand_scenarios, parse_scenario
from .sequential import chain_step
from .store import Store
from .training import Recipe, recipe_with
from .tuned import TunedSettings, tuned_for, tuned_layer

# The order --dry-run lists job types in; an attack's own job types follow the core type they extend.
JOB_TYPES = (Original, Split, Resource, Unlearn, Evaluate)


@dataclass
class Plan:
    jobs: list[Job]  # every job once, dependencies before dependants
    cached: set[str]  # keys whose results already exist
    # dataset → family entry (canonical text) → its member scenarios, in order (scenarios.Family)
    families: dict[str, dict[str, tuple[str, ...]]] = dataclasses.field(default_factory=dict)

    def pending(self) -> list[Job]:
        return [j for j in self.jobs if j.key not in self.cached]

    def evaluations(self) -> list[Evaluate]:
        """The Evaluate jobs: one record per (cell, method, seed), the rows of every table."""
        return [j for j in self.jobs if isinstance(j, Evaluate)]

    def levels(self) -> list[list[Job]]:
        """Jobs grouped by dependency depth: every job's dependencies lie in earlier levels."""
        depth: dict[str, int] = {}
        for job in self.jobs:  # dependencies come first
            depth[job.key] = 1 + max((depth[d.key] for d in job.deps()), default=-1)
        levels: list[list[Job]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
        for job in self.jobs:
            levels[depth[job.key]].append(job)
        return levels


def merge_plans(plans: Iterable[Plan]) -> Plan:
    """One plan from several (paper passes, tuning candidates): a shared job appears once."""
    jobs: dict[str, Job] = {}
    cached: set[str] = set()
    families: dict[str, dict[str, tuple[str, ...]]] = {}
    for plan in plans:
        cached |= plan.cached
        for dataset, table in plan.families.items():
            families.setdefault(dataset, {}).update(table)
        for job in plan.jobs:
            jobs.setdefault(job.key, job)
    return Plan(list(jobs.values()), cached, families)


def recipe_for(dataset: str, overrides: dict) -> Recipe:
    """The dataset preset's recipe with the config's [recipe] overrides (optim fields included)."""
    return recipe_with(preset_for(dataset).recipe, overrides)


def resolve_params(method: str, dataset: str, scenario_kind: str, user: dict, tuned_values: dict | None = None):
    """Params() defaults < the method's sizing preset (per scenario kind) < tuned settings (the
    file's table for this method and kind, mubench/tuned.py) < the user's overrides
    ([methods.NAME] < [methods.NAME."SCENARIO"] < --set, merged by `method_overrides`)."""
    from .unlearning import METHODS

    cls = METHODS.get(method)
    owner = f"method {method!r}"
    params = apply_overrides(cls.Params(), cls.dataset_defaults(dataset, scenario_kind), f"{owner} preset for {dataset}")
    if tuned_values:
        params = apply_overrides(params, tuned_values, f"{owner} tuned settings")
    return apply_overrides(params, user, owner)


def original_job(dataset: str, options: LoadOptions, model: str, recipe_overrides: dict, precision: str,
                 seed: int, device, threads: int) -> Original:
    """The Original job of (dataset, model, recipe, seed): `run` and `train` both build it here.

    The run's precision trains the originals (and Retrain) too unless [recipe] sets its own;
    it is resolved now, so 'auto' and what it means on this device share one cached original.
    `threads` is the CPU jobs' torch thread count, keyed with the device class (`compute`)."""
    data = cached_dataset(dataset, options)
    recipe = recipe_for(dataset, {"precision": precision, **recipe_overrides})
    recipe = dataclasses.replace(recipe, precision=run_precision(recipe.precision, dataset, device))
    from .pipeline import spec_for

    return Original(dataset=dataset, data=data_key(data), model=model, arch=architecture_key(model, spec_for(data)),
                    recipe=dataclasses.asdict(recipe), seed=seed, compute=compute_signature(device, threads),
                    data_options=dataclasses.asdict(options))


def _resource_jobs(config: ExperimentConfig, methods: list[str], original: Original, device,
                   precision: str) -> dict[str, Resource]:
    from .resources import RESOURCES
    from .unlearning import METHODS

    out = {}
    for name in dict.fromkeys(r for m in methods for r in getattr(METHODS.get(m), "requires", ())):
        resource = RESOURCES.get(name)
        overrides = getattr(config, resource.section, None) or {}
        settings = resource.settings(original.dataset, overrides, device, precision)
        out[name] = Resource(name=name, settings=settings, resource_version=resource.version, original=original)
    return out


def _cell_jobs(config: ExperimentConfig, methods: list[str], original: Original, split: Split, kind: str,
               resources: dict[str, Resource], precision: str, evaluation: dict, attacks: list[Attack],
               tuned: TunedSettings | None, device=None, family: str = "") -> list[Job]:
    """Retrain's Unlearn and Evaluate, then per other method its Unlearn and an Evaluate that
    carries each attack with the models it asked for (their dependencies are planned with them)."""
    from .unlearning import METHODS

    def unlearn(method: str, user: dict, method_precision: str, tuned_values: dict | None = None,
                on: Original = original, cut: Split = split) -> Unlearn:
        cls = METHODS.get(method)
        params = resolve_params(method, original.dataset, kind, user, tuned_values)
        res = resources if on is original else _resource_jobs(config, methods, on, device, precision)
        return Unlearn(method=method, method_version=cls.version, params=keyed_params(params),
                       precision=method_precision, original=on, split=cut,
                       resources=tuple(res[r] for r in getattr(cls, "requires", ())), user_params=user)

    ruser = method_overrides(config, "retrain", split.scenario)
    retrain = unlearn("retrain", ruser, original.recipe["precision"])  # Retrain trains with the recipe
    reference = Evaluate(unlearn=retrain, reference=None, settings=evaluation, family=family)
    jobs: list[Job] = [retrain, reference]
    for method in [*methods, *config.calibration]:
        if method == "retrain":
            continue
        user = method_overrides(config, method, split.scenario)
        if METHODS.get(method).settings_from:  # e.g. the independent Retrain runs with Retrain's settings
            user = {**method_overrides(config, METHODS.get(method).settings_from, split.scenario), **user}
        values, stamp = tuned_layer(tuned, method, kind, user)
        cell = CellJobs(original, split, kind, method,
                        rerun=lambda o, s, m=method, u=user, v=values: unlearn(m, u, precision, v, o, s))
        job = unlearn(method, user, precision, values)
        jobs += [job, Evaluate(unlearn=job, reference=reference, settings=evaluation, tuned=stamp,
                               attacks=tuple(attack.run(cell) for attack in attacks), family=family)]
    return jobs


def build_plan(config: ExperimentConfig, store: Store) -> Plan:
    """Validate the whole config (before any job starts) and expand it into typed jobs."""
    from .plugins import load_plugins
    from .unlearning import selectable_methods

    load_plugins(config.plugins, strict_plugins=True)
    _validate(config)
    methods = selectable_methods(config.methods)
    device = resolve_device(config.execution.device)
    options = LoadOptions(data_root=config.data_root or None, download=config.download,
                          train_subset=config.train_subset, validation=config.validation)
    jobs: dict[str, Job] = {}
    families: dict[str, dict[str, tuple[str, ...]]] = {}

    def add(job: Job) -> None:  # with its dependencies first, once each
        if job.key not in jobs:
            for dep in job.deps():
                add(dep)
            jobs[job.key] = job

    for dataset in config.datasets:
        data = cached_dataset(dataset, options)
        precision = run_precision(config.precision, dataset, device)
        scenarios = expand_scenarios(config.scenarios, data.num_classes)
        for sc in scenarios:
            if sc.family:
                members = families.setdefault(dataset, {}).setdefault(sc.family, ())
                families[dataset][sc.family] = (*members, sc.spec)
        attacks = configure(config.evaluation.attack_tables(dataset), config.source)
        evaluation = evaluation_settings(config, dataset, attacks)
        for model in config.models or (preset_for(dataset).model,):
            tuned = tuned_for(config.tuned, dataset, config.train_subset, model)
            for seed in config.seeds:
                original = original_job(dataset, options, model, config.recipe, config.precision, seed, device,
                                        config.execution.threads_per_worker)
                add(original)
                resources = _resource_jobs(config, methods, original, device, precision)
                for res in resources.values():
                    add(res)
                for sc in scenarios:
                    chain: dict = {}  # a sequential chain's method → its previous step's jobs
                    for step in sc.steps():  # a plain scenario is one step
                        split = Split(dataset=dataset, data=original.data, scenario=step.spec, seed=seed,
                                      data_options=original.data_options,
                                      scorer=original if step.hardness else None)
                        add(split)
                        cell = _cell_jobs(config, methods, original, split, step.request.kind, resources, precision,
                                          evaluation, attacks, tuned, device, sc.family)
                        for job in chain_step(cell, chain) if sc.kind == "sequential" else cell:
                            add(job)
    return Plan(list(jobs.values()), {k for k, j in jobs.items() if j.done(store)}, families)


def evaluation_settings(config: ExperimentConfig, dataset: str, attacks: list[Attack] | None = None) -> dict:
    """What an Evaluate key holds of the run on `dataset`: the [evaluation] switches, the names
    of the metrics every evaluation computes (a metric registered later re-runs evaluation
    only), and, unless only the SVC runs, the attacks' names and each instance's `keyed()` (its
    settings and bumped code version). So an attack that is off adds nothing, and the SVC alone
    gives the keys runs had before attacks existed."""
    from .metrics import METRICS

    if attacks is None:
        attacks = configure(config.evaluation.attack_tables(dataset), config.source)
    settings = {k: v for k, v in dataclasses.asdict(config.evaluation).items() if k not in ("attacks", "preset_attacks")}
    settings["metrics"] = [e.name for e in METRICS.entries() if e.meta.get("default")]
    names = tuple(a.name for a in attacks)
    if any(not a.always for a in attacks):
        settings["attacks"] = names
    for attack in attacks:
        settings.update(attack.keyed())
    return settings


def _validate(config: ExperimentConfig) -> None:
    """What the planner checks itself: method tables name registered methods and validate."""
    from .models import MODELS
    from .unlearning import METHODS
    from .validate import validate_config

    validate_config(config)
    if not config.seeds:
        raise ConfigError(f"{config.source}: no seeds given")
    unknown = (set(config.method_params) | set(config.scenario_params)) - set(METHODS.names())
    if unknown:
        METHODS.get(sorted(unknown)[0])  # raises with a suggestion
    for m, tables in config.scenario_params.items():  # every table, even of scenarios not run now
        for spec, table in tables.items():
            apply_overrides(METHODS.get(m).Params(), {**config.method_params.get(m, {}), **table},
                            f'{config.source} [methods.{m}."{spec}"]')
    for model in config.models:
        if not model.startswith("vit_"):
            MODELS.get(model)


def _type_order(job_type: type) -> int:
    """Where a job type is listed: at the first core type it extends (a shadow original with originals)."""
    return next((i for i, core in enumerate(JOB_TYPES) if issubclass(job_type, core)), len(JOB_TYPES))


def describe_plan(plan: Plan) -> Iterable[str]:
    """Lines for --dry-run: jobs per type, how many are cached, and what will run."""
    total = 0
    types = sorted(dict.fromkeys(type(j) for j in plan.jobs), key=_type_order)  # stable: first seen first
    for job_type in types:
        jobs = [j for j in plan.jobs if type(j) is job_type]
        pending = [j for j in jobs if j.key not in plan.cached]
        total += len(pending)
        yield f"{job_type.__name__}: {len(jobs)} jobs, {len(jobs) - len(pending)} cached, {len(pending)} to run"
        for job in pending:
            yield f"    {job.label}  [{job.key}]"
    yield f"total: {total} jobs to run"
    for dataset, table in plan.families.items():
        for family, members in table.items():
            yield f"family {family} on {dataset}: {len(members)} forget sets: {', '.join(members)}"
    yield from describe_settings(plan)


def describe_settings(plan: Plan) -> Iterable[str]:
    """Lines for --dry-run: each method's hyper-parameters as it will run them, once per dataset,
    model and scenario (seeds share them), so a config's resolved settings can be read before it
    trains anything. Shadow and reference runs use the same settings and are not repeated."""
    from .unlearning import METHODS

    lines: dict[str, dict] = {}
    for job in plan.jobs:
        if type(job) is Resource and type(job.original) is Original:
            lines.setdefault(f"{job.name} {job.original.dataset}/{job.original.model}", job.settings)
        elif isinstance(job, Unlearn) and type(job.split) is Split and type(job.original) is Original:
            cls, o, scenario = METHODS.get(job.method), job.original, job.split.scenario
            where = f"{job.method} {o.dataset}/{o.model}/{scenario}"
            if where not in lines and job.params:  # a method without settings (the Original row) has no line
                params = cls.resolved(cls.Params(**job.params), parse_scenario(scenario).request.kind)
                lines[where] = dataclasses.asdict(params)
    if lines:
        yield "settings (resolved; every seed of a scenario shares them):"
    for where, values in lines.items():
        flat = {k2: v2 for k, v in values.items() for k2, v2 in (v.items() if isinstance(v, dict) else [(k, v)])}
        yield f"    {where}: " + ", ".join(f"{k}={v}" for k, v in flat.items())
