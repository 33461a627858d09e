"""The typed jobs of a run's graph (DESIGN.md, "a graph of typed jobs").

    Original(dataset, model, recipe, seed, compute) → model state         artifacts/original
    Split(dataset, scenario, seed)                  → index arrays        artifacts/split
    Resource(name, settings, original)              → e.g. the fv bank    artifacts/<name>
    Unlearn(method, params, original, split, res.)  → the predictor       artifacts/predictor
    Evaluate(unlearn, reference, settings)          → one JSON record     records/method

Each job is a small frozen dataclass of plain data (so every backend can pickle it) whose
`key` hashes its own fields — minus `IGNORE`, fields that do not change its output — with its
dependencies' keys and the job type's code `version`, and nothing else. So evaluation
settings reach Evaluate keys only (adding a metric re-runs evaluation, never training), and a
changed hyper-parameter invalidates exactly the jobs downstream of it. `run(ctx)` computes the
job's output in a worker and writes it to the store (artifact first, record last, both
atomically); `done(store)` says whether an "ok" record (and artifact) is already there.
The work itself lives in pipeline.py (data, splits, originals, tasks) and evaluation.py.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

from .data import LoadOptions
from .errors import MubenchError
from .pipeline import build_task, cached_dataset, get_original, get_split, recipe_from_dict
from .predictor import Predictor
from .resources import RESOURCES, ResourceContext
from .store import Store, stable_hash


@dataclass(frozen=True)
class RunContext:
    """Where and how a worker runs a job (never part of a key)."""

    store: Store
    device: Any  # torch.device
    n_jobs: int = 1  # jobs sharing the machine while this one runs (recorded beside runtimes)
    progress: bool | None = False


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


@dataclass(frozen=True)
class Job:
    """Base of the typed jobs: key, dependencies, label, done."""

    kind: ClassVar[str] = ""  # record/artifact kind in the store
    version: ClassVar[str] = "1"  # bump when the job's computation changes its output
    IGNORE: ClassVar[tuple[str, ...]] = ()  # fields that do not change the output (display only)

    def deps(self) -> tuple[Job, ...]:
        out: list[Job] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Job):
                out.append(value)
            elif isinstance(value, tuple):
                out.extend(v for v in value if isinstance(v, Job))
        return tuple(out)

    def optional(self) -> tuple[Job, ...]:
        """Dependencies whose failure leaves this job's own output intact: it still runs and
        records what it could not compute (an Evaluate without its attacks' models)."""
        return ()

    def key_fields(self) -> dict:
        """What the key hashes: own fields (dependencies by their keys) minus `IGNORE`."""
        out: dict[str, Any] = {"job": type(self).__name__, "v": self.version}
        for f in dataclasses.fields(self):
            if f.name in self.IGNORE:
                continue
            value = getattr(self, f.name)
            if isinstance(value, Job):
                value = value.key
            elif isinstance(value, tuple) and any(isinstance(v, Job) for v in value):
                value = [v.key for v in value]
            out[f.name] = value
        return out

    @cached_property
    def key(self) -> str:
        return stable_hash(self.key_fields())

    def computes_with(self) -> dict | None:
        """The compute signature its key holds (device class, CPU threads), from the Original it
        depends on; None for index arithmetic (splits), whose output no device changes."""
        return next((c for c in (d.computes_with() for d in self.deps()) if c is not None), None)

    @property
    def label(self) -> str:
        return self.kind

    def done(self, store: Store) -> bool:
        record = store.read_record(self.kind, self.key)
        return record is not None and record.get("status", "ok") == "ok" and self._has_output(store)

    def _has_output(self, store: Store) -> bool:
        return store.has_artifact(self.kind, self.key)

    def run(self, ctx: RunContext) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class DataRef:
    """A dataset as jobs name it: its registry name, how it is loaded, and its content hash."""

    name: str
    options: dict = field(default_factory=dict)  # data.LoadOptions fields (not in keys: `data` is)
    data: str = ""  # pipeline.data_key of the loaded dataset

    def load(self):
        return cached_dataset(self.name, LoadOptions(**self.options))


@dataclass(frozen=True)
class Original(Job):
    """The original model of (dataset, model, recipe, seed); `mubench train` and `run` share it."""

    kind: ClassVar[str] = "original"
    dataset: str
    data: str  # content hash of the dataset
    model: str
    arch: str  # hash of the architecture's structure (editing a model retrains)
    recipe: dict  # training.Recipe fields, precision resolved
    seed: int
    compute: dict  # device.compute_signature: device class (and CPU threads) the run computes with
    data_options: dict = field(default_factory=dict)
    IGNORE: ClassVar[tuple[str, ...]] = ("data_options",)

    @property
    def ref(self) -> DataRef:
        return DataRef(self.dataset, self.data_options, self.data)

    def computes_with(self) -> dict | None:
        return self.compute

    @property
    def label(self) -> str:
        return f"original {self.dataset}/{self.model}/seed {self.seed}"

    def load(self, ctx: RunContext):
        """The trained model (from the store, or trained now)."""
        return self._fit(ctx, self.ref.load())

    def _fit(self, ctx: RunContext, data):
        return get_original(ctx.store, data, self.model, recipe_from_dict(self.recipe), self.seed,
                            ctx.device, progress=ctx.progress, key=self.key)

    def _fit_on_training_subset(self, ctx: RunContext, indices):
        """The recipe trained on the listed training images only (shadow and reference models)."""
        import numpy as np
        import torch

        data = self.ref.load()
        idx = torch.from_numpy(np.sort(np.asarray(indices, dtype=np.int64)))
        return self._fit(ctx, dataclasses.replace(data, train_x=data.train_x[idx], train_y=data.train_y[idx]))

    def predictor(self, ctx: RunContext):
        """The trained model as a Predictor (what an attack audits)."""
        return Predictor(self.load(ctx).model)

    def run(self, ctx: RunContext) -> dict:
        return {**self.load(ctx).info, "status": "ok", "kind": "original"}


def original_fields(original: Original) -> dict:
    """Every field `Original` declares, from `original`: what a model trained like it (a shadow,
    reference or cell model) copies, so a field added to Original reaches their keys too."""
    return {f.name: getattr(original, f.name) for f in dataclasses.fields(Original)}


@dataclass(frozen=True)
class Split(Job):
    """The forget/retain/test indices of (dataset, scenario, seed): cheap, run by the planner."""

    kind: ClassVar[str] = "split"
    dataset: str
    data: str
    scenario: str  # canonical scenario text
    seed: int
    data_options: dict = field(default_factory=dict)
    scorer: Original | None = None  # hardness-stratified scenarios: the original whose features choose the forget set
    IGNORE: ClassVar[tuple[str, ...]] = ("data_options",)

    def key_fields(self) -> dict:
        fields = super().key_fields()
        if self.scorer is None:  # the keys of every other split are as before
            fields.pop("scorer")
        return fields

    def done(self, store: Store) -> bool:
        return store.has_artifact("split", self.key)

    def load(self, store: Store):
        """The stored split (a hardness-stratified one is made by `run`, which has the model)."""
        if self.scorer is not None and not store.has_artifact("split", self.key):
            raise MubenchError(f"the split of {self.scenario} ({self.key}) is not in {store.root}; run it again")
        return get_split(store, self.ref.load(), self.scenario, self.seed, key=self.key)

    @property
    def ref(self) -> DataRef:
        return DataRef(self.dataset, self.data_options, self.data)

    def run(self, ctx: RunContext) -> dict:
        scores, data = None, self.ref.load()
        if self.scorer is not None:
            from .data import eval_view
            from .hardness import atypicality_scores, entanglement_score, penultimate_features

            features = penultimate_features(self.scorer.load(ctx).model, data.train_x,
                                            functools.partial(eval_view, data), ctx.device)
            scores = lambda: atypicality_scores(features, data.train_y)  # noqa: E731
        split = get_split(ctx.store, data, self.scenario, self.seed, key=self.key, scores=scores)
        record = {"key": self.key, "kind": "split", "status": "ok", "split_hash": split.hash}
        if self.scorer is not None:  # what a reader checks the stratum by (Evaluate copies it: `forget_es`)
            record["forget_es"] = entanglement_score(features, split.forget)
            ctx.store.write_record("split", self.key, record)
        return record


@dataclass(frozen=True)
class Resource(Job):
    """An artifact a method needs beyond the original (registered in mubench.resources)."""

    kind: ClassVar[str] = "resource"
    name: str
    settings: dict
    resource_version: str
    original: Original

    @property
    def label(self) -> str:
        o = self.original
        return f"{self.name} {o.dataset}/{o.model}/seed {o.seed}"

    def _has_output(self, store: Store) -> bool:
        return store.has_artifact(self.name, self.key)

    def done(self, store: Store) -> bool:
        record = store.read_record(self.name, self.key)
        return record is not None and record.get("status", "ok") == "ok" and self._has_output(store)

    def run(self, ctx: RunContext) -> dict:
        resource = RESOURCES.get(self.name)
        original = self.original.load(ctx)
        data = self.original.ref.load()
        rctx = ResourceContext(data=data, original=original, seed=self.original.seed, device=ctx.device,
                               settings=self.settings, task=functools.partial(self._task, ctx, data, original),
                               progress=ctx.progress)
        started = time.time()
        artifact, info = resource.build(rctx)
        ctx.store.save_artifact(self.name, self.key, artifact)
        record = {**info, "key": self.key, "kind": self.name, "status": "ok", "settings": self.settings,
                  "original_key": self.original.key, "device": str(ctx.device), "started": iso(started),
                  "finished": iso(time.time())}
        ctx.store.write_record(self.name, self.key, record)
        return record

    def _task(self, ctx: RunContext, data, original, scenario: str, precision: str = "auto"):
        """The original's task on `scenario`, split by the planner's own Split job (one key per split)."""
        o = self.original
        split = Split(dataset=o.dataset, data=o.data, scenario=scenario, seed=o.seed, data_options=o.data_options)
        return build_task(data, split.load(ctx.store), original.model, o.model, recipe_from_dict(o.recipe), o.seed,
                          ctx.device, precision=precision, progress=ctx.progress)

    def load(self, store: Store, device):
        resource = RESOURCES.get(self.name)
        artifact = store.load_artifact(self.name, self.key)
        record = store.read_record(self.name, self.key) or {}
        value = resource.load(artifact, device) if resource.load else artifact
        return value, ({resource.record_field: record.get("seconds")} if resource.record_field else {})
