"""The two jobs of a method in a cell: `Unlearn` (run the method, store its predictor) and
`Evaluate` (measure a stored predictor against the cell's Retrain, write the record reports
read). Retrain is an Unlearn job like any other; every Evaluate of a cell reads Retrain's
Evaluate record as its reference. See jobs.py for keys and the store layout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import time
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from . import __version__
from .attacks.base import AttackInput, AttackRun
from .attacks.svc import FitAhead, MIAConfig
from .device import exact_fp32, machine, synchronize
from .errors import MubenchError
from .evaluation import cached_outputs, evaluate
from .jobs import Job, Original, Resource, RunContext, Split, iso
from .outputs import SplitOutputs, load_outputs
from .params import apply_overrides, non_default
from .pipeline import build_task, recipe_from_dict
from .predictor import Predictor, predictor_from_state, predictor_state
from .store import Store, stable_hash
from .unlearning import METHODS

OUTPUTS_VERSION = "1"  # bump when the forward pass of evaluation changes (batching, view)


def display_name(method: str, user_params: dict) -> str:
    if not user_params:
        return method
    inner = ",".join(f"{k}={v}" for k, v in sorted(user_params.items()))
    return f"{method}[{inner}]"


@dataclass(frozen=True)
class Unlearn(Job):
    """One method's run on one cell: the predictor (δ, or the model as a diff) is the artifact."""

    kind: ClassVar[str] = "unlearn"
    method: str
    method_version: str
    params: dict
    precision: str  # the resolved training precision of the method
    original: Original
    split: Split
    resources: tuple[Resource, ...] = ()
    user_params: dict = field(default_factory=dict)  # only what the user overrode (display name)
    IGNORE: ClassVar[tuple[str, ...]] = ("user_params",)

    @property
    def label(self) -> str:
        o = self.original
        return f"{self.method} {o.dataset}/{o.model}/{self.split.scenario}/seed {o.seed}"

    def _has_output(self, store: Store) -> bool:
        return store.has_artifact("predictor", self.key)

    def run(self, ctx: RunContext) -> dict:
        started = time.time()
        cls = METHODS.get(self.method)
        data = self.original.ref.load()
        original = self.original.load(ctx)
        split = self.split.load(ctx.store)
        resources, extra = {}, {}
        for res in self.resources:
            resources[res.name], facts = res.load(ctx.store, ctx.device)
            extra.update(facts)
        task = build_task(data, split, self._start(ctx, original.model), self.original.model, recipe_from_dict(self.original.recipe),
                          self.original.seed, ctx.device, precision=self.precision, resources=resources,
                          progress=ctx.progress)
        task = self._extend(ctx, task, data)
        params = apply_overrides(cls.Params(), self.params, f"method {self.method!r}")
        synchronize(ctx.device)
        t0 = time.perf_counter()
        predictor = cls(params).unlearn(task)
        synchronize(ctx.device)
        rte = time.perf_counter() - t0
        predictor = self._finish(predictor)
        ctx.store.save_artifact("predictor", self.key, predictor_state(predictor, original.model))
        record = {"key": self.key, "kind": "unlearn", "status": "ok", "method": self.method, **extra,
                  "rte_s": rte, "method_version": self.method_version, "precision": self.precision,
                  "clamp": predictor.clamp, "params_changed_stated": predictor.params_changed,
                  "info": _jsonable_info(predictor.info),
                  "non_default_params": {k: str(v) for k, v in non_default(params).items()},
                  "device": str(ctx.device), "n_jobs": ctx.n_jobs, "started": iso(started),
                  # CPU kernels reduce in a thread-count-dependent order: the count is in the key
                  # (Original.compute) and here, with the CPU and its ISA flags
                  "torch_threads": torch.get_num_threads(), "machine": machine(ctx.device),
                  "finished": iso(time.time()), "wall_s": time.time() - started}
        ctx.store.write_record("unlearn", self.key, record)
        return record

    # Hooks of a sequential-deletion step (mubench/sequential.py): the model the method starts
    # from, what its task adds, and the predictor stored from the one it returned. Identity here.
    def _start(self, ctx: RunContext, original_model):
        return original_model

    def _extend(self, ctx: RunContext, task, data):
        return task

    def _finish(self, predictor: Predictor) -> Predictor:
        return predictor

    def predictor(self, ctx: RunContext) -> Predictor:
        """The stored predictor on its own original (what an attack audits on a shadow)."""
        return self.load_predictor(ctx.store, self.original.load(ctx).model)[0]

    def load_predictor(self, store: Store, original_model):
        state = store.load_artifact("predictor", self.key)
        record = store.read_record("unlearn", self.key)
        if state is None or record is None:
            raise MubenchError(f"the predictor of {self.label} ({self.key}) is not in {store.root}; run it again")
        return predictor_from_state(state, original_model, record.get("clamp", False),
                                    record.get("params_changed_stated"), record.get("info")), record


