"""Forget vector: one universal input perturbation δ that makes a frozen model forget.

Sun et al., "Forget Vectors at Play: Universal Input Perturbations Driving Machine Unlearning
in Image Classification" (arXiv 2412.16780); SPEC §4. The model never changes: it stays in
eval mode (BatchNorm uses its running statistics) and gets no weight gradients. Only δ, one
image-shaped tensor, is learned on one shuffled loader over forget ∪ retain:

    L(δ) = α·(1/|B|)·Σ_{i∈B∩retain} CE(f(x_i+δ), y_i)
         + β·(1/|B|)·Σ_{i∈B∩forget} max(z_{y_i} − max_{k≠y_i} z_k, −τ)
         + λ·‖δ‖₂ / |B|

Both data terms are divided by the whole batch size |B| (not by the number of retain or
forget samples in it), as in the paper's code. δ is added after the training augmentation
and before the model's normalisation layer (normalisation is the model's first layer), with
no clipping to [0, 1] unless `clamp` is set; the returned Predictor adds the same δ to every
evaluated input.

Defaults (SPEC §4): α = 1, λ = 1, τ = 1, SGD lr 0.2, momentum 0.9, weight decay 5e-4 on δ,
lr × 0.9 after every epoch, batch 256, augmentation on, 100 epochs (the step size is below
1e-5 after 100). β is per scenario kind, resolved by the method for every dataset
(`beta=None`, BETA_BY_KIND): 5 for class / classes forgetting (the paper tuned β per class in
3–10), 0.2 for random / subset forgetting (SPEC §4: a universal δ cannot tell forget samples
from retain samples of the same class, so a large β destroys RA); `info["beta"]` records it.

Learning knobs beyond the paper (all keyed, defaults the paper's): `augment` (the dataset's
training augmentation on the batches δ is learned on; the paper's code augments), `optimizer`
(`sgd` with momentum as in the paper, or `adam`, whose lr is Adam's step size) and
`frozen_precision` (`learn_perturbation`). `chain_forget` (sequential chains only,
mubench/sequential.py): "request" (default) learns δ_t's forget term on request t alone, "all"
on every request so far, so that the composed δ keeps the earlier requests forgotten.

Where mubench differs from the paper: on the CPU presets (digits, Fashion-MNIST) every
forget-vector learner runs `CPU_SCHEDULE` — 3 epochs of batch 32, lr halved after each —
instead of ~100 epochs of batch 256. It was chosen on tuning seeds as about a tenth of the cost
at no larger an Avg. Gap (BENCHMARKS.md §6); `--set forget_vector.epochs=100 ...` restores the
paper's schedule. Augmentation while learning δ is searched by `mubench tune` with β and lr
(issue 25: on digits class:0 it moved the Avg. Gap by about 1.7 points); untuned, it is on, as in
the paper's code.

Epoch selection (the paper picked an epoch per class and did not say how): `select="last"`
(default) returns δ after the last epoch run. `select="best"` holds out a `holdout` fraction of
the forget set and of the retain set (stratified by label, seeded; never the test set), trains
on the rest, and returns the δ of the epoch with the smallest data objective
α·mean CE(retain) + β·mean margin(forget) (each term averaged over the held-out slice, no
augmentation, no norm penalty) on that slice.

Convergence stop: with `tol > 0` (default 1e-3), training stops after the first epoch in which
‖δ_e − δ_{e−1}‖₂ / ‖δ_{e−1}‖₂ < tol (for every learned vector); `info["epochs_run"]` records
how many epochs ran (measured effect: docs/forget-vectors.md); `tol=0` always runs `epochs`.

`learn_perturbation` below is the shared learner: forget-vector arithmetic (fv_arithmetic)
reuses it with δ = Σ_k w_k δ_k, and the class-wise bank (mubench/methods/_fv_bank.py) stacks several
class problems through the model at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mubench.params import Interval, Options, param
from mubench.plots import Figure, FigureInput, register_figure
from mubench.predictor import Predictor
from mubench.search import Choice, LogUniform
from mubench.training import OPTIMIZERS, Batch, OptimSpec, train
from mubench.unlearning import METHODS, Method, UnlearnTask, register_method

from ._fv_figure import render_forget_vector


@dataclass(frozen=True)
class PerturbationParams:
    """The loss and optimisation of a learned input perturbation (shared with fv_arithmetic)."""

    # What `mubench tune` searches (SPEC §3): β (its range spans both kinds' defaults), the first lr,
    # and whether δ is learned on augmented batches (issue 25: a choice that moves the Avg. Gap, so it
    # is searched on tuning seeds, not fixed by hand).
    SEARCH: ClassVar[dict] = {"beta": LogUniform(0.05, 10.0), "lr": LogUniform(0.05, 1.0),
                              "augment": Choice((True, False))}

    alpha: float = param(1.0, Interval(0, None), "weight of the retain cross-entropy term")
    beta: float | None = param(None, Interval(0, None),
                               "weight of the forget margin term; None: by scenario kind (class/classes 5, "
                               "random/subset 0.2)")
    lam: float = param(1.0, Interval(0, None), "weight of the l2 norm penalty")
    tau: float = param(1.0, Interval(0, None), "margin at which the forget term stops pushing")
    lr: float = param(0.2, Interval(0, None, "neither"), "SGD learning rate of the first epoch")
    epochs: int = param(100, Interval(1, None), "maximum number of epochs")
    lr_decay: float = param(0.9, Interval(0, 1, "right"), "lr factor applied after every epoch")
    momentum: float = param(0.9, Interval(0, 1), "SGD momentum")
    weight_decay: float = param(5e-4, Interval(0, None), "SGD weight decay on the learned tensor")
    batch_size: int = param(256, Interval(1, None), "mini-batch size over forget ∪ retain")
    clamp: bool = param(False, None, "clip x + δ to [0, 1] in training and evaluation (off in the paper)")
    select: str = param("last", Options(("last", "best")), "epoch returned: last, or best on a held-out slice")
    holdout: float = param(0.1, Interval(0, 1, "neither"), "fraction of forget and retain held out (select=best)")
    tol: float = param(1e-3, Interval(0, None), "stop when δ's relative change over an epoch is below this (0: off)")
    optimizer: str = param("sgd", Options(OPTIMIZERS), "sgd (the paper's, with momentum) or adam (lr is Adam's)")
    augment: bool = param(True, None, "the dataset's training augmentation on the batches δ is learned on (paper: on)")
    frozen_precision: str = param("fp32", Options(("fp32", "bf16")),
                                  "precision of the frozen network's layers after its fp32 input layer while δ is "
                                  "learned (evaluation is fp32 either way)")


@dataclass(frozen=True)
class ForgetVectorParams(PerturbationParams):
    init: str = param("zeros", Options(("zeros", "gaussian")), "initial δ (paper: zeros)")
    init_std: float = param(0.01, Interval(0, None), "standard deviation of the gaussian init")
    retain_fraction: float = param(1.0, Interval(0, 1, "right"),
                                   "fraction of the retain set seen per epoch (seeded, re-drawn each epoch; "
                                   "its CE weighted by 1/fraction); 1: all of it")
    chain_forget: str = param("request", Options(("request", "all")),
                              "sequential chains: δ_t's forget set is request t alone, or every request so far")
    # added after runs were cached: at its default it is left out of keys (params.keyed_params)
    UNKEYED_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("chain_forget",)


# β when `beta` is None (SPEC §4): the paper's class-wise range 3-10, and a small β where a
# universal δ must leave same-class retain samples alone.
BETA_BY_KIND = {"class": 5.0, "classes": 5.0, "random": 0.2, "subset": 0.2}


def resolve_beta(p: PerturbationParams, scenario_kind: str) -> PerturbationParams:
    """`p` with β set: the user's value, else BETA_BY_KIND of the scenario kind."""
    if p.beta is not None:
        return p
    return dataclasses.replace(p, beta=BETA_BY_KIND[scenario_kind])


