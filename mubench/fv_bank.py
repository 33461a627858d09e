"""The class-wise forget-vector bank: δ_1…δ_K of one frozen model, learned once and reused.

Forget-vector arithmetic (mubench/methods/fv_arithmetic.py, SPEC §4) composes new forget vectors from
the K class-wise vectors of the same original model. Each δ_k solves the `class:k`
forget-vector problem (forget every training image of class k, retain the rest) with the
given forget_vector params. The bank is an artifact of the Store (kind "fv_bank") with a record
holding its one-time cost in seconds; the runner reports that cost separately (`bank_s`), not
inside arithmetic's runtime.

Two ways to learn it, with identical losses and optimiser per class:
- one class at a time (`batched=False`): K runs of the forget_vector method, each on its own
  shuffled class:k loader;
- several classes per pass (`batched=True`): every class:k problem has the same samples (the
  whole training set, only the forget flags y == k differ), so one loader serves them all and
  each batch goes through the model as K perturbed copies. The gradient of the summed loss
  with respect to δ_k is exactly class k's gradient; only the shuffling order (shared by all
  classes) and the convergence stop (all vectors together) differ from the one-at-a-time runs.
Measured on digits / small_cnn on a shared 2-core CPU (docs/forget-vectors.md): one class at
a time is the faster on CPU (preset bank, 60 epochs: 128 s vs 188 s stacked; 3 epochs at batch
128: 9.7 s vs 10.7 s) — a CPU does the same arithmetic either way and the K-fold batch only
costs cache — so it is the CPU default. On CUDA the stacked pass is expected to win (a small
model fills a GPU poorly one batch at a time) and is the default there; this was not measured
here (no GPU). `MAX_STACK` caps the images of one stacked forward pass, so many classes
(CIFAR-100) run in several groups.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
from torch import nn

from .data import ImageData
from .pipeline import build_task, data_key, get_split
from .store import Store, stable_hash
from .training import Recipe, resolve_precision, synchronize

DEFAULT_BATCHED = {"cpu": False, "cuda": True}  # CPU measured, CUDA expected: module docstring
MAX_STACK = 4096  # most images in one stacked forward pass (classes per group = MAX_STACK // batch)


@dataclass
class BankResult:
    vectors: torch.Tensor  # (K, C, H, W) on the CPU
    seconds: float  # one-time cost of learning the bank (the stored value when loaded)
    key: str
    loaded: bool  # True when read from the store


def bank_key(data: ImageData, original_key: str, seed: int, params, batched: bool, precision: str) -> str:
    """Hash of everything that determines the bank (the learning mode and precision included)."""
    from mubench.methods.forget_vector import ForgetVector

    return stable_hash({"kind": "fv_bank", "data": data_key(data), "original": original_key, "seed": seed,
                        "params": dataclasses.asdict(params), "method_version": ForgetVector.version,
                        "batched": batched, "precision": precision})


def get_bank(store: Store | None, data: ImageData, original: nn.Module, original_key: str, seed: int,
             device: torch.device, params, batched: bool | None = None, progress=None,
             precision: str = "auto") -> BankResult:
    """The K class-wise forget vectors of `original`, from the store or learned now.

    params: ForgetVectorParams for class-wise forgetting (the preset's class values).
    batched: None → DEFAULT_BATCHED for the device kind.
    """
    if batched is None:
        batched = DEFAULT_BATCHED.get(device.type, False)
    precision = resolve_precision(precision, device)
    key = bank_key(data, original_key, seed, params, batched, precision)
    if store is not None:
        state = store.load_artifact("fv_bank", key)
        record = store.read_record("fv_bank", key)
        if state is not None and record is not None:
            return BankResult(state["vectors"], float(record["seconds"]), key, True)

    def task_of(k: int):
        split = get_split(store, data, f"class:{k}", seed)
        # The bank never builds or retrains a model: the architecture name and recipe are unused.
        return build_task(data, split, original, "", Recipe(), seed, device, precision=precision, progress=progress)

    synchronize(device)
    start = time.perf_counter()
    if batched:
        vectors, epochs = _learn_stacked(task_of, data.num_classes, params)
    else:
        vectors, epochs = _learn_one_by_one(task_of, data.num_classes, params)
    synchronize(device)
    seconds = time.perf_counter() - start
    vectors = vectors.detach().float().cpu()
    if store is not None:
        store.save_artifact("fv_bank", key, {"vectors": vectors})
        store.write_record("fv_bank", key, {
            "key": key, "dataset": data.name, "original_key": original_key, "seed": seed,
            "params": dataclasses.asdict(params), "batched": batched, "precision": precision,
            "num_classes": data.num_classes, "epochs_run": epochs, "seconds": seconds, "device": str(device),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return BankResult(vectors, seconds, key, False)


def _learn_one_by_one(task_of, num_classes: int, params) -> tuple[torch.Tensor, list[int]]:
    from mubench.methods.forget_vector import ForgetVector

    method = ForgetVector(params)
    preds = [method.unlearn(task_of(k)) for k in range(num_classes)]
    return torch.stack([p.delta for p in preds]), [p.info["epochs_run"] for p in preds]


def _learn_stacked(task_of, num_classes: int, params) -> tuple[torch.Tensor, list[int]]:
    from mubench.methods.forget_vector import learn_perturbation

    # The class:0 task's forget ∪ retain is the whole training set, as for every class.
    task = task_of(0)
    per_group = max(1, MAX_STACK // params.batch_size)
    vectors, epochs = [], []
    for first in range(0, num_classes, per_group):
        classes = torch.arange(first, min(first + per_group, num_classes), device=task.device)
        theta = torch.zeros((len(classes), *task.input_shape))
        if params.init == "gaussian":
            theta = torch.randn(theta.shape, generator=task.generator(offset=1)) * params.init_std
        learned = learn_perturbation(task, params, theta, to_delta=lambda d: d,
                                     norms=lambda d: d.flatten(1).norm(dim=1),
                                     flags=lambda b, c=classes: b.y[None] == c[:, None],
                                     desc=f"fv_bank classes {first}-{int(classes[-1])}")
        vectors.append(learned.theta)
        epochs += [learned.epochs_run] * len(classes)
    return torch.cat(vectors), epochs