@dataclass(frozen=True)
class Evaluate(Job):
    """The metrics of one stored predictor on its cell, against Retrain's record (`reference`),
    and the attacks' fields (`attacks`: each configured attack with the models it reads)."""

    kind: ClassVar[str] = "method"  # the record kind reports have always read
    unlearn: Unlearn
    reference: Evaluate | None  # Retrain's Evaluate of the same cell (None: this is Retrain's)
    settings: dict  # [evaluation] fields, the metric names and the attacks' key fields (planner.evaluation_settings)
    tuned: dict = field(default_factory=dict)  # tuned.TunedSettings.stamp() when the params come from a search
    attacks: tuple[AttackRun, ...] = ()  # the attacks that score this row (none for Retrain's own)
    family: str = ""  # the scenario family this cell was expanded from (scenarios.Family), "" if listed alone
    IGNORE: ClassVar[tuple[str, ...]] = ("tuned", "attacks", "family")

    def key_fields(self) -> dict:
        fields = super().key_fields()
        for run in self.attacks:  # each attack's models under its field; absent when it has none
            if run.models:
                fields[run.deps_field] = [m.key for m in run.models]
        if self.tuned:  # a tuned row is its own record (reports mark it), the predictor is shared
            fields["tuned"] = self.tuned
        if self.family:  # a family member's row is its own record (it names the family); keys of
            fields["family"] = self.family  # scenarios listed alone are as before
        return fields

    def deps(self) -> tuple[Job, ...]:
        return (*super().deps(), *self.optional())

    def optional(self) -> tuple[Job, ...]:
        """The attacks' models: a failed one costs the row that attack's fields (`<name>_error`
        says why), never its UA, RA, TA or SVC MIA."""
        return tuple(m for run in self.attacks for m in run.models)

    def models_of(self, attack: str) -> tuple[Job, ...]:
        """The models `attack` reads for this row (none when it is off)."""
        return next((run.models for run in self.attacks if run.name == attack), ())

    @property
    def method(self) -> str:
        return self.unlearn.method

    @property
    def scenario(self) -> str:
        return self.unlearn.split.scenario

    @property
    def seed(self) -> int:
        return self.unlearn.original.seed

    @property
    def dataset(self) -> str:
        return self.unlearn.original.dataset

    @property
    def model(self) -> str:
        return self.unlearn.original.model

    @property
    def params(self) -> dict:
        return self.unlearn.params

    @property
    def retrain_key(self) -> str:
        return self.key if self.reference is None else self.reference.key

    @property
    def label(self) -> str:
        return f"evaluate {self.unlearn.label}" + (f" (family {self.family})" if self.family else "")

    def _has_output(self, store: Store) -> bool:
        return True

    def done(self, store: Store) -> bool:
        """An ok record, and one that did not miss an attack (a rerun retries its models)."""
        record = store.read_record(self.kind, self.key)
        return (record is not None and record.get("status", "ok") == "ok"
                and not any(record.get(f"{run.name}_error") for run in self.attacks))

    def identity(self) -> dict:
        """The fields every record of this job carries, ok or failed."""
        u = self.unlearn
        return {"key": self.key, "kind": "retrain" if self.reference is None else "method",
                "dataset": self.dataset, "model": self.model, "scenario": self.scenario,
                "scenario_kind": self.scenario.split(":")[0], "family": self.family or None, "seed": self.seed,
                "method": self.method, "params": u.params, "display_name": display_name(self.method, u.user_params)}

    def run(self, ctx: RunContext) -> dict:
        started = time.time()
        store, data = ctx.store, self.unlearn.original.ref.load()
        original = self.unlearn.original.load(ctx)
        split = self.unlearn.split.load(store)
        predictor, unlearned = self.unlearn.load_predictor(store, original.model)
        reference, ref_outputs = self._reference(store)
        controls = self.settings.get("controls", True)
        mia = MIAConfig(seed=self.seed, legacy_first_n=self.settings.get("mia_legacy_first_n", False))
        # This job's MIA fit, started while the forget set is forwarded; closed (its thread ended,
        # an untaken fit dropped) when the job leaves this block, whatever happens.
        ahead = FitAhead(mia) if len(split.forget) and spare_core(ctx) else None
        with ahead or contextlib.nullcontext(), exact_fp32(ctx.device):  # on CUDA: no TF32, deterministic kernels (SPEC §5)
            outputs = cached_outputs(store, outputs_key(self.unlearn), predictor, data, split, ctx.device,
                                     on_part=ahead)
            metrics = evaluate(predictor, data, split, device=ctx.device, original=original.model,
                               reference=reference, reference_outputs=ref_outputs if controls else None, mia=mia,
                               controls=controls, seed=self.seed, extra_mia=self.settings.get("extra_mia", False),
                               outputs=outputs, fit_ahead=ahead)
            if self.attacks and reference is not None:
                if ref_outputs is None:
                    raise MubenchError(f"the attacks need Retrain's stored outputs of {self.label}; run its Retrain again")
                inp = AttackInput(ctx, data, split, self.seed, outputs, ref_outputs, ())
                for run in self.attacks:
                    metrics.update(_missing(store, run) or run.attack().score(dataclasses.replace(inp, models=run.models)))
        metrics.update(_runtime(unlearned["rte_s"], reference, own=self.reference is None))
        metrics.update(self._more_metrics(ctx, predictor, data, metrics, reference))
        record = {**self.identity(), **metrics, **_provenance(unlearned), "dataset": data.name,  # [n]: a training subset
                  "data_options": self.unlearn.original.data_options, "n_forget": len(split.forget), "n_retain": len(split.retain),
                  "n_test": len(split.test) + len(split.test_forgotten), "status": "ok", "tuned": bool(self.tuned),
                  "tuned_from": self.tuned or None, "split_hash": split.hash, "split_form": split.form,
                  "unlearn_key": self.unlearn.key, "original_key": original.key, "retrain_key": self.retrain_key,
                  "original_train_acc": original.info.get("train_acc"),
                  "original_test_acc": original.info.get("test_acc"), "versions": versions(),
                  "started": unlearned.get("started", iso(started)), "finished": iso(time.time()),
                  "wall_s": unlearned.get("wall_s", 0.0) + time.time() - started}
        stratum = store.read_record("split", self.unlearn.split.key) or {}  # a hardness-stratified split's ES
        if "forget_es" in stratum:
            record["forget_es"] = stratum["forget_es"]
        store.write_record("method", self.key, record)
        return record

    def _more_metrics(self, ctx: RunContext, predictor: Predictor, data, metrics: dict, reference: dict | None) -> dict:
        """Fields beyond the cell's metrics (a sequential step's, mubench/sequential.py); none here."""
        return {}

    def _reference(self, store: Store) -> tuple[dict | None, SplitOutputs | None]:
        """Retrain's ok record of the cell and, where controls or attacks read them, its outputs."""
        if self.reference is None:
            return None, None
        reference = store.read_record("method", self.reference.key)
        if reference is None or reference.get("status") != "ok":
            return None, None
        if not (self.settings.get("controls", True) or self.attacks):
            return reference, None
        state = store.load_artifact("outputs", outputs_key(self.reference.unlearn))
        return reference, (load_outputs(state) if state is not None else None)