class PerturbationMethod(Method):
    """A method that learns an input perturbation (the forget vector, its arithmetic): β's
    default depends on the scenario kind, and `resolved` (run --dry-run) fills it in."""

    @classmethod
    def resolved(cls, params, scenario_kind: str):
        return resolve_beta(params, scenario_kind)


def cw_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y − max_{k≠y} z_k per sample: positive while the true class still wins."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return true - others.amax(1)


def forget_vector_loss(logits: torch.Tensor, y: torch.Tensor, forget: torch.Tensor, norm: torch.Tensor,
                       p: PerturbationParams, batch_size: int | None = None,
                       divide_norm: bool = True) -> torch.Tensor:
    """L(δ) of the module docstring for one batch; `norm` is ‖δ‖₂ (or ‖w‖₂ for arithmetic).

    batch_size: |B|, default len(y). Several problems stacked along the batch (the bank's
    batched mode) pass the size of one batch and the sum of their norms, so the result is the
    sum of the problems' losses. divide_norm=False adds λ·norm undivided (arithmetic, SPEC §4).
    """
    n = len(y) if batch_size is None else batch_size
    logits = logits.float()
    ce = F.cross_entropy(logits, y, reduction="none")
    margin = cw_margin(logits, y).clamp_min(-p.tau)
    retain_term = torch.where(forget, 0.0, ce).sum() / n
    forget_term = torch.where(forget, margin, 0.0).sum() / n
    return p.alpha * retain_term + p.beta * forget_term + p.lam * (norm / n if divide_norm else norm)


