"""Contract checks every unlearning method must pass: a kit for plugin authors and our own tests.

    from tests.method_checks import check_method   # or copy this file next to your plugin
    check_method(MyMethod)                         # builds a tiny digits class:0 task itself

`check_method` runs everything below and raises AssertionError with a message that says what
to fix. The checks (STYLE lesson 15):

- the class has a docstring, a frozen `Params` dataclass whose every field has a default, a
  constraint (Interval / Options; a bool's type is its constraint) and a help line; a bad value of each constrained field is
  rejected with a ConfigError naming the method and the field;
- on a tiny task `unlearn` returns a `Predictor`; the same seed gives bit-identical logits
  (the global torch RNG is reseeded differently between the two runs, so all randomness must
  come from `task.generator()` / `task.seed`); the original model's state_dict is unchanged;
  the task carries no test split, and loading a dataset during `unlearn` fails the check.

Speed: runs use the class's `test_params` (small overrides, e.g. one epoch); a method without
them runs with `epochs=1` when it has an `epochs` field. Methods that declare
`requires = ("fv_bank",)` get a synthetic bank (K small random vectors of the input's shape),
enough to exercise the contract; other unknown requirements must be supplied in
`task.resources`, else `missing_resources` names them (our tests skip such methods).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import typing
import warnings
from unittest import mock

import torch

from mubench.errors import ConfigError
from mubench.params import Interval, Options
from mubench.predictor import Predictor
from mubench.unlearning import UnlearnTask

TINY_EPOCHS = 8  # the kit's own original model: enough for digits to reach ~97% train accuracy


# ---------------------------------------------------------------------------------------------
# A tiny task (for plugin authors without the test suite's fixtures)


@functools.lru_cache(maxsize=2)
def _tiny_original(seed: int):
    from mubench.pipeline import cached_dataset, get_original
    from mubench.presets import preset_for

    data = cached_dataset("digits")
    recipe = dataclasses.replace(preset_for("digits").recipe, epochs=TINY_EPOCHS, precision="fp32")
    with warnings.catch_warnings():  # short on purpose: the contract needs a model, not a fit one
        warnings.filterwarnings("ignore", message=".*under-fits its training set")
        original = get_original(None, data, "small_cnn", recipe, seed, torch.device("cpu"), progress=False)
    return data, recipe, original.model


def tiny_task(seed: int = 0, scenario: str = "class:0", resources: dict | None = None) -> UnlearnTask:
    """A digits task on CPU with a small CNN trained for a few epochs (seconds, cached)."""
    from mubench.pipeline import build_task, get_split

    data, recipe, original = _tiny_original(seed)
    split = get_split(None, data, scenario, seed)
    return build_task(data, split, original, "small_cnn", recipe, seed, torch.device("cpu"),
                      precision="fp32", resources=resources, progress=False)


def synthetic_fv_bank(task: UnlearnTask, scale: float = 0.05) -> torch.Tensor:
    """K random class-wise vectors (K, C, H, W): shape-correct, seeded, meaningless."""
    g = torch.Generator().manual_seed(task.seed + 17)
    return torch.randn((task.num_classes, *task.input_shape), generator=g).to(task.device) * scale


RESOURCE_BUILDERS = {"fv_bank": synthetic_fv_bank}


def missing_resources(method_cls, task: UnlearnTask) -> list[str]:
    """Required resources the task lacks and the kit cannot build."""
    return [r for r in getattr(method_cls, "requires", ()) if r not in task.resources
            and r not in RESOURCE_BUILDERS]


def with_resources(method_cls, task: UnlearnTask) -> UnlearnTask:
    """The task with the method's required resources, synthesised where the kit knows how."""
    resources = dict(task.resources)
    for r in getattr(method_cls, "requires", ()):
        if r not in resources and r in RESOURCE_BUILDERS:
            resources[r] = RESOURCE_BUILDERS[r](task)
    return dataclasses.replace(task, resources=resources)


# ---------------------------------------------------------------------------------------------
# Params


def params_for_tests(method_cls, overrides: dict | None = None):
    """The method's Params with its `test_params` (or epochs=1) and then `overrides` applied."""
    base = dict(getattr(method_cls, "test_params", {}) or {})
    if not base and "epochs" in {f.name for f in dataclasses.fields(method_cls.Params)}:
        base = {"epochs": 1}
    return method_cls.params_from({**base, **(overrides or {})})


