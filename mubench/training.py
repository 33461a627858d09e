"""The one training loop: original models, Retrain and every epoch-based unlearning method.

A caller supplies what differs — which batches an epoch sees and the per-batch loss — and the
loop owns the rest: SGD with momentum and weight decay, the lr schedule, batched tensor
augmentation on the device, seeding, bf16 autocast, channels-last, timing and progress.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from .augment import Augment
from .data import to_float
from .device import (
    PRECISIONS,
    autocast,
    eval_batch_size,
    exact_fp32,
    resolve_precision,
    synchronize,
)
from .errors import ConfigError  # user input (config files, --set): one line, exit 2
from .params import Interval, Options, apply_overrides, check_params, param, unknown_field

SCHEDULES = ("constant", "multistep", "exponential", "cosine")


@dataclass(frozen=True)
class OptimSpec:
    """SGD + lr schedule. Defaults are SPEC §1's CIFAR-10 recipe."""

    lr: float = param(0.1, Interval(0, None, "neither"), "learning rate")
    momentum: float = param(0.9, Interval(0, 1), "SGD momentum")
    weight_decay: float = param(5e-4, Interval(0, None), "L2 weight decay")
    schedule: str = param("multistep", Options(SCHEDULES), "learning-rate schedule")
    milestones: tuple[float, ...] = param((0.5, 0.75), Interval(0, 1, "neither"),
                                          "multistep: fractions of training where lr ×= gamma")
    gamma: float = param(0.1, Interval(0, None, "neither"), "multistep factor; exponential: lr ×= gamma every epoch")

    def __post_init__(self):
        check_params(self, "[recipe]")


def lr_at(epoch: int, epochs: int, spec: OptimSpec) -> float:
    """Learning rate of a (0-based) epoch: a pure function, so schedules are testable."""
    if spec.schedule == "constant":
        return spec.lr
    if spec.schedule == "exponential":
        return spec.lr * spec.gamma**epoch
    if spec.schedule == "cosine":
        import math

        return spec.lr * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
    passed = sum(epoch >= round(m * epochs) for m in spec.milestones)
    return spec.lr * spec.gamma**passed


@dataclass(frozen=True)
class Recipe:
    """How an original model is trained (SPEC §1); Retrain uses the same recipe on the retain set."""

    epochs: int = param(182, Interval(1, None), "training epochs")
    batch_size: int = param(256, Interval(1, None), "training batch size")
    optim: OptimSpec = field(default_factory=OptimSpec)  # its own fields are [recipe] keys too (recipe_with)
    augment: bool = param(True, None, "the dataset's training augmentation (crop/flip) on or off")
    precision: str = param("auto", Options(PRECISIONS),
                           "auto: bf16 autocast on GPUs and AMX CPUs, else fp32 (resolve_precision)")
    channels_last: bool = param(True, None, "NHWC memory format: 1.2-1.4x for conv nets on CPU (BENCHMARKS.md)")
    compile: bool = param(False, None, "torch.compile the model: opt-in, pays only for long runs (BENCHMARKS.md)")


