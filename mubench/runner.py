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
import platform
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from . import __version__
from .config import ExperimentConfig
from .data import LoadOptions
from .errors import ConfigError, MubenchError
from .params import apply_overrides, non_default
from .pipeline import cached_dataset, data_key, get_split, original_key
from .presets import method_defaults, preset_for
from .scenarios import parse_scenario
from .store import Store, stable_hash
from .training import OptimSpec, Recipe, resolve_device, resolve_precision

EVAL_VERSION = "1"  # bump when evaluation changes in a way that changes numbers
KEY_IGNORES = ("out", "jobs", "threads_per_worker", "progress", "backend", "scheduler")  # not in keys


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to run one job: plain data, no classes (each worker resolves
    method names itself after loading plugins)."""

    kind: str  # original | retrain | bank | method
    key: str
    dataset: str
    model: str
    seed: int
    recipe: dict
    root: str
    device: str = "auto"
    precision: str = "auto"
    scenario: str = ""
    method: str = ""
    params: dict = field(default_factory=dict)
    user_params: dict = field(default_factory=dict)  # only what the user overrode (display name)
    original_key: str = ""
    retrain_key: str = ""
    bank_params: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)
    data_options: dict = field(default_factory=dict)
    plugins: tuple[str, ...] = ()
    threads: int = 0
    n_jobs: int = 1
    progress: bool | None = False

    @property
    def label(self) -> str:
        cell = "/".join(x for x in (self.dataset, self.model, self.scenario, f"seed {self.seed}") if x)
        return f"{self.method or self.kind} {cell}"


@dataclass
class Plan:
    stages: list[list[JobSpec]]  # in order; jobs inside a stage are independent
    cached: set[str]  # keys whose results already exist

    def pending(self, stage: int) -> list[JobSpec]:
        return [j for j in self.stages[stage] if j.key not in self.cached]


STAGE_NAMES = ("originals", "retrain + forget-vector banks", "methods")


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


def recipe_from_dict(d: dict) -> Recipe:
    d = dict(d)
    optim = dict(d.pop("optim"))
    optim["milestones"] = tuple(optim["milestones"])
    return Recipe(optim=OptimSpec(**optim), **d)


def resolve_params(method: str, dataset: str, scenario_kind: str, user: dict):
    """Params() defaults < dataset preset (per scenario kind) < the user's overrides."""
    from .unlearning import METHODS

    cls = METHODS.get(method)
    owner = f"method {method!r}"
    params = apply_overrides(cls.Params(), method_defaults(dataset, method, scenario_kind), f"{owner} preset for {dataset}")
    return apply_overrides(params, user, owner)


def _method_key(payload: dict) -> str:
    return stable_hash({**payload, "eval_version": EVAL_VERSION})


def build_plan(config: ExperimentConfig, store: Store) -> Plan:
    """Validate the whole config (before any job starts) and expand it into staged jobs."""
    from .plugins import load_methods
    from .unlearning import METHODS

    load_methods(config.plugins, strict_plugins=True)
    methods = METHODS.select(config.methods)
    unknown_overrides = set(config.method_params) - set(METHODS.names())
    if unknown_overrides:
        METHODS.get(sorted(unknown_overrides)[0])  # raises with a suggestion
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
        recipe = recipe_for(dataset, config.recipe)
        recipe_d = dataclasses.asdict(recipe)
        scenarios = [parse_scenario(s, data.num_classes) for s in config.scenarios]
        for model in config.models or (preset_for(dataset).model,):
            from .models import MODELS

            if not model.startswith("vit_"):
                MODELS.get(model)
            for seed in config.seeds:
                okey = original_key(data, model, recipe, seed, device.type)
                originals[okey] = JobSpec("original", okey, dataset, model, seed, recipe_d, **common)
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
                    rparams = resolve_params("retrain", dataset, sc.kind, config.method_params.get("retrain", {}))
                    rkey = _method_key({**cell, "method": "retrain", "version": METHODS.get("retrain").version,
                                        "params": dataclasses.asdict(rparams)})
                    stage2[rkey] = JobSpec("retrain", rkey, scenario=sc.spec, method="retrain",
                                           params=dataclasses.asdict(rparams),
                                           user_params=config.method_params.get("retrain", {}),
                                           retrain_key=rkey, evaluation=evaluation, **base)
                    for m in methods:
                        if m == "retrain":
                            continue
                        user = config.method_params.get(m, {})
                        params = resolve_params(m, dataset, sc.kind, user)
                        extra = {}
                        if "fv_bank" in getattr(METHODS.get(m), "requires", ()):
                            extra["bank"] = bkey
                        mkey = _method_key({**cell, **extra, "method": m, "version": METHODS.get(m).version,
                                            "params": dataclasses.asdict(params), "retrain": rkey})
                        stage3[mkey] = JobSpec("method", mkey, scenario=sc.spec, method=m,
                                               params=dataclasses.asdict(params), user_params=user,
                                               retrain_key=rkey, evaluation=evaluation,
                                               bank_params=stage2[bkey].bank_params if extra else {}, **base)
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