@contextlib.contextmanager
def frozen_weights(model: nn.Module):
    """No weight gradients while δ is learned (saves the backward's weight-grad work)."""
    flags = [q.requires_grad for q in model.parameters()]
    for q in model.parameters():
        q.requires_grad_(False)
    try:
        yield model
    finally:
        for q, flag in zip(model.parameters(), flags, strict=True):
            q.requires_grad_(flag)


@dataclass
class Learned:
    theta: torch.Tensor  # the learned tensor of the selected epoch (δ, the stacked δs, or w)
    epochs_run: int
    selected_epoch: int  # 1-based; with P > 1 problems: the latest of selected_epochs
    selected_epochs: list[int]  # 1-based, the epoch returned for each of the P problems
    final_loss: float
    seconds: float


def split_holdout(task: UnlearnTask, fraction: float, generator: torch.Generator) -> tuple[UnlearnTask, dict]:
    """(task on the kept part, held-out tensors): `fraction` of each label of forget and retain."""
    kept, held = {}, {}
    for part in ("forget", "retain"):
        x, y = getattr(task, f"{part}_x"), getattr(task, f"{part}_y")
        order = torch.randperm(len(y), generator=generator).to(y.device)
        take = torch.zeros(len(y), dtype=torch.bool, device=y.device)
        for label in torch.unique(y):
            idx = order[y[order] == label]
            take[idx[: int(round(fraction * len(idx)))]] = True
        kept[f"{part}_x"], kept[f"{part}_y"] = x[~take], y[~take]
        held[f"{part}_x"], held[f"{part}_y"] = x[take], y[take]
    return dataclasses.replace(task, **kept), held


def retain_subsample(task: UnlearnTask, fraction: float, epoch: int) -> UnlearnTask:
    """`task` with a seeded `fraction` of its retain set, re-drawn every epoch (the budgeted
    forget vector: an epoch costs |forget| + fraction·|retain| forwards); 1 → `task` itself."""
    if fraction >= 1:
        return task
    n = len(task.retain_y)
    keep = torch.randperm(n, generator=task.generator(offset=100 + epoch))[: max(1, round(fraction * n))]
    keep = keep.to(task.retain_y.device)
    return dataclasses.replace(task, retain_x=task.retain_x[keep], retain_y=task.retain_y[keep])


