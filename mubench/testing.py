"""The contract kit: checks every method, metric, dataset and model must pass, for plugin authors
and for mubench's own suite (tests/test_contract.py runs them over every registry).

    from mubench.testing import check_dataset, check_method, check_metric, check_model
    check_method(MyMethod)          # builds a tiny digits class:0 task itself (seconds, CPU)
    check_metric("my_metric")       # on synthetic outputs: no model, no data
    check_dataset("my_data")        # loads it (LoadOptions or a data root) and checks its shape
    check_model("my_net")           # builds it for a small spec and runs a forward pass

Each raises AssertionError with a message that says what to fix; the pieces they run are public
too. Methods (STYLE lesson 15):

- the class has a docstring, a frozen `Params` dataclass whose every field has a default, a
  constraint (Interval / Options; a bool's type is its constraint) and a help line; a bad value of each constrained field is
  rejected with a ConfigError naming the method and the field;
- on a tiny task `unlearn` returns a `Predictor`; the same seed gives bit-identical logits
  (the global torch RNG is reseeded differently between the two runs, so all randomness must
  come from `task.generator()` / `task.seed`); the original model's state_dict is unchanged;
  the task carries no test split, and loading a dataset during `unlearn` fails the check.

Speed and resources (test_params; a required resource's own `synthetic` stand-in):
mubench/_kit_fixtures.py. Metrics,
datasets and models: see `check_metric`, `check_dataset` and `check_model` below.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from unittest import mock

import torch

from ._kit_fixtures import (
    TINY_EPOCHS,
    missing_resources,
    params_for_tests,
    state_hash,
    synthetic_context,
    synthetic_outputs,
    tensors_hash,
    tiny_task,
    with_resources,
)
from .errors import ConfigError
from .params import Interval, Options
from .predictor import Predictor
from .unlearning import UnlearnTask

__all__ = [  # the checks, the pieces they run, and the fixtures they run on (mubench/_kit_fixtures.py)
    "check_method", "check_metric", "check_dataset", "check_model",
    "check_params_class", "check_rejects_bad_values", "check_unlearn", "check_task_has_no_test_split",
    "bad_value", "state_hash", "no_dataset_access", "task_logits",
    "tiny_task", "missing_resources", "with_resources",
    "params_for_tests", "synthetic_outputs", "synthetic_context", "TINY_EPOCHS",
]


# ---------------------------------------------------------------------------------------------
# Params


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


# ---------------------------------------------------------------------------------------------
# Metrics (on `synthetic_context()` unless given one)




def check_metric(name: str, ctx=None):
    """Registered with a description; declares only registered metrics as `requires` and only
    MetricContext fields as `needs`; on `ctx` (default: `synthetic_context()`) returns None or a
    finite number (or a result with `.value`), the same twice whatever the global RNG, without
    editing its inputs; and without a field it needs it does not apply. Returns the result."""
    import math

    from .metrics import METRICS, MetricContext, applies, compute_metrics, metric_value

    entry = METRICS.entry(name)
    assert entry.description, f"metric {name!r}: give it a description (register_metric(..., description=...))"
    for dep in entry.meta.get("requires", ()):
        assert dep in METRICS, f"metric {name!r} requires {dep!r}, which is not a registered metric"
    fields = {f.name for f in dataclasses.fields(MetricContext)}
    needs = tuple(entry.meta.get("needs", ()))
    for need in needs:
        assert need in fields, f"metric {name!r} needs {need!r}, which is not a MetricContext field ({', '.join(sorted(fields))})"
    ctx = ctx if ctx is not None else synthetic_context()
    assert applies(name, ctx), f"metric {name!r}: the context lacks {needs}; pass a ctx that has them"
    before = tensors_hash(ctx)
    values, result = [], None
    for global_seed in (1234, 4321):
        torch.manual_seed(global_seed)
        result = compute_metrics(ctx, [name])[name]
        value = metric_value(result)
        assert value is None or (isinstance(value, (int, float)) and math.isfinite(value)), \
            f"metric {name!r} returned {value!r}; return a finite float, None where undefined, or a result with .value"
        values.append(value)
    assert values[0] == values[1], f"metric {name!r} differs between two calls ({values}); seed its randomness"
    assert tensors_hash(ctx) == before, f"metric {name!r} changed its inputs in place"
    for need in needs:
        assert not applies(name, dataclasses.replace(ctx, **{need: None})), \
            f"metric {name!r} should not apply without {need!r}"
    return result


# ---------------------------------------------------------------------------------------------
# Datasets and models


def check_dataset(name: str, options=None, root=None):
    """Loads (twice, identically) into an ImageData of the documented shape: (N, C, H, W) uint8,
    or float in [0, 1]; int64 labels in [0, K); distinct class names; per-channel mean/std;
    evaluation crops of `eval_size`; an augmentation that keeps a batch's shape. `root` is a data
    root (for files a test wrote), `options` a full LoadOptions. Returns the data."""
    from .augment import Augment
    from .data import DATASETS, ImageData, LoadOptions, eval_view, load_dataset
    from .store import stable_hash

    if not name.startswith("imagefolder:"):
        assert DATASETS.entry(name).description, f"dataset {name!r}: give it a description"
    options = options or LoadOptions(data_root=None if root is None else str(root))
    data = load_dataset(name, options)
    assert isinstance(data, ImageData), f"dataset {name!r}: the loader must return mubench.data.ImageData"
    k, c = data.num_classes, data.train_x.shape[1]
    assert k >= 2 and len(set(data.classes)) == k, f"dataset {name!r}: needs >= 2 distinct class names; got {data.classes}"
    assert len(data.mean) == len(data.std) == c and all(s > 0 for s in data.std), \
        f"dataset {name!r}: mean/std need one positive value per channel ({c})"
    assert isinstance(data.augment, Augment), f"dataset {name!r}: augment must be a mubench.augment.Augment"
    for part in ("train", "test"):
        x, y = getattr(data, f"{part}_x"), getattr(data, f"{part}_y")
        where = f"dataset {name!r} {part}"
        assert x.ndim == 4 and x.shape[1] == c, f"{where}: images must be (N, {c}, H, W); got {tuple(x.shape)}"
        assert min(x.shape[2:]) >= data.eval_size, f"{where}: images smaller than eval_size {data.eval_size}"
        assert x.dtype == torch.uint8 or (x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1), \
            f"{where}: images must be uint8, or float32 in [0, 1]; got {x.dtype}"
        assert y.dtype == torch.int64 and y.ndim == 1 and len(y) == len(x) > 0, \
            f"{where}: labels must be a non-empty (N,) int64 tensor matching the images"
        assert 0 <= int(y.min()) and int(y.max()) < k, f"{where}: labels must lie in [0, {k})"
    batch = eval_view(data, data.train_x[:4])
    assert tuple(batch.shape[1:]) == data.input_shape, f"dataset {name!r}: eval_view gives {tuple(batch.shape)}"
    augmented = data.augment(batch, torch.Generator().manual_seed(0))
    assert augmented.shape == batch.shape, f"dataset {name!r}: the augmentation changes the batch shape"
    again = load_dataset(name, options)
    assert stable_hash(again.fingerprint()) == stable_hash(data.fingerprint()) and torch.equal(again.train_x, data.train_x), \
        f"dataset {name!r} loads differently twice; keys and splits need a deterministic loader"
    return data


def check_model(name: str, spec=None) -> torch.nn.Module:
    """Builds for a small spec (default: a grey and a colour one), the same weights from the same
    global seed (Retrain reuses the original's initialisation; checked on the first spec), and
    maps (2, C, H, W) to finite (2, K) logits. Returns the last model built."""
    from .models import MODELS, ModelSpec, build_model

    entry = MODELS.entry(name)
    assert entry.description, f"model {name!r}: give it a description"
    size = max(32, entry.meta.get("min_size", 1))
    specs = [spec] if spec is not None else [ModelSpec(3, ch, size, (0.5,) * ch, (0.25,) * ch) for ch in (1, 3)]
    for i, s in enumerate(specs):
        torch.manual_seed(0)
        model = build_model(name, s)
        if i == 0:
            torch.manual_seed(0)
            assert state_hash(build_model(name, s)) == state_hash(model), \
                f"model {name!r}: two builds after torch.manual_seed(0) differ; initialise from the global RNG only"
        x = torch.rand(2, s.in_channels, s.image_size, s.image_size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            out = model.eval()(x)
        assert tuple(out.shape) == (2, s.num_classes), \
            f"model {name!r}: logits of shape {tuple(out.shape)}, expected (2, {s.num_classes})"
        assert torch.isfinite(out).all(), f"model {name!r} produced non-finite logits"
    return model
