"""Cached building blocks shared by every job: datasets, splits, original models.

Each artifact's key hashes everything that determines it (dataset fingerprint, model, recipe,
seed, a code version), so the original model of (dataset, model, recipe, seed) is trained once
and reused by Retrain's reference, every method and every metric after it.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from .data import ImageData, LoadOptions, eval_view, load_dataset
from .models import build_model, spec_for
from .scenarios import Split, make_split
from .store import Store, stable_hash
from .training import Recipe, accuracy, fit_supervised

UNDERFIT_TRAIN_ACC = 99.0  # SPEC §1: an original below this barely remembers its data


@functools.lru_cache(maxsize=4)
def cached_dataset(name: str, options: LoadOptions | None = None) -> ImageData:
    """Datasets are read once per process (workers run many jobs on the same data)."""
    return load_dataset(name, options)


def data_key(data: ImageData) -> str:
    return stable_hash(data.fingerprint())


def get_split(store: Store | None, data: ImageData, scenario: str, seed: int, key: str | None = None,
              scores=None) -> Split:
    """The split of (dataset, scenario, seed), saved once in the store under `key` (the planner's
    `jobs.Split` key: one key rule per artifact) and reused; without a store, just made.
    `scores`: a callable giving the per-example scores a hardness-stratified scenario selects by
    (called only when the split is made)."""
    fp = data_key(data)
    _needs_key(store, key, "split", "jobs.Split")
    if store is not None:
        state = store.load_artifact("split", key)
        if state is not None:
            return Split.from_state(state)
    split = make_split(data.train_y.numpy(), data.test_y.numpy(), scenario, seed, fp,
                       scores() if scores is not None else None)
    if store is not None:
        store.save_artifact("split", key, split.to_state())
    return split


@functools.lru_cache(maxsize=32)
def architecture_key(model_name: str, spec) -> str:
    """A hash of the model's structure (its repr), so editing a model's code invalidates every
    artifact trained with the old one instead of failing to load it."""
    return stable_hash(repr(build_model(model_name, spec)))


def _needs_key(store: Store | None, key: str | None, what: str, job: str) -> None:
    """A stored artifact is keyed by its job only, so the cache has one key rule per artifact."""
    if store is not None and key is None:
        raise ValueError(f"a {what} kept in a store needs its {job} key (plan the job, or pass store=None)")


def recipe_from_dict(d: dict) -> Recipe:
    """A Recipe from its `dataclasses.asdict` form (as jobs carry it)."""
    from .training import OptimSpec

    d = dict(d)
    optim = dict(d.pop("optim"))
    optim["milestones"] = tuple(optim["milestones"])
    return Recipe(optim=OptimSpec(**optim), **d)


def fresh_model(data: ImageData, model_name: str, seed: int) -> nn.Module:
    """A newly initialised model; the seed fixes the initial weights (Retrain reuses them)."""
    torch.manual_seed(seed)
    return build_model(model_name, spec_for(data))


@dataclass
class OriginalModel:
    model: nn.Module
    key: str | None  # its Original job's key (None: trained without a store)
    info: dict  # train/test accuracy, seconds, device, whether it was loaded from the store


def get_original(store: Store | None, data: ImageData, model_name: str, recipe: Recipe, seed: int,
                 device: torch.device, progress: bool | None = None, key: str | None = None) -> OriginalModel:
    """Train the original model of (dataset, model, recipe, seed), or load it from the store
    under `key` (the planner's `jobs.Original` key); without a store, just train it."""
    _needs_key(store, key, "original", "jobs.Original")
    model = fresh_model(data, model_name, seed)
    if recipe.channels_last:  # loaded weights keep this layout: every method and evaluation gain
        model.to(memory_format=torch.channels_last)
    if store is not None:
        state = store.load_artifact("original", key)
        record = store.read_record("original", key)
        if state is not None and record is not None:
            try:
                model.load_state_dict(state)
            except RuntimeError as err:  # same key, other architecture: never trust it
                warnings.warn(f"stored original {key} does not fit model {model_name!r} "
                              f"({str(err).splitlines()[0]}); training it again", stacklevel=2)
            else:
                model.to(device).eval()
                return OriginalModel(model, key, {**record, "loaded": True})
    result = fit_supervised(model, data.train_x, data.train_y, recipe, data.augment, seed, device,
                            progress=progress, desc=f"original {data.name}/{model_name}/seed {seed}")
    prepare = functools.partial(eval_view, data)
    info = {
        "key": key,
        "dataset": data.name,
        "model": model_name,
        "seed": seed,
        "recipe": dataclasses.asdict(recipe),
        "n_train": len(data.train_y),  # shadow and reference models train on part of the training set
        "train_acc": accuracy(model, data.train_x, data.train_y, device, prepare=prepare),
        "test_acc": accuracy(model, data.test_x, data.test_y, device, prepare=prepare),
        "seconds": result.seconds,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),  # bf16 CPU training moves with it
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if info["train_acc"] < UNDERFIT_TRAIN_ACC:
        warnings.warn(f"original {data.name}/{model_name}/seed {seed} under-fits its training set "
                      f"(train accuracy {info['train_acc']:.2f}% < {UNDERFIT_TRAIN_ACC:g}%): forgetting "
                      "will look easier than it is (SPEC §1); train longer", stacklevel=2)
    model.eval()
    if store is not None:
        store.save_artifact("original", key, {k: v.cpu() for k, v in model.state_dict().items()})
        store.write_record("original", key, info)
    return OriginalModel(model, key, {**info, "loaded": False})


def build_task(data: ImageData, split: Split, original: nn.Module, model_name: str, recipe: Recipe,
               seed: int, device: torch.device, precision: str = "auto", resources: dict | None = None,
               progress: bool | None = None):
    """The UnlearnTask of one cell: forget/retain tensors on the device, never the test split."""
    from .scenarios import parse_scenario
    from .unlearning import UnlearnTask

    forget = torch.from_numpy(split.forget)
    retain = torch.from_numpy(split.retain)
    return UnlearnTask(
        original=original.to(device).eval(),
        forget_x=data.train_x[forget].to(device),
        forget_y=data.train_y[forget].to(device),
        retain_x=data.train_x[retain].to(device),
        retain_y=data.train_y[retain].to(device),
        num_classes=data.num_classes,
        input_shape=data.input_shape,
        augment=data.augment,
        scenario=parse_scenario(split.scenario, data.num_classes).request,  # a chain step: its request
        seed=seed,
        device=device,
        recipe=recipe,
        build_model=functools.partial(fresh_model, data, model_name, seed=seed),  # seed= lets a method re-seed it
        prepare=functools.partial(eval_view, data),
        precision=precision,
        resources=dict(resources or {}),
        progress=progress,
    )