def learn_perturbation(task: UnlearnTask, p: PerturbationParams, theta: torch.Tensor,
                       to_delta: Callable[[torch.Tensor], torch.Tensor],
                       norms: Callable[[torch.Tensor], torch.Tensor],
                       flags: Callable[[Batch], torch.Tensor] | None = None, desc: str = "forget_vector",
                       divide_norm: bool = True, retain_fraction: float = 1.0) -> Learned:
    """Learn `theta` so that the P perturbations `to_delta(theta)` (P, C, H, W) minimise L.

    norms(theta) → (P,) penalty norms; flags(batch) → (P, B) forget flags of each problem
    (default: the batch's own flags, P = 1). With select="best" and P > 1, theta's first
    dimension must index the problems (each keeps its own best epoch). β None is resolved from
    the task's scenario kind; divide_norm: see forget_vector_loss; retain_fraction < 1: each
    epoch sees the forget set and a fresh seeded retain subsample (`retain_subsample`).

    In fp32 by default, whatever the run's precision: a perturbation method's numbers must not
    depend on the hardware's precision (issue 13: bf16 rounding of x + δ distorted a learned δ
    by 6-62%, SPEC §4). `frozen_precision="bf16"` is an explicit, keyed choice: the model's
    input layer (normalisation, first conv/linear) stays fp32, so x + δ is never rounded, and
    only the later layers of the frozen network run under bf16 autocast (faster where the CPU
    has native bf16; BENCHMARKS.md §6).
    """
    p = resolve_beta(p, task.scenario.kind)
    model = task.original.eval()
    flags = flags or (lambda b: b.forget[None])
    holdout = None
    if p.select == "best":
        task, holdout = split_holdout(task, p.holdout, task.generator(offset=2))
    theta = theta.detach().clone().to(task.device).requires_grad_(True)
    train_p = dataclasses.replace(p, alpha=p.alpha / retain_fraction)  # keeps retain : forget balance

    def perturb(x: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        out = (x[None] + deltas[:, None]).flatten(0, 1)  # δ after augmentation, before normalisation
        return out.clamp(0, 1) if p.clamp else out

    def loss_fn(net: nn.Module, batch: Batch, epoch: int) -> torch.Tensor:
        deltas = to_delta(theta)
        logits = net(perturb(batch.x, deltas))
        return forget_vector_loss(logits, batch.y.repeat(len(deltas)), flags(batch).flatten(),
                                  norms(theta).sum(), train_p, batch_size=len(batch.y), divide_norm=divide_norm)

    @torch.no_grad()
    def heldout_objective() -> torch.Tensor:
        x = torch.cat([holdout["forget_x"], holdout["retain_x"]])
        y = torch.cat([holdout["forget_y"], holdout["retain_y"]])
        forget = torch.arange(len(y), device=y.device) < len(holdout["forget_y"])
        sums = 0
        for start in range(0, len(y), p.batch_size):  # batch by batch: P stacked copies can be large
            part = slice(start, start + p.batch_size)
            f = flags(Batch(x[part], y[part], forget[part])).float()
            z = model(perturb(task.prepare(x[part]), to_delta(theta))).float().view(*f.shape, -1)
            yy = y[part].repeat(len(f))
            ce = F.cross_entropy(z.flatten(0, 1), yy, reduction="none").view(f.shape)
            margin = cw_margin(z.flatten(0, 1), yy).clamp_min(-p.tau).view(f.shape)
            sums = sums + torch.stack([(ce * (1 - f)).sum(1), (1 - f).sum(1), (margin * f).sum(1), f.sum(1)])
        return p.alpha * sums[0] / sums[1].clamp_min(1) + p.beta * sums[2] / sums[3].clamp_min(1)

    n_problems = len(to_delta(theta))
    state = {"prev": to_delta(theta).detach().clone(), "best": None, "best_theta": theta.detach().clone(),
             "best_epochs": torch.zeros(n_problems, dtype=torch.long)}

    def after_epoch(epoch: int, stats: dict) -> bool:
        delta = to_delta(theta).detach()
        change = (delta - state["prev"]).flatten(1).norm(dim=1) / state["prev"].flatten(1).norm(dim=1)
        state["prev"] = delta.clone()
        if holdout is not None:
            obj = heldout_objective()
            better = obj < state["best"] if state["best"] is not None else torch.ones_like(obj, dtype=torch.bool)
            state["best"] = obj if state["best"] is None else torch.where(better, obj, state["best"])
            if n_problems == 1:  # theta need not index the problem (arithmetic's w)
                if better.item():
                    state["best_theta"] = theta.detach().clone()
            else:
                state["best_theta"][better] = theta.detach()[better]
            state["best_epochs"][better.cpu()] = epoch + 1
        return p.tol > 0 and bool((change < p.tol).all())  # NaN (from a zero δ) never stops

    generator = task.generator()
    optim = OptimSpec(lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay, schedule="exponential",
                      gamma=p.lr_decay)  # lr × lr_decay after every epoch
    with frozen_weights(model):
        result = train(model, epochs=p.epochs, batches=lambda epoch: retain_subsample(task, retain_fraction, epoch).batches(
                           "union", p.batch_size, generator, augment=p.augment),
                       loss_fn=loss_fn, optim=optim, device=task.device, precision=p.frozen_precision, params=[theta],
                       optimizer=p.optimizer, after_epoch=after_epoch, train_mode=False, progress=task.progress,
                       desc=desc)
    if holdout is None:
        final, selected = theta.detach(), [result.epochs_run] * n_problems
    else:
        final, selected = state["best_theta"], [int(e) for e in state["best_epochs"]]
    return Learned(final, result.epochs_run, max(selected), selected, result.last_loss, result.seconds)


# The learning schedule of every forget-vector learner (FV, FV-arith and the class-wise bank) on
# the CPU presets: 3 epochs of batch 32, lr halved after each. It was chosen on tuning seeds
# (benchmarks/fv_pareto.py --view tune; BENCHMARKS.md §6) over the earlier 20-60 epochs of batch
# 128-256 (docs/adding-a-method.md): about a tenth of the time at no larger an Avg. Gap. That
# choice also turned augmentation off; augmentation is now searched (SEARCH), so the preset leaves
# it at the paper's default (on) and the tuned files choose. The paper's schedule stays the Params
# default for other datasets.
CPU_SCHEDULE = MappingProxyType({"epochs": 3, "batch_size": 32, "lr_decay": 0.5, "tol": 3e-3})


@register_method("forget_vector")
class ForgetVector(PerturbationMethod):
    """Forget vector (Sun et al., arXiv 2412.16780): one learned δ added to every input of the
    frozen original model. Loss, defaults, epoch selection and convergence stop: module docstring."""

    Params = ForgetVectorParams
    label, color, rank = "FV", "#d62728", 80
    presets = {dataset: {"*": CPU_SCHEDULE, "random": {"tol": 1e-2}} for dataset in ("digits", "fashion-mnist")}
    version = "3"  # 2: β resolved by scenario kind; 3: δ always learned in fp32

    def unlearn(self, task: UnlearnTask) -> Predictor:
        p = self.params
        if p.chain_forget == "all" and task.earlier_forget_x is not None:
            # the earlier requests are forgotten by δ_1..t−1 at the start; in δ_t's forget term they stay so
            task = dataclasses.replace(task, forget_x=torch.cat([task.forget_x, task.earlier_forget_x]),
                                       forget_y=torch.cat([task.forget_y, task.earlier_forget_y]))
        delta0 = torch.zeros(task.input_shape)
        if p.init == "gaussian":
            delta0 = torch.randn(task.input_shape, generator=task.generator(offset=1)) * p.init_std
        learned = learn_perturbation(task, p, delta0, to_delta=lambda d: d[None], norms=lambda d: d.norm()[None],
                                     retain_fraction=p.retain_fraction)
        delta = learned.theta.float().cpu()
        info = {"epochs_run": learned.epochs_run, "selected_epoch": learned.selected_epoch,
                "final_loss": learned.final_loss, "delta_norm": float(delta.norm()),
                "beta": self.resolved(p, task.scenario.kind).beta}
        return Predictor(task.original, delta=delta, clamp=p.clamp, params_changed=delta.numel(), info=info)


# ---------------------------------------------------------------------------------------------
# The report's figure of perturbation methods: δ and a few images before / after it

FIGURE_EXAMPLES = 3  # forget and as many retain images shown beside δ


@register_figure("delta", stored=True, caption=(
    "The learned perturbation δ (mean over channels, diverging colours, symmetric scale) and training "
    "images without (top) and with δ (bottom); titles give the predicted class, red where δ changed it "
    "away from the true class."))
def delta_figures(inp: FigureInput) -> list[Figure]:
    """Per perturbation variant of the cell, its lowest seed's stored δ (the grid's own runs only)."""
    out = []
    rows = inp.rows[inp.rows["method"].map(lambda m: m in METHODS and issubclass(METHODS.get(m), PerturbationMethod))]
    for variant, g in rows.groupby("variant", sort=False):
        row = g.sort_values("seed").iloc[0]
        cell = inp.stored(row["method"], int(row["seed"]))
        if cell is None or cell.records.get(row["method"], {}).get("key") != row["key"]:
            continue  # not a run of the grid (a sweep point): no stored cell to draw it from
        (fx, fy), (rx, ry) = cell.part("forget"), cell.part("retain")
        n = FIGURE_EXAMPLES
        images, labels = torch.cat([fx[:n], rx[:n]]), torch.cat([fy[:n], ry[:n]])
        flags = torch.arange(len(images)) < min(n, len(fx))
        stem = inp.path(variant, "delta")
        png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
        for path in (png, pdf):
            render_forget_vector(cell.predictor(row["method"]), images, labels, cell.data.classes, path, forget=flags)
        out.append(Figure(inp.cell, "delta", f"{inp.label(variant)}: δ and examples (seed {row['seed']})", png, pdf))
    return out