def check_params_class(method_cls) -> None:
    """Docstring, frozen Params, and per field: a default, a constraint and a help line."""
    name = method_cls.name or method_cls.__name__
    assert (method_cls.__doc__ or "").strip(), f"method {name!r}: add a docstring (source, loss, defaults)"
    params_cls = method_cls.Params
    assert dataclasses.is_dataclass(params_cls), f"method {name!r}: Params must be a dataclass"
    assert params_cls.__dataclass_params__.frozen, \
        f"method {name!r}: declare Params with @dataclass(frozen=True) (params are hashed and shipped to workers)"
    types = typing.get_type_hints(params_cls)
    for f in dataclasses.fields(params_cls):
        assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, \
            f"method {name!r}: field {f.name!r} needs a default"
        # A bool is constrained by its type alone; every other field states what it accepts.
        assert f.metadata.get("check") is not None or types[f.name] is bool, \
            f"method {name!r}: field {f.name!r} needs a constraint: param(default, Interval(...) or Options(...), help)"
        assert f.metadata.get("help"), f"method {name!r}: field {f.name!r} needs a help line"
    params_cls()  # the defaults construct


def bad_value(check, tp=None):
    """A value the constraint (or a bool's type) rejects, or None when everything passes."""
    if tp is bool:
        return "maybe"
    if isinstance(check, Options):
        return "not-one-of-the-choices"
    if isinstance(check, Interval):
        if check.low is not None:
            return check.low if check.closed in ("right", "neither") else check.low - 1
        if check.high is not None:
            return check.high if check.closed in ("left", "neither") else check.high + 1
    return None


def check_rejects_bad_values(method_cls) -> None:
    """Each constrained field rejects a bad value with a ConfigError naming method and field."""
    name = method_cls.name or method_cls.__name__
    types = typing.get_type_hints(method_cls.Params)
    for f in dataclasses.fields(method_cls.Params):
        bad = bad_value(f.metadata.get("check"), types[f.name])
        if bad is None:
            continue
        try:
            method_cls.params_from({f.name: bad})
        except ConfigError as err:
            assert repr(f.name) in str(err) and name in str(err), \
                f"method {name!r}: the error for {f.name}={bad!r} should name the method and the field; got: {err}"
        else:
            raise AssertionError(f"method {name!r}: {f.name}={bad!r} violates its constraint but was accepted")


# ---------------------------------------------------------------------------------------------
# Behaviour on a tiny task


def state_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _refuse_dataset_loads(*args, **kwargs):
    raise AssertionError("a method loaded a dataset during unlearn(): methods see only the task's "
                         "forget/retain tensors, never the test split")


@contextlib.contextmanager
def no_dataset_access():
    """Best effort: loading any dataset through mubench while inside fails."""
    with mock.patch("mubench.data.load_dataset", _refuse_dataset_loads), \
            mock.patch("mubench.pipeline.load_dataset", _refuse_dataset_loads), \
            mock.patch("mubench.pipeline.cached_dataset", _refuse_dataset_loads):
        yield


def task_logits(predictor: Predictor, task: UnlearnTask) -> torch.Tensor:
    x = torch.cat([task.forget_x, task.retain_x])
    return predictor.logits(x, task.device, prepare=task.prepare)


def check_task_has_no_test_split(task: UnlearnTask) -> None:
    names = [f.name for f in dataclasses.fields(task)] + list(task.resources)
    assert not any("test" in n for n in names), f"the task must not carry test data; fields: {names}"


def check_unlearn(method_cls, task: UnlearnTask, params=None) -> Predictor:
    """Predictor returned, deterministic per seed, original untouched, no dataset reads."""
    name = method_cls.name or method_cls.__name__
    params = params if params is not None else params_for_tests(method_cls)
    task = with_resources(method_cls, task)
    check_task_has_no_test_split(task)
    before = state_hash(task.original)
    outputs = []
    for global_seed in (1234, 4321):  # unseeded global randomness would show up as a difference
        torch.manual_seed(global_seed)
        with no_dataset_access():
            predictor = method_cls(params).unlearn(task)
        assert isinstance(predictor, Predictor), \
            f"method {name!r}: unlearn() must return a mubench.predictor.Predictor, got {type(predictor).__name__}"
        assert state_hash(task.original) == before, \
            f"method {name!r} changed the original model in place; train a copy (predictor.frozen_copy)"
        outputs.append(task_logits(predictor, task))
    assert torch.isfinite(outputs[0]).all(), f"method {name!r} produced non-finite logits"
    assert torch.equal(outputs[0], outputs[1]), \
        f"method {name!r}: two runs with the same seed differ; draw randomness from task.generator()"
    return predictor


def check_method(method_cls, task: UnlearnTask | None = None, params=None) -> Predictor:
    """All contract checks; returns the Predictor of the last run for further assertions."""
    check_params_class(method_cls)
    check_rejects_bad_values(method_cls)
    task = task if task is not None else tiny_task()
    missing = missing_resources(method_cls, task)
    if missing:
        raise AssertionError(f"method {method_cls.name!r} needs task.resources {missing}; supply them")
    return check_unlearn(method_cls, task, params)
