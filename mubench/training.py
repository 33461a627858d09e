"""The one training loop: original models, Retrain and every epoch-based unlearning method.

A caller supplies what differs — which batches an epoch sees and the per-batch loss — and the
loop owns the rest: SGD with momentum and weight decay, the lr schedule, batched tensor
augmentation on the device, seeding, bf16 autocast, channels-last, timing and progress.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from .augment import Augment
from .data import to_float
from .errors import ConfigError  # user input (config files, --set): one line, exit 2
from .params import Interval, Options, apply_overrides, check_params, param, unknown_field

SCHEDULES = ("constant", "multistep", "exponential", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")


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
# Devices, precision, seeding


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` runs bf16 natively. CUDA: compute capability 8.0 (Ampere) or newer;
    torch's default check also counts pre-Ampere GPUs that only emulate bf16 (slowly)."""
    if device.type == "cuda":
        if torch.cuda.get_device_capability(device) < (8, 0):
            return False
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch before 2.3 has no emulation flag and answers for native bf16
            return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU exposes AMX tiles, which oneDNN uses for bf16 convolutions and matmuls.

    Asked of torch (its cpuinfo also checks that the OS enabled the tile state), not of
    /proc/cpuinfo: a guest can list the flag without the kernel granting the registers.
    """
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' → bf16 where the hardware runs it fast, else fp32.

    GPUs: bf16 only where supported natively (compute capability ≥ 8.0; never emulated). CPUs: bf16 only with AMX. On a 2-core guest with AMX
    (BENCHMARKS.md §1) bf16 autocast trains small_cnn 1.8x, ResNet-20 1.7x and ResNet-18 2.6x
    faster than fp32 channels-last, runs the default grid 2.07x faster, and keeps the digits
    originals' test accuracy; without AMX, oneDNN's avx512_bf16 kernels are slower than fp32 for
    every model (ResNet-20 0.85-0.98x, ResNet-18 0.7x), so there it stays fp32. Evaluation
    always runs in fp32 (predictor.py), whatever the training precision.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if bf16_supported(device) else "fp32"
    if device.type == "cpu":
        return "bf16" if bf16_supported(device) and cpu_has_amx_bf16() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """The autocast context of a resolved precision (a no-op for fp32).

    Models keep their input path (normalisation and first layer) in fp32 inside it
    (`models.Classifier`), so an input perturbation is learned and applied unrounded.
    """
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# cuBLAS is deterministic only with a fixed workspace, chosen when its handle is created (the
# first CUDA matmul of the process), so the default is set on import, before any CUDA work.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def exact_fp32(device: torch.device | str):
    """Evaluation math (SPEC §5): on CUDA, fp32 matmuls and convolutions without TF32 and
    deterministic kernels where torch has them (others warn instead of failing); elsewhere a
    no-op. The global flags are restored on exit, so training keeps TF32 where it is on."""
    if torch.device(device).type != "cuda":
        yield
        return
    cuda, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (cuda.allow_tf32, cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cuda.allow_tf32, cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = False, False, True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        cuda.allow_tf32, cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = saved[:4]
        torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])


# Images per inference batch. On a CPU small batches win: an activation working set that stays
# in cache runs 1.5-2x faster than batch 2048 (small CNN 28 px: 4100 vs 2070 images/s; ResNet-20
# 32 px: 810 vs 366; one core, benchmarks/evaluation.py). GPUs want large batches.
EVAL_BATCH = {"cpu": 128}
EVAL_BATCH_DEFAULT = 2048


def eval_batch_size(device: torch.device | str) -> int:
    """The inference batch size for a device kind (see EVAL_BATCH)."""
    return EVAL_BATCH.get(torch.device(device).type, EVAL_BATCH_DEFAULT)


def make_generator(seed: int) -> torch.Generator:
    """The CPU generator that drives shuffles and augmentation of one seeded run."""
    return torch.Generator().manual_seed(int(seed))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    after_step: Callable[[], None] | None = None,
    after_epoch: Callable[[int, dict], bool | None] | None = None,
    train_mode: bool = True,
    progress: bool | None = None,
    desc: str = "train",
) -> TrainResult:
    """Run `epochs` epochs of SGD on `loss_fn(model, batch, epoch)` over `batches(epoch)`.

    params: parameters or param groups to optimise (default: all of `model`'s).
    after_step: called after each optimiser step (e.g. SalUn restores frozen weights).
    after_epoch: called with (epoch, stats); returning True stops early (convergence stops).
    train_mode: False keeps the model in eval mode (frozen BN statistics, as forget vectors need).
    progress: tqdm bar per epoch; None shows it only on a terminal.
    """
    from tqdm.auto import tqdm

    precision = resolve_precision(precision, device)
    params = list(model.parameters()) if params is None else list(params)
    optimizer = torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
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