def run_job(spec: JobSpec) -> dict:
    """Run one job in this process and return its record (also written to the store).

    Ordinary exceptions become a failed record with a traceback log; KeyboardInterrupt passes.
    """
    from .workers import configure_worker

    store = Store(spec.root)
    started = time.time()
    try:
        device = configure_worker(spec.device, spec.threads)
        if spec.kind == "original":
            return _run_original(spec, store, device)
        if spec.kind == "bank":
            return _run_bank(spec, store, device)
        return _run_method(spec, store, device, started)
    except Exception as err:  # one bad cell must not stop the grid
        log = store.write_log(spec.key, f"{spec.label}\n\n{traceback.format_exc()}")
        record = {**_identity(spec), "status": "failed", "error": f"{type(err).__name__}: {err}".splitlines()[0],
                  "traceback_file": str(log.relative_to(store.root)), "started": _iso(started),
                  "finished": _iso(time.time())}
        if spec.kind in ("retrain", "method"):
            store.write_record("method", spec.key, record)
        return record


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


def _identity(spec: JobSpec) -> dict:
    return {"key": spec.key, "kind": spec.kind, "dataset": spec.dataset, "model": spec.model,
            "scenario": spec.scenario, "scenario_kind": spec.scenario.split(":")[0] if spec.scenario else "",
            "seed": spec.seed, "method": spec.method, "params": spec.params,
            "display_name": display_name(spec.method, spec.user_params)}


def display_name(method: str, user_params: dict) -> str:
    if not user_params:
        return method
    inner = ",".join(f"{k}={v}" for k, v in sorted(user_params.items()))
    return f"{method}[{inner}]"


def _versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "mubench": __version__}


def _data(spec: JobSpec):
    return cached_dataset(spec.dataset, LoadOptions(**spec.data_options))


def _run_original(spec: JobSpec, store: Store, device) -> dict:
    from .pipeline import get_original

    original = get_original(store, _data(spec), spec.model, recipe_from_dict(spec.recipe), spec.seed,
                            device, progress=spec.progress)
    return {**original.info, "status": "ok", "kind": "original"}


def _original(spec: JobSpec, store: Store, device):
    from .pipeline import get_original

    original = get_original(store, _data(spec), spec.model, recipe_from_dict(spec.recipe), spec.seed,
                            device, progress=spec.progress)
    if original.key != spec.original_key:
        raise MubenchError(f"original model key changed ({original.key} != {spec.original_key}); "
                           "the device kind differs from the planning process's")
    return original


def _bank_params(spec: JobSpec):
    from .unlearning import METHODS

    return METHODS.get("forget_vector").Params(**{k: tuple(v) if isinstance(v, list) else v
                                                   for k, v in spec.bank_params.items()})


def _run_bank(spec: JobSpec, store: Store, device) -> dict:
    from .fv_bank import get_bank
    from .plugins import load_methods

    load_methods(spec.plugins)
    original = _original(spec, store, device)
    bank = get_bank(store, _data(spec), original.model, original.key, spec.seed, device,
                    _bank_params(spec), progress=spec.progress, precision=spec.precision)
    if bank.key != spec.key:
        raise MubenchError(f"forget-vector bank key changed ({bank.key} != {spec.key}); the device kind "
                           "differs from the planning process's")
    return {"key": bank.key, "kind": "bank", "status": "ok", "seconds": bank.seconds, "loaded": bank.loaded}


