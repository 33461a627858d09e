"""One job of the runner, as a worker process runs it: train or load the original, learn the
forget-vector bank, or run one method and evaluate it against its Retrain.

`run_job(spec)` is the module-level function every backend maps over (loky, Dask, or this
process). A `JobSpec` is plain data — names, parameters, keys, the results root — so nothing
odd is pickled and each worker resolves method names itself after loading plugins. The worker
writes its own artifacts and record (record last, atomically).
"""

from __future__ import annotations

import platform
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import torch

from . import __version__
from .data import LoadOptions
from .errors import MubenchError
from .params import apply_overrides, non_default
from .pipeline import cached_dataset, get_split
from .store import Store
from .training import OptimSpec, Recipe, resolve_precision


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
    tuned: bool = False  # params come from a `mubench tune` search (the config's [tuned] table)
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


def recipe_from_dict(d: dict) -> Recipe:
    d = dict(d)
    optim = dict(d.pop("optim"))
    optim["milestones"] = tuple(optim["milestones"])
    return Recipe(optim=OptimSpec(**optim), **d)


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
    original = _original(spec, store, device)
    return {**original.info, "status": "ok", "kind": "original"}


def _original(spec: JobSpec, store: Store, device):
    from .pipeline import get_original

    original = get_original(store, _data(spec), spec.model, recipe_from_dict(spec.recipe), spec.seed,
                            device, progress=spec.progress)
    if original.key != spec.original_key:
        raise MubenchError(f"original model key changed ({original.key} != {spec.original_key}); "
                           "the device kind differs from the planning process's")
    return original


def _bank(spec: JobSpec, store: Store, original, device):
    """The class-wise forget-vector bank of this job's original (learned once, then loaded)."""
    from .fv_bank import get_bank
    from .unlearning import METHODS

    params = apply_overrides(METHODS.get("forget_vector").Params(), spec.bank_params, "forget-vector bank")
    return get_bank(store, _data(spec), original.model, original.key, spec.seed, device, params,
                    progress=spec.progress, precision=spec.precision)


def _run_bank(spec: JobSpec, store: Store, device) -> dict:
    from .plugins import load_methods

    load_methods(spec.plugins)
    bank = _bank(spec, store, _original(spec, store, device), device)
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
        bank = _bank(spec, store, original, device)
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
        "tuned": spec.tuned,
        "split_hash": split.hash,
        "original_key": original.key,
        "retrain_key": spec.retrain_key,
        "original_train_acc": original.info.get("train_acc"),
        "original_test_acc": original.info.get("test_acc"),
        "device": str(device),
        # the training precision, resolved (Retrain trains with the original's recipe)
        "precision": resolve_precision(spec.recipe.get("precision", "auto") if is_retrain else spec.precision,
                                       device),
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
    idx = torch.from_numpy(np.concatenate([split.forget[:n], split.retain[:n]]))
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