def recipe_with(base: Recipe, overrides: dict, owner: str = "[recipe]") -> Recipe:
    """`base` with [recipe] / --set recipe.FIELD values: Recipe's own fields and, flat beside
    them, OptimSpec's (`lr`, `schedule`, …), converted and checked by their declared constraints."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"{owner}: must be a table of recipe fields; got {overrides!r}")
    optim_fields = {f.name for f in dataclasses.fields(OptimSpec)}
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)} - {"optim"}
    unknown = sorted(set(overrides) - optim_fields - recipe_fields)
    if unknown:
        raise unknown_field(owner, unknown[0], sorted(optim_fields | recipe_fields), "field")
    optim = apply_overrides(base.optim, {k: v for k, v in overrides.items() if k in optim_fields}, owner, "field")
    rest = {k: v for k, v in overrides.items() if k in recipe_fields}
    return apply_overrides(dataclasses.replace(base, optim=optim), rest, owner, "field")


class Batch(NamedTuple):
    """One training batch on the device. `forget` flags forget samples in mixed batches; `part`
    names the set it was drawn from ('forget', 'retain', 'union'; '' when not from a task)."""

    x: torch.Tensor
    y: torch.Tensor
    forget: torch.Tensor | None = None
    part: str = ""


# ---------------------------------------------------------------------------------------------
# Seeding


def make_generator(seed: int) -> torch.Generator:
    """The CPU generator that drives shuffles and augmentation of one seeded run."""
    return torch.Generator().manual_seed(int(seed))


# ---------------------------------------------------------------------------------------------
# Batches from tensors


def tensor_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    augment: Augment | None = None,
    forget: torch.Tensor | None = None,
    shuffle: bool = True,
    channels_last: bool = False,
) -> Iterator[Batch]:
    """Shuffled mini-batches of device-resident tensors, converted to float and augmented per batch."""
    n = len(y)
    order = torch.randperm(n, generator=generator).to(y.device) if shuffle else torch.arange(n, device=y.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        xb = to_float(x[idx])
        if augment is not None:
            xb = augment(xb, generator)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        yield Batch(xb, y[idx], None if forget is None else forget[idx])


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass
class TrainResult:
    epochs_run: int
    seconds: float
    last_loss: float
    history: list[dict] = field(default_factory=list)  # per epoch: lr, mean loss


LossFn = Callable[[nn.Module, Batch, int], torch.Tensor]  # (model, batch, epoch)
EpochBatches = Callable[[int], Iterable[Batch]]


OPTIMIZERS = ("sgd", "adam")


def make_optimizer(name: str, params: list, optim: OptimSpec) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}")


def train(
    model: nn.Module,
    *,
    epochs: int,
    batches: EpochBatches,
    loss_fn: LossFn,
    optim: OptimSpec,
    device: torch.device,
    precision: str = "fp32",
    params: Iterable | None = None,
    optimizer: str = "sgd",
    after_step: Callable[[], None] | None = None,
    after_epoch: Callable[[int, dict], bool | None] | None = None,
    train_mode: bool = True,
    progress: bool | None = None,
    desc: str = "train",
) -> TrainResult:
    """Run `epochs` epochs of SGD on `loss_fn(model, batch, epoch)` over `batches(epoch)`.

    params: parameters or param groups to optimise (default: all of `model`'s).
    optimizer: "sgd" (momentum and weight decay from `optim`) or "adam" (β 0.9 / 0.999, `optim`'s
    lr, schedule and L2 weight decay; no momentum): for learned input perturbations, one tensor.
    after_step: called after each optimiser step (e.g. SalUn restores frozen weights).
    after_epoch: called with (epoch, stats); returning True stops early (convergence stops).
    train_mode: False keeps the model in eval mode (frozen BN statistics, as forget vectors need).
    progress: tqdm bar per epoch; None shows it only on a terminal.
    """
    from tqdm.auto import tqdm

    precision = resolve_precision(precision, device)
    params = list(model.parameters()) if params is None else list(params)
    optimizer = make_optimizer(optimizer, params, optim)
    model.train(train_mode)
    history: list[dict] = []
    start = time.perf_counter()
    last_loss = float("nan")
    epochs_run = 0
    bar = tqdm(range(epochs), desc=desc, leave=False, disable=(None if progress is None else not progress))
    for epoch in bar:
        lr = lr_at(epoch, epochs, optim)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        total, count = torch.zeros((), device=device), 0
        for batch in batches(epoch):
            with autocast(device, precision):
                loss = loss_fn(model, batch, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            total += loss.detach().float()
            count += 1
        epochs_run = epoch + 1
        last_loss = float(total) / max(count, 1)
        stats = {"epoch": epoch, "lr": lr, "loss": last_loss}
        history.append(stats)
        bar.set_postfix(loss=f"{last_loss:.4f}")
        if after_epoch is not None and after_epoch(epoch, stats):
            break
    synchronize(device)
    return TrainResult(epochs_run, time.perf_counter() - start, last_loss, history)


def cross_entropy_loss(model: nn.Module, batch: Batch, epoch: int = 0) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch.x), batch.y)


def fit_supervised(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: Recipe,
    augment: Augment | None,
    seed: int,
    device: torch.device,
    progress: bool | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train `model` with cross-entropy on (x, y) by `recipe`: the original model and Retrain."""
    x, y = x.to(device), y.to(device)
    model.to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    generator = make_generator(seed)
    aug = augment if recipe.augment else None
    # Compiling costs ~100 s before the first step (ResNet-20, one CPU core) for 1.17x after it.
    net = torch.compile(model) if recipe.compile else model
    return train(
        net,
        epochs=recipe.epochs,
        batches=lambda epoch: tensor_batches(x, y, recipe.batch_size, generator, aug,
                                             channels_last=recipe.channels_last),
        loss_fn=cross_entropy_loss,
        optim=recipe.optim,
        device=device,
        precision=recipe.precision,
        progress=progress,
        desc=desc,
    )


@torch.inference_mode()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
             batch_size: int | None = None, prepare: Callable[[torch.Tensor], torch.Tensor] = to_float) -> float:
    """Top-1 accuracy in % of `model` on un-augmented images (used to check originals fit).

    prepare: turns a stored batch into model input (e.g. `data.eval_view` centre-crops).
    """
    model.eval()
    batch_size = batch_size or eval_batch_size(device)
    correct = 0
    with exact_fp32(device):
        for start in range(0, len(y), batch_size):
            xb = prepare(x[start : start + batch_size].to(device))
            correct += int((model(xb).argmax(1) == y[start : start + batch_size].to(device)).sum())
    return 100.0 * correct / max(len(y), 1)
