"""The class-wise forget-vector bank: δ_1…δ_K of one frozen model, learned once and reused.

Forget-vector arithmetic (mubench/methods/fv_arithmetic.py, SPEC §4) composes new forget vectors from
the K class-wise vectors of the same original model. Each δ_k solves the `class:k`
forget-vector problem (forget every training image of class k, retain the rest). The bank is a
resource (mubench/resources.py) registered here and imported by the method that owns it
(fv_arithmetic.py; a private module, so the method loader skips it): one `Resource` job per
original model, an artifact of kind "fv_bank" with a record holding its one-time cost in
seconds, which records of methods using it report separately (`bank_s`), not inside
arithmetic's runtime. It learns each δ_k on the task the resource context hands it
(`ctx.task("class:k")`: the planner's own split of that original), so it neither builds
splits nor touches the store.

Its settings are the forget vector's class-wise ones (`ForgetVectorParams` with the dataset's
`class` preset) overridden by the config's own `[bank]` table (`--set bank.FIELD=VALUE`), never
by `[methods.forget_vector]`: an override meant for one scenario's forget vector must not
silently relearn the bank (SPEC §4).

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
here (no GPU). `MAX_STACK_VALUES` bounds the input values of one stacked forward pass (activation
memory grows with them), so many classes (CIFAR-100) or large images (ImageNet-10 at 224 px,
where even two stacked batches of 256 would put 512 images through VGG-16 at once) run in
several groups, down to one class at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from mubench.device import synchronize
from mubench.params import apply_overrides, keyed_params
from mubench.resources import ResourceContext, register_resource
from mubench.unlearning import UnlearnTask

from .forget_vector import ForgetVector, ForgetVectorParams, learn_perturbation, resolve_beta

DEFAULT_BATCHED = {"cpu": False, "cuda": True}  # CPU measured, CUDA expected: module docstring
MAX_STACK_VALUES = 4096 * 3 * 32 * 32  # input values of one stacked forward (16 CIFAR batches of 256)


def classes_per_group(batch_size: int, input_shape: tuple[int, ...], budget: int = MAX_STACK_VALUES) -> int:
    """How many class problems one stacked forward pass may hold within the memory budget."""
    per_image = 1
    for n in input_shape:
        per_image *= n
    return max(1, budget // (batch_size * per_image))


def bank_settings(dataset: str, overrides: dict, device: torch.device, precision: str) -> dict:
    """The bank's settings: class-wise forget-vector params (dataset preset < `[bank]`), the
    learning mode for the device kind and the training precision."""
    preset = ForgetVector.dataset_defaults(dataset, "class")
    params = apply_overrides(apply_overrides(ForgetVectorParams(), preset, f"forget-vector bank preset for {dataset}"),
                             dict(overrides), "[bank]")
    params = resolve_beta(params, "class")  # every vector of the bank solves a class:k problem
    return {"params": keyed_params(params), "batched": DEFAULT_BATCHED.get(device.type, False),
            "precision": precision, "method_version": ForgetVector.version}


def learn_bank(ctx: ResourceContext) -> tuple[dict, dict]:
    """The K class-wise forget vectors of one original model (SPEC §4)."""
    params = apply_overrides(ForgetVectorParams(), ctx.settings["params"], "[bank]")
    vectors, epochs, seconds = learn_vectors(lambda k: ctx.task(f"class:{k}", ctx.settings["precision"]),
                                             ctx.num_classes, params, ctx.settings["batched"], ctx.device)
    return {"vectors": vectors}, {"num_classes": ctx.num_classes, "epochs_run": epochs, "seconds": seconds}


def load_bank(artifact: dict, device: torch.device) -> torch.Tensor:
    return artifact["vectors"].to(device)


def synthetic_bank(task: UnlearnTask, scale: float = 0.05) -> torch.Tensor:
    """K random class-wise vectors (K, C, H, W) for method checks: shape-correct, seeded, meaningless."""
    g = torch.Generator().manual_seed(task.seed + 17)
    return torch.randn((task.num_classes, *task.input_shape), generator=g).to(task.device) * scale


register_resource("fv_bank", section="bank", settings=bank_settings, build=learn_bank, load=load_bank,
                  record_field="bank_s", synthetic=synthetic_bank)


def learn_vectors(task_of: Callable[[int], UnlearnTask], num_classes: int, params: ForgetVectorParams,
                  batched: bool, device: torch.device) -> tuple[torch.Tensor, list[int], float]:
    """(vectors (K, C, H, W) on the CPU, epochs run per class, seconds) of the class problems
    `task_of(k)` (the class:k task of one frozen original)."""
    synchronize(device)
    start = time.perf_counter()
    if batched:
        vectors, epochs = _learn_stacked(task_of, num_classes, params)
    else:
        vectors, epochs = _learn_one_by_one(task_of, num_classes, params)
    synchronize(device)
    return vectors.detach().float().cpu(), epochs, time.perf_counter() - start


def _learn_one_by_one(task_of, num_classes: int, params) -> tuple[torch.Tensor, list[int]]:
    method = ForgetVector(params)
    preds = [method.unlearn(task_of(k)) for k in range(num_classes)]
    return torch.stack([p.delta for p in preds]), [p.info["epochs_run"] for p in preds]


def _learn_stacked(task_of, num_classes: int, params) -> tuple[torch.Tensor, list[int]]:
    # The class:0 task's forget ∪ retain is the whole training set, as for every class.
    task = task_of(0)
    per_group = classes_per_group(params.batch_size, task.input_shape)
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
