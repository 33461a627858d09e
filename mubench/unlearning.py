"""The one interface: every method turns an `UnlearnTask` into a `Predictor`.

A method is a small class with a registry `name`, a frozen `Params` dataclass (defaults and
constraints per field, see params.py), a `version` (bump it when the algorithm changes: it is
part of every job key) and `unlearn(task)`. Epoch-based methods subclass `EpochMethod` and only
say which batches an epoch sees and the per-batch loss; the shared loop in training.py does the
rest. A method never touches files, the CLI, other methods, or the test split (the task does
not carry it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from .augment import Augment
from .params import Interval, Options, apply_overrides, check_params, param
from .predictor import Predictor, frozen_copy
from .registry import Registry
from .scenarios import Scenario
from .search import Choice, LogUniform
from .training import SCHEDULES, Batch, OptimSpec, Recipe, make_generator, tensor_batches, train

METHODS = Registry("method")


def selectable_methods(patterns) -> list[str]:
    """The methods `--methods` patterns select ('all' included), calibration rows left out."""
    return [m for m in METHODS.select(patterns) if not METHODS.get(m).calibration]


def calibration_methods() -> list[str]:
    """The calibration rows every cell gets, in row order."""
    return sorted((m for m in METHODS.names() if METHODS.get(m).calibration), key=lambda m: METHODS.get(m).rank)


def register_method(name: str):
    """Class decorator: validate the method's shape, then register it under `name`."""

    def decorate(cls):
        _check_method_class(cls, name)
        cls.name = name
        METHODS.add(name, cls)
        return cls

    return decorate


def _check_method_class(cls, name: str) -> None:
    if not callable(getattr(cls, "unlearn", None)):
        raise TypeError(f"method {name!r} ({cls.__qualname__}) has no unlearn(task) method")
    params_cls = getattr(cls, "Params", None)
    if params_cls is None or not dataclasses.is_dataclass(params_cls):
        raise TypeError(f"method {name!r} needs a `Params` dataclass of hyper-parameters")
    for f in dataclasses.fields(params_cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise TypeError(f"method {name!r}: hyper-parameter {f.name!r} has no default")
    check_params(params_cls(), f"method {name!r} defaults")


@dataclass
class UnlearnTask:
    """Everything a method may use. The test split is deliberately absent."""

    original: nn.Module  # the trained original model (eval mode); never modify it in place
    forget_x: torch.Tensor  # stored images (uint8 or float) on `device`
    forget_y: torch.Tensor
    retain_x: torch.Tensor
    retain_y: torch.Tensor
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W) of a model input
    augment: Augment  # the dataset's training augmentation
    scenario: Scenario
    seed: int
    device: torch.device
    recipe: Recipe  # how the original was trained (Retrain reuses it)
    build_model: Callable[[], nn.Module]  # a fresh, untrained model of the original's architecture
    prepare: Callable[[torch.Tensor], torch.Tensor]  # stored batch → un-augmented float input
    precision: str = "auto"
    resources: dict[str, Any] = field(default_factory=dict)  # upstream artifacts, e.g. "fv_bank"
    progress: bool | None = None
    # Step t of a sequential chain: the stored images of requests 1..t−1 (None outside chains,
    # and at step 1). Methods learn from request t alone unless they choose otherwise.
    earlier_forget_x: torch.Tensor | None = None
    earlier_forget_y: torch.Tensor | None = None

    def generator(self, offset: int = 0) -> torch.Generator:
        """The seeded CPU generator for this task's shuffles and augmentation."""
        return make_generator(self.seed * 1_000_003 + offset)

    def batches(self, part: str, batch_size: int, generator: torch.Generator, augment: bool = True,
                labels: torch.Tensor | None = None) -> Iterable[Batch]:
        """Shuffled batches of 'forget', 'retain' or 'union' (forget ∪ retain with flags).

        labels: replacement labels for the chosen part (random-label methods).
        """
        aug = self.augment if augment else None
        if part == "forget":
            x, y, flags = self.forget_x, self.forget_y, None
        elif part == "retain":
            x, y, flags = self.retain_x, self.retain_y, None
        elif part == "union":
            x = torch.cat([self.forget_x, self.retain_x])
            y = torch.cat([self.forget_y, self.retain_y])
            flags = torch.cat([torch.ones(len(self.forget_y), dtype=torch.bool, device=y.device),
                               torch.zeros(len(self.retain_y), dtype=torch.bool, device=y.device)])
        else:
            raise ValueError(f"part must be forget, retain or union; got {part!r}")
        if labels is not None:
            y = labels
        batches = tensor_batches(x, y, batch_size, generator, aug, flags)
        if aug is not None and aug.kind == "rrc_flip":  # already at the model's input size
            return (b._replace(part=part) for b in batches)
        # Images stored larger than the model input (ImageFolder data) get the centre crop.
        return (Batch(self.prepare(b.x), b.y, b.forget, part) for b in batches)