def _run_method(spec: JobSpec, store: Store, device, started: float) -> dict:
    from .evaluation import evaluate, forward_split, load_outputs, save_outputs
    from .pipeline import build_task
    from .plugins import load_methods
    from .training import synchronize
    from .unlearning import METHODS

    load_methods(spec.plugins)
    cls = METHODS.get(spec.method)
    data = _data(spec)
    original = _original(spec, store, device)
    split = get_split(store, data, spec.scenario, spec.seed)
    resources, extra = {}, {}
    if "fv_bank" in getattr(cls, "requires", ()):
        from .fv_bank import get_bank

        bank = get_bank(store, data, original.model, original.key, spec.seed, device,
                        _bank_params(spec), progress=spec.progress, precision=spec.precision)
        resources["fv_bank"] = bank.vectors.to(device)
        extra["bank_s"] = bank.seconds
    task = build_task(data, split, original.model, spec.model, recipe_from_dict(spec.recipe), spec.seed,
                      device, precision=spec.precision, resources=resources, progress=spec.progress)
    params = apply_overrides(cls.Params(), spec.params, f"method {spec.method!r}")
    method = cls(params)
    synchronize(device)
    t0 = time.perf_counter()
    predictor = method.unlearn(task)
    synchronize(device)
    rte = time.perf_counter() - t0

    evaluation = dict(spec.evaluation)
    from .mia import MIAConfig

    mia = MIAConfig(seed=spec.seed, legacy_first_n=evaluation.get("mia_legacy_first_n", False))
    is_retrain = spec.kind == "retrain"
    reference = None if is_retrain else store.read_record("method", spec.retrain_key)
    if reference is not None and reference.get("status") != "ok":
        reference = None
    ref_outputs = None
    if reference is not None and evaluation.get("controls", True):
        state = store.load_artifact("outputs", spec.retrain_key)
        ref_outputs = load_outputs(state) if state is not None else None
    outputs = forward_split(predictor, data, split, device)  # the one forward pass per split
    metrics = evaluate(predictor, data, split, device=device, original=original.model,
                       reference=reference, reference_outputs=ref_outputs, mia=mia,
                       controls=evaluation.get("controls", True), seed=spec.seed,
                       extra_mia=evaluation.get("extra_mia", False), outputs=outputs)
    if is_retrain:
        store.save_artifact("outputs", spec.key, save_outputs(outputs))  # for KL-to-Retrain extras
        metrics["avg_gap"] = 0.0
    metrics["rte_s"] = rte
    metrics["rte_rel"] = rte / reference["rte_s"] if reference and reference.get("rte_s") else (1.0 if is_retrain else None)
    record = {
        **_identity(spec), **metrics, **extra,
        "dataset": data.name,  # carries a [n] suffix when a training subset is used
        "status": "ok",
        "method_version": cls.version,
        "tuned": False,
        "split_hash": split.hash,
        "original_key": original.key,
        "retrain_key": spec.retrain_key,
        "original_train_acc": original.info.get("train_acc"),
        "original_test_acc": original.info.get("test_acc"),
        "device": str(device),
        "n_jobs": spec.n_jobs,
        "versions": _versions(),
        "started": _iso(started),
        "finished": _iso(time.time()),
        "wall_s": time.time() - started,
        "info": _jsonable_info(predictor.info),
        "non_default_params": {k: str(v) for k, v in non_default(params).items()},
    }
    if predictor.delta is not None:
        record.update(_save_delta(store, spec.key, predictor, data, split))
    store.write_record("method", spec.key, record)
    return record


FIGURE_EXAMPLES = 6  # forget/retain images shown before/after δ in a forget vector's figure


def _save_delta(store: Store, key: str, predictor, data, split) -> dict:
    """Keep a forget vector (artifact) and its picture (δ and examples before/after) for reports."""
    from .data import eval_view
    from .visual import render_forget_vector

    store.save_artifact("delta", key, predictor.delta.detach().cpu())
    n = FIGURE_EXAMPLES // 2
    idx = torch.from_numpy(__import__("numpy").concatenate([split.forget[:n], split.retain[:n]]))
    images = eval_view(data, data.train_x[idx])
    flags = torch.arange(len(idx)) < min(n, len(split.forget))
    png = store.root / "figures" / f"{key}.png"
    render_forget_vector(predictor, images, data.train_y[idx], data.classes, png, forget=flags)
    render_forget_vector(predictor, images, data.train_y[idx], data.classes, png.with_suffix(".pdf"), forget=flags)
    return {"delta_figure": str(png.relative_to(store.root))}


def _jsonable_info(info: dict) -> dict:
    out = {}
    for k, v in info.items():
        if isinstance(v, torch.Tensor):
            v = v.tolist()
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------
# Parent side


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
