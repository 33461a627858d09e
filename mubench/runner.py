"""The job graph of `mubench run`: expand the grid into stages, skip what is cached, run the
rest with joblib (loky processes locally, Dask on a cluster), one record per job.

    stage 1  original model per (dataset, model, seed)
    stage 2  Retrain per (dataset, model, scenario, seed); class-wise forget-vector bank per
             (dataset, model, seed) when a selected method needs it
    stage 3  every other method per (dataset, model, scenario, seed), evaluated in the same job
             against the Retrain of the same split and seed

A job's key hashes everything that determines its output (see `_method_key`); progress bars,
output paths and worker counts are left out on purpose. Workers write their own artifacts and
records (atomically, record last), so a killed run loses at most the jobs in flight and a rerun
skips every key that has an "ok" record. A job that raises is recorded as failed with its
traceback and never cached; the run goes on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass

from .config import ExperimentConfig, method_overrides
from .data import LoadOptions
from .errors import ConfigError
from .jobs import JobSpec, _identity, recipe_from_dict, run_job
from .params import apply_overrides
from .pipeline import cached_dataset, data_key, get_split, original_key
from .presets import preset_for
from .scenarios import parse_scenario
from .store import Store, stable_hash
from .training import OptimSpec, Recipe, resolve_device, resolve_precision

__all__ = ["JobSpec", "Plan", "build_plan", "describe_plan", "execute", "merge_plans", "recipe_for",
           "recipe_from_dict", "resolve_params", "run_job", "settings_line"]

EVAL_VERSION = "1"  # bump when evaluation changes in a way that changes numbers
KEY_IGNORES = ("out", "jobs", "threads_per_worker", "progress", "backend", "scheduler")  # not in keys


@dataclass
class Plan:
    stages: list[list[JobSpec]]  # in order; jobs inside a stage are independent
    cached: set[str]  # keys whose results already exist

    def pending(self, stage: int) -> list[JobSpec]:
        return [j for j in self.stages[stage] if j.key not in self.cached]


STAGE_NAMES = ("originals", "retrain + forget-vector banks", "methods")


def merge_plans(plans: Iterable[Plan]) -> Plan:
    """One plan from several configs' plans (paper passes, tuning candidates): a job they share
    (an original, a Retrain, a bank) appears once, under its key."""
    stages: list[dict] = [{}, {}, {}]
    cached: set[str] = set()
    for plan in plans:
        cached |= plan.cached
        for stage, jobs in zip(stages, plan.stages, strict=True):
            for job in jobs:
                stage.setdefault(job.key, job)
    return Plan([list(s.values()) for s in stages], cached)


def recipe_for(dataset: str, overrides: dict) -> Recipe:
    """The dataset preset's recipe with the config's [recipe] overrides (optim fields included)."""
    base = preset_for(dataset).recipe
    optim_fields = {f.name for f in dataclasses.fields(OptimSpec)}
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)} - {"optim"}
    optim = {k: v for k, v in overrides.items() if k in optim_fields}
    rest = {k: v for k, v in overrides.items() if k in recipe_fields}
    unknown = set(overrides) - optim_fields - recipe_fields
    if unknown:
        raise ConfigError(f"[recipe]: unknown field {sorted(unknown)[0]!r}; valid: "
                          f"{', '.join(sorted(optim_fields | recipe_fields))}")
    optim_spec = apply_overrides(base.optim, optim, "[recipe]")
    return apply_overrides(dataclasses.replace(base, optim=optim_spec), rest, "[recipe]")

def resolve_params(method: str, dataset: str, scenario_kind: str, user: dict):
    """Params() defaults < dataset preset (per scenario kind) < the user's overrides (the config's
    [methods.NAME] < [methods.NAME."SCENARIO"] < --set, merged by `config.method_overrides`)."""
    from .unlearning import METHODS

    cls = METHODS.get(method)
    owner = f"method {method!r}"
    params = apply_overrides(cls.Params(), cls.dataset_defaults(dataset, scenario_kind), f"{owner} preset for {dataset}")
    return apply_overrides(params, user, owner)


def _method_key(payload: dict) -> str:
    return stable_hash({**payload, "eval_version": EVAL_VERSION})


def build_plan(config: ExperimentConfig, store: Store) -> Plan:
    """Validate the whole config (before any job starts) and expand it into staged jobs."""
    from .plugins import load_methods
    from .unlearning import METHODS

    load_methods(config.plugins, strict_plugins=True)
    methods = METHODS.select(config.methods)
    unknown_overrides = (set(config.method_params) | set(config.scenario_params)) - set(METHODS.names())
    if unknown_overrides:
        METHODS.get(sorted(unknown_overrides)[0])  # raises with a suggestion
    for m, tables in config.scenario_params.items():  # every table, even of scenarios not run now
        for spec, table in tables.items():
            apply_overrides(METHODS.get(m).Params(), {**config.method_params.get(m, {}), **table},
                            f'{config.source} [methods.{m}."{spec}"]')
    device = resolve_device(config.execution.device)
    precision = resolve_precision(config.precision, device)
    options = LoadOptions(data_root=config.data_root or None, download=config.download,
                          train_subset=config.train_subset)
    evaluation = dataclasses.asdict(config.evaluation)
    needs_bank = any("fv_bank" in getattr(METHODS.get(m), "requires", ()) for m in methods)
    if not config.seeds:
        raise ConfigError(f"{config.source}: no seeds given")
    common = dict(root=str(store.root), device=config.execution.device, precision=config.precision,
                  data_options=dataclasses.asdict(options), plugins=tuple(config.plugins))

    originals, stage2, stage3 = {}, {}, {}
    for dataset in config.datasets:
        data = cached_dataset(dataset, options)
        # The run's precision trains the originals and Retrain too, unless [recipe] sets its own;
        # resolved here, so 'auto' and what it means on this device share one cached original.
        recipe = recipe_for(dataset, {"precision": config.precision, **config.recipe})
        recipe = dataclasses.replace(recipe, precision=resolve_precision(recipe.precision, device))
        recipe_d = dataclasses.asdict(recipe)
        scenarios = [parse_scenario(s, data.num_classes) for s in config.scenarios]
        for model in config.models or (preset_for(dataset).model,):
            from .models import MODELS

            if not model.startswith("vit_"):
                MODELS.get(model)
            for seed in config.seeds:
                okey = original_key(data, model, recipe, seed, device.type)
                originals[okey] = JobSpec("original", okey, dataset, model, seed, recipe_d, original_key=okey, **common)
                base = dict(dataset=dataset, model=model, seed=seed, recipe=recipe_d,
                            original_key=okey, **common)
                if needs_bank:
                    from .fv_bank import DEFAULT_BATCHED, bank_key

                    fv = resolve_params("forget_vector", dataset, "class", config.method_params.get("forget_vector", {}))
                    bkey = bank_key(data, okey, seed, fv, DEFAULT_BATCHED.get(device.type, False), precision)
                    stage2[bkey] = JobSpec("bank", bkey, bank_params=dataclasses.asdict(fv), **base)
                for sc in scenarios:
                    split_hash = get_split(None, data, sc.spec, seed).hash
                    cell = dict(data=data_key(data), scenario=sc.spec, split=split_hash, precision=precision,
                                evaluation=evaluation, original=okey)
                    ruser, _ = method_overrides(config, "retrain", sc.spec)
                    rparams = resolve_params("retrain", dataset, sc.kind, ruser)
                    rkey = _method_key({**cell, "method": "retrain", "version": METHODS.get("retrain").version,
                                        "params": dataclasses.asdict(rparams)})
                    stage2[rkey] = JobSpec("retrain", rkey, scenario=sc.spec, method="retrain",
                                           params=dataclasses.asdict(rparams),
                                           user_params=ruser,
                                           retrain_key=rkey, evaluation=evaluation, **base)
                    for m in methods:
                        if m == "retrain":
                            continue
                        user, tuned = method_overrides(config, m, sc.spec)
                        params = resolve_params(m, dataset, sc.kind, user)
                        extra = {"tuned": True} if tuned else {}  # in the key only when set: old keys hold
                        if "fv_bank" in getattr(METHODS.get(m), "requires", ()):
                            extra["bank"] = bkey
                        mkey = _method_key({**cell, **extra, "method": m, "version": METHODS.get(m).version,
                                            "params": dataclasses.asdict(params), "retrain": rkey})
                        stage3[mkey] = JobSpec("method", mkey, scenario=sc.spec, method=m,
                                               params=dataclasses.asdict(params), user_params=user, tuned=tuned,
                                               retrain_key=rkey, evaluation=evaluation,
                                               bank_params=stage2[bkey].bank_params if "bank" in extra else {}, **base)
    stages = [list(originals.values()), list(stage2.values()), list(stage3.values())]
    cached = {j.key for stage in stages for j in stage if _is_done(store, j)}
    return Plan(stages, cached)


def _is_done(store: Store, job: JobSpec) -> bool:
    kind = {"original": "original", "bank": "fv_bank"}.get(job.kind, "method")
    record = store.read_record(kind, job.key)
    if record is None or record.get("status", "ok") != "ok":
        return False
    if job.kind in ("original", "bank"):
        return store.has_artifact(kind, job.key)
    return True


# ---------------------------------------------------------------------------------------------
# Worker side

@dataclass
class RunResult:
    records: list[dict]
    failed: list[dict]
    ran: int
    cached: int
    seconds: float


def execute(plan: Plan, config: ExperimentConfig, progress: bool | None = None) -> RunResult:
    """Run the pending jobs of each stage in order with the configured backend."""
    from tqdm.auto import tqdm

    from .workers import backend_context, worker_layout

    start = time.time()
    layout = worker_layout(config.execution)
    records: list[dict] = []
    failed: list[dict] = []
    failed_upstream: set[str] = set()
    ran = 0
    with backend_context(config.execution, layout, config.out) as parallel_map:
        for stage, name in enumerate(STAGE_NAMES):
            pending = []
            for job in plan.pending(stage):
                if job.original_key in failed_upstream:
                    failed.append(_upstream_failure(job, plan, config))
                    continue
                pending.append(dataclasses.replace(
                    job, threads=layout.threads, n_jobs=layout.jobs,
                    progress=(progress if layout.jobs == 1 else False)))
            if not pending:
                continue
            bar = tqdm(total=len(pending), desc=f"stage {stage + 1}/3 {name}", unit="job",
                       disable=(None if progress is None else not progress))
            for record in parallel_map(run_job, pending):
                ran += 1
                bar.update(1)
                if record.get("status") == "failed":
                    failed.append(record)
                    cell = "/".join(str(record.get(k)) for k in ("dataset", "model", "scenario") if record.get(k))
                    bar.write(f"failed: {record.get('method') or record.get('kind')} {cell}/seed "
                              f"{record.get('seed')}: {record.get('error')}")
                    if record.get("kind") == "original":
                        failed_upstream.add(record["key"])
            bar.close()
    store = Store(config.out)
    for job in plan.stages[1] + plan.stages[2]:
        if job.kind in ("retrain", "method"):
            rec = store.read_record("method", job.key)
            if rec is not None and rec.get("status") == "ok":
                records.append(rec)
    return RunResult(records, failed, ran, len(plan.cached), time.time() - start)


def _upstream_failure(job: JobSpec, plan: Plan, config: ExperimentConfig) -> dict:
    record = {**_identity(job), "status": "failed", "error": "its original model failed to train"}
    if job.kind in ("retrain", "method"):
        Store(config.out).write_record("method", job.key, record)
    return record


def settings_line(config: ExperimentConfig) -> str:
    """What the numbers of this run are computed with: the device and the training precision
    ('auto' resolved: bf16 on GPUs and AMX CPUs, else fp32), evaluation being fp32 always."""
    device = resolve_device(config.execution.device)
    precision = resolve_precision(config.precision, device)
    how = f"auto on this {device.type}" if config.precision == "auto" else "as asked"
    return f"device {device}, training precision {precision} ({how}), evaluation fp32"


def describe_plan(plan: Plan) -> Iterable[str]:
    """Lines for --dry-run: jobs per stage, how many are cached, and what will run."""
    total = 0
    for stage, name in enumerate(STAGE_NAMES):
        jobs = plan.stages[stage]
        pending = plan.pending(stage)
        total += len(pending)
        yield f"stage {stage + 1} ({name}): {len(jobs)} jobs, {len(jobs) - len(pending)} cached, {len(pending)} to run"
        for job in pending:
            yield f"    {job.label}  [{job.key}]"
    yield f"total: {total} jobs to run"