class Method:
    """Base class of unlearning methods (see the module docstring)."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Params: ClassVar[type]
    requires: ClassVar[tuple[str, ...]] = ()  # resources (mubench.resources) the method needs, e.g. "fv_bank"
    test_params: ClassVar[dict] = {}  # small overrides for the contract tests (mubench/testing.py)
    # How reports show the method: its label, its colour in figures, its place in row order
    # (lower first; unknown methods after the built-ins, by name).
    label: ClassVar[str] = ""
    color: ClassVar[str] = ""
    rank: ClassVar[int] = 1000
    # Per-dataset defaults: {dataset: {scenario kind or "*": {field: value}}}, applied on top of
    # Params() and below the user's overrides (the dataset's scale differs from SPEC's CIFAR-10).
    presets: ClassVar[dict] = {}
    # A calibration row (the untouched original, an independent Retrain): the planner adds it to
    # every cell, `--methods` never selects it and `tune` never tunes it (`selectable_methods`).
    calibration: ClassVar[bool] = False
    # Another method whose [methods.NAME] settings this one runs with, under its own on top (the
    # independent Retrain takes Retrain's, so `--set retrain.epochs=2` shortens both).
    settings_from: ClassVar[str | None] = None

    @classmethod
    def dataset_defaults(cls, dataset: str, scenario_kind: str) -> dict:
        """This method's preset overrides for one dataset and scenario kind ("*" applies to all)."""
        table = cls.presets.get(dataset, {})
        return {**table.get("*", {}), **table.get(scenario_kind, {})}

    @classmethod
    def resolved(cls, params, scenario_kind: str):
        """`params` as `unlearn` uses them on a scenario of this kind, defaults that depend on the
        scenario filled in (the forget vector's β); `run --dry-run` prints this. Identity here."""
        return params

    def __init__(self, params=None):
        self.params = params if params is not None else self.Params()

    @classmethod
    def params_from(cls, overrides: dict | None = None, base=None):
        """Params from TOML values / `--set` strings; errors name the method and the field."""
        return apply_overrides(base if base is not None else cls.Params(), dict(overrides or {}),
                               f"method {cls.name!r}")

    def unlearn(self, task: UnlearnTask) -> Predictor:  # pragma: no cover - abstract
        raise NotImplementedError


def lr_param(default: float):
    """The `lr` field with another default (methods redeclare it to change SPEC §3's value)."""
    return param(default, Interval(0, None, "neither"), "learning rate (constant unless schedule says)")


def epochs_param(default: int, what: str = "passes over the method's data"):
    """The `epochs` field with another default and a help line saying what one epoch is."""
    return param(default, Interval(1, None), what)


@dataclass(frozen=True)
class EpochParams:
    """Hyper-parameters shared by the SGD-based baselines (SPEC §3 defaults for CIFAR-10)."""

    # What `mubench tune` searches (SPEC §3): lr on a log range, the epoch budget from a short list.
    # The lr range runs from the lr at which UA first moves to the lr at which RA collapses, measured
    # by benchmarks/search_pilot.py on tuning seeds (docs/tuning.md "Search spaces"; it was
    # [1e-3, 0.3], whose lower half did nothing on digits).
    SEARCH: ClassVar[dict] = {"lr": LogUniform(1e-2, 1.0), "epochs": Choice((3, 5, 10))}

    lr: float = lr_param(0.01)
    epochs: int = epochs_param(10)
    batch_size: int = param(256, Interval(1, None), "mini-batch size")
    momentum: float = param(0.9, Interval(0, 1), "SGD momentum")
    weight_decay: float = param(5e-4, Interval(0, None), "SGD weight decay")
    schedule: str = param("constant", Options(SCHEDULES), "lr schedule over the method's epochs")


class EpochMethod(Method):
    """A method that trains a copy of the original with SGD on its own per-batch loss.

    Subclasses write `loss(model, batch, epoch)` (`batch.part` says which set a batch came
    from); optionally `batches(task, epoch, generator)` (default: the retain set) and the hooks
    `setup(task, model)`, `param_groups(model)`, `after_step(model)`, `info()` (facts for the
    record) and `teardown()` (release what setup built; runs even when training fails).
    """

    Params: ClassVar[type] = EpochParams

    def loss(self, model: nn.Module, batch: Batch, epoch: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def batches(self, task: UnlearnTask, epoch: int, generator: torch.Generator) -> Iterable[Batch]:
        return task.batches("retain", self.params.batch_size, generator)

    def setup(self, task: UnlearnTask, model: nn.Module) -> None:
        """Called once before training (e.g. SalUn computes its saliency mask here)."""

    def param_groups(self, model: nn.Module) -> Iterable:
        return model.parameters()

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimiser step."""

    def info(self) -> dict:
        """Method-specific facts for the record (e.g. SalUn's mask size), read after training."""
        return {}

    def teardown(self) -> None:
        """Called once after training, also when it raised (e.g. remove hooks, drop a teacher)."""

    def optim(self) -> OptimSpec:
        p = self.params
        check_params(p, f"method {self.name!r}")  # params built by hand skip apply_overrides
        return OptimSpec(lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay, schedule=p.schedule)

    def unlearn(self, task: UnlearnTask) -> Predictor:
        model = frozen_copy(task.original).to(task.device)
        for p in model.parameters():
            p.requires_grad_(True)
        try:
            self.setup(task, model)
            result = self._train(task, model)
            info = self.info()
        finally:
            self.teardown()
        return Predictor(model, info={"epochs_run": result.epochs_run, "final_loss": result.last_loss, **info})

    def _train(self, task: UnlearnTask, model: nn.Module):
        generator = task.generator()
        return train(
            model,
            epochs=self.params.epochs,
            batches=lambda epoch: self.batches(task, epoch, generator),
            loss_fn=self.loss,
            optim=self.optim(),
            device=task.device,
            precision=task.precision,
            params=self.param_groups(model),
            after_step=lambda: self.after_step(model),
            progress=task.progress,
            desc=self.name,
        )
