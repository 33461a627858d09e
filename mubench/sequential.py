"""Sequential deletion (issue 26; DESIGN.md "Sequential deletion is a chain"): requests D_f¹, D_f², …
arrive in turn, and each step unlearns one request from the predictor the previous step produced.

Spelling (scenarios.py): `sequential:class:C1+C2+...` (request t forgets class Ct) and
`sequential:random:PxT` (T disjoint, seeded requests of P% each). A chain's step t is the chain of
its first t requests (`Scenario.steps()`); per method, the planner turns the ordinary cell of each
step's split into a step with `chain_step`:

    Split(step t)       forget = request t, retain = D minus requests 1..t   (scenarios.make_split)
    Unlearn(retrain)    a plain Unlearn on that split: the step's reference, trained afresh
    StepUnlearn(t)      the method on that split, started from StepUnlearn(t−1)'s predictor
    StepEvaluate(t)     its metrics against the step's Retrain, after StepEvaluate(t−1)

A step's key holds its split (requests 1..t) and its previous step's key, so it depends on
requests 1..t only: a longer chain shares a shorter one's jobs, and a killed chain resumes at the
first step without a record (each step is its own cached job).

What a method sees at step t (its `UnlearnTask`):
- `original`: the predictor step t−1 produced, as a frozen module (step 1: the original model).
  A model-based predictor is its model, so FT, GA, RL, ℓ1, SalUn, SCRUB and SSD continue from
  the previous step's weights (SCRUB's teacher and SSD's importances are those of that model).
  An input-based one, x ↦ f(x + δ), is `InputShift(f, δ)`: the model with the composed
  δ_1 + … + δ_{t−1} added to every input.
- `forget_x`, `forget_y`: request t only; `earlier_forget_x`, `earlier_forget_y`: requests
  1..t−1, which no built-in method reads except the forget vector with `chain_forget="all"`.
- `retain_x`, `retain_y`: D minus requests 1..t, the set the step's Retrain trains on.
- `scenario`: request t alone (`class:Ct` or `random:P`), so per-kind defaults (the forget
  vector's β, SSD's order) and tuned settings are those of the request's kind.
- `resources`, `seed`, `recipe`, `build_model`: the cell's, the same at every step (the
  forget-vector bank is built once, on the original model).
The forget vector thus learns δ_t on the current predictor f(x + δ_1..t−1), and the step's
predictor is the composition f(x + δ_1 + … + δ_t): the composed δ is what is stored, evaluated
and deployed (`compose`). Forget-vector arithmetic learns (weights=learned) or sets zero-shot
(weights=sum/mean) request t's weights over the original model's class-wise bank and composes
them the same way; over a class chain the zero-shot sum is Σ_{c forgotten so far} δ_c, arithmetic
over the bank without any optimisation. Retrain ignores the previous step; so does the
independent-seed Retrain row, and the "original" calibration row stays the untouched original.

Record fields of a step's Evaluate (Retrain's too): `step` (t), `request` (`class:3`),
`ua_requests` (UA on each request 1..t, in order), `ua_all` (UA on everything forgotten so far,
pooled over images), `n_forgotten`, `rte_cum_s` (RTE summed over steps 1..t; Retrain's: one
retrain per request) and `rte_cum_rel` (that sum over Retrain's). `ua`, `ra`, `ta`,
`mia_efficacy` and `avg_gap` are the cell's metrics on the step's split: UA and the MIA on
request t, RA on the retain set above, TA on the test set (class chains: the classes not yet
forgotten), the gap to the step's Retrain.

Left out: attacks that plan models of their own (U-LiRA's shadow reruns, reference models) are
not run on chain steps; the SVC's MIA-Efficacy is.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch
from torch import nn

from .data import eval_view
from .jobs import Job, RunContext
from .method_jobs import Evaluate, Unlearn
from .metrics import unlearning_accuracy
from .outputs import PartOutputs
from .predictor import Predictor
from .scenarios import parse_scenario


class InputShift(nn.Module):
    """x ↦ f(x + δ): an input-based predictor as the module the next step starts from (δ is added
    before the model's normalisation layer, unclipped, as the predictor adds it)."""

    def __init__(self, model: nn.Module, delta: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("delta", delta.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x + self.delta.to(x.dtype))


def current_module(predictor: Predictor) -> nn.Module:
    """The predictor as one module: its model, or its model behind its input shift."""
    return predictor.model if predictor.delta is None else InputShift(predictor.model, predictor.delta)


def compose(step: Predictor) -> Predictor:
    """A step's predictor on the original architecture: an `InputShift` the method kept (or
    trained a copy of) is unwrapped and its δ added to the step's own. A stated parameter count
    is kept for input-based predictors (composed δs, or bank weights, have the step's own size);
    a model-based one is counted against the original model by evaluation, over all steps."""
    model, delta = step.model, step.delta
    if isinstance(model, InputShift):
        shift = model.delta.detach().cpu()
        model, delta = model.model, shift if delta is None else shift + delta.detach().cpu().float()
    stated = step.params_changed if delta is not None else None
    return Predictor(model, delta, step.clamp, stated, dict(step.info))


def _step(split_scenario: str) -> int:
    return parse_scenario(split_scenario).requests


def _chain(job) -> list:
    """`job`'s steps 1..t of one method, in order, through each step's `previous`."""
    out = []
    while job is not None:
        out.append(job)
        job = getattr(job, "previous", None)
    return out[::-1]


@dataclass(frozen=True)
class StepUnlearn(Unlearn):
    """Step t of a chain for one method: the method on step t's split, started from step t−1's
    predictor (module docstring: what it sees)."""

    previous: Unlearn | None = None  # the same method's step t−1 (None at step 1: the original)

    @property
    def label(self) -> str:
        return f"{super().label} (step {_step(self.split.scenario)})"

    def _start(self, ctx: RunContext, original_model):
        if self.previous is None:
            return original_model
        return current_module(self.previous.load_predictor(ctx.store, original_model)[0])

    def _extend(self, ctx: RunContext, task, data):
        """The task with requests 1..t−1 (`earlier_forget_x/_y`), from the earlier steps' splits."""
        if self.previous is None:
            return task
        idx = torch.cat([torch.from_numpy(job.split.load(ctx.store).forget) for job in _chain(self.previous)])
        return dataclasses.replace(task, earlier_forget_x=data.train_x[idx].to(task.device),
                                   earlier_forget_y=data.train_y[idx].to(task.device))

    def _finish(self, predictor: Predictor) -> Predictor:
        return compose(predictor)


@dataclass(frozen=True)
class StepEvaluate(Evaluate):
    """Step t's Evaluate: the cell's metrics against the step's Retrain, plus the chain's fields
    (module docstring); `previous` is the same method's Evaluate at step t−1."""

    previous: Evaluate | None = None

    @property
    def label(self) -> str:
        step = "" if isinstance(self.unlearn, StepUnlearn) else f" (step {_step(self.scenario)})"  # Retrain's row
        return super().label + step

    def chain(self) -> list[Evaluate]:
        """This method's Evaluates of steps 1..t, in order."""
        return _chain(self)

    def identity(self) -> dict:
        sc = parse_scenario(self.scenario)
        return {**super().identity(), "step": sc.requests, "request": sc.request.spec}

    def _more_metrics(self, ctx: RunContext, predictor: Predictor, data, metrics: dict, reference: dict | None) -> dict:
        prepare = functools.partial(eval_view, data)
        splits = [job.unlearn.split.load(ctx.store) for job in self.chain()]
        ua, sizes = [], [len(s.forget) for s in splits]
        for split in splits[:-1]:  # earlier requests; request t's UA is the cell's own
            idx = torch.from_numpy(split.forget)
            logits = predictor.logits(data.train_x[idx], ctx.device, prepare=prepare)
            ua.append(unlearning_accuracy(PartOutputs(logits, data.train_y[idx].long())))
        ua.append(metrics.get("ua"))
        pooled = None if None in ua else sum(u * n for u, n in zip(ua, sizes, strict=True)) / sum(sizes)
        before = ctx.store.read_record(self.kind, self.previous.key) if self.previous is not None else None
        cumulative = (before or {}).get("rte_cum_s", 0.0) + metrics["rte_s"]
        if self.reference is None:
            relative = 1.0
        else:
            ref_cum = (reference or {}).get("rte_cum_s")
            relative = cumulative / ref_cum if ref_cum else None
        return {"ua_requests": ua, "ua_all": pooled, "n_forgotten": sum(sizes), "rte_cum_s": cumulative,
                "rte_cum_rel": relative}


def _fields(job: Job, cls: type) -> dict:
    return {f.name: getattr(job, f.name) for f in dataclasses.fields(cls)}


def chain_step(cell: list[Job], previous: dict[str, tuple[Unlearn, Evaluate]]) -> list[Job]:
    """Step t's jobs from the ordinary cell of step t's split (`planner._cell_jobs`): each
    method's Unlearn continued from its step t−1 (Retrain's stays a plain Unlearn: it trains
    afresh on the step's retain set), each Evaluate after its step t−1, and only the attacks that
    plan no model of their own. `previous` (method → its step t−1 jobs) is updated in place;
    the Evaluates are returned (their Unlearns, splits and resources are their dependencies)."""
    out: list[Job] = []
    reference = None
    for job in cell:
        if not isinstance(job, Evaluate):
            continue
        prev_unlearn, prev_evaluate = previous.get(job.method, (None, None))
        fields = {**_fields(job, Evaluate), "attacks": tuple(run for run in job.attacks if not run.models)}
        if job.reference is None:  # Retrain's row: comes first in a cell
            unlearn = job.unlearn
            evaluate = reference = StepEvaluate(**fields, previous=prev_evaluate)
        else:
            unlearn = StepUnlearn(**_fields(job.unlearn, Unlearn), previous=prev_unlearn)
            evaluate = StepEvaluate(**{**fields, "unlearn": unlearn, "reference": reference}, previous=prev_evaluate)
        previous[job.method] = (unlearn, evaluate)
        out.append(evaluate)
    return out