# What an Evaluate record copies from its Unlearn record (besides the *_s timings).
UNLEARN_FIELDS = ("method_version", "precision", "device", "n_jobs", "torch_threads", "machine", "info",
                  "non_default_params")


def _provenance(unlearned: dict) -> dict:
    return {**{k: unlearned[k] for k in UNLEARN_FIELDS if k in unlearned},
            **{k: v for k, v in unlearned.items() if k.endswith("_s") and k not in ("rte_s", "wall_s")}}


def _runtime(rte: float, reference: dict | None, own: bool) -> dict:
    """RTE and RTE relative to Retrain's (Retrain's own row: gap 0, RTE ratio 1)."""
    out = {"avg_gap": 0.0} if own else {}
    rel = 1.0 if own else rte / reference["rte_s"] if reference and reference.get("rte_s") else None
    return {**out, "rte_s": rte, "rte_rel": rel}


def _missing(store: Store, run: AttackRun) -> dict:
    """`{NAME_error: why}` when some of an attack's models did not finish (failed upstream)."""
    missing = [j for j in run.models if not j.done(store)]
    if not missing:
        return {}
    record = store.read_record(missing[0].kind, missing[0].key) or {}
    why = record.get("error") or "not in the store"
    return {f"{run.name}_error": f"{len(missing)} of {len(run.models)} models missing ({missing[0].label}: {why}); "
                                 "not computed"}


def spare_core(ctx: RunContext) -> bool:
    """Whether this job may run the MIA's fit beside its forward passes (attacks.svc.FitAhead):
    on a GPU the forwards leave the CPU free; on a CPU only when the run's workers and their
    torch threads leave a core idle (a lone job), so the fit never takes another job's core."""
    if ctx.device.type != "cpu":
        return True
    return ctx.n_jobs * torch.get_num_threads() < (os.cpu_count() or 1)


def outputs_key(unlearn: Unlearn) -> str:
    """Key of a predictor's cached logits per part: its Unlearn key and the forward's version."""
    return stable_hash({"outputs": unlearn.key, "v": OUTPUTS_VERSION})


def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "mubench": __version__}


def _jsonable_info(info: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in info.items()}
