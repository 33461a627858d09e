"""Forget-vector arithmetic: a new task's δ as a weighted sum of class-wise forget vectors.

Sun et al. (arXiv 2412.16780), compositional unlearning; SPEC §4. Given the bank δ_1…δ_K of
the same frozen model (the `fv_bank` resource of mubench/methods/_fv_bank.py, imported here:
this method owns it), δ = Σ_k w_k δ_k with
- weights="learned": K unconstrained scalars w, initialised at 0 and trained with the forget
  vector's data terms, optimiser, schedule, β by scenario kind, epoch selection and convergence
  stop (learn_perturbation from mubench/methods/forget_vector.py), plus the penalty λ·‖w‖₂
  **not** divided by |B| (SPEC §4: the reference's arithmetic script adds the plain norm);
- weights="sum" / "mean": zero-shot, no optimisation: w_k = 1 (or 1/m) for the m classes
  involved in the scenario — its classes for class/classes/subset scenarios, the classes
  present in the forget set for random ones — and 0 elsewhere (the reviewers' question:
  does composition work without optimisation?).

Step size: SGD runs on u_k = w_k·‖δ_k‖ (w = u / ‖δ‖, penalty and reported weights on w), so
the step on δ is lr·Σ_k ⟨∂L/∂δ, δ̂_k⟩·δ̂_k whatever the bank's norms — with plain w it scales
with ‖δ_k‖², which made short schedules unstable (measured: docs/forget-vectors.md). Weight
decay is the same either way (it shrinks u and w by the same factor).

Runtime: `unlearn` only learns (or sets) the K weights; the bank is a one-time cost per
(model, seed) that the runner measures and records separately as `bank_s`, so RTE here
excludes it. The stored cost is K scalars (`params_changed = K`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mubench.errors import ConfigError
from mubench.methods import _fv_bank  # noqa: F401 - registers the fv_bank resource this method requires
from mubench.methods.forget_vector import (
    CPU_SCHEDULE,
    PerturbationMethod,
    PerturbationParams,
    learn_perturbation,
)
from mubench.params import Options, param
from mubench.plots import Figure, FigureInput, method_color, pyplot, register_figure, save_figure
from mubench.predictor import Predictor
from mubench.unlearning import UnlearnTask, register_method


@dataclass(frozen=True)
class FVArithmeticParams(PerturbationParams):
    weights: str = param("learned", Options(("learned", "sum", "mean")), "learned w, or zero-shot sum/mean")


def involved_classes(task: UnlearnTask) -> list[int]:
    """The scenario's classes, or the classes present in the forget set (random scenarios)."""
    if task.scenario.classes:
        return list(task.scenario.classes)
    return sorted(int(c) for c in torch.unique(task.forget_y))


@register_method("fv_arithmetic")
class FVArithmetic(PerturbationMethod):
    """Forget-vector arithmetic over the class-wise bank (task.resources["fv_bank"], (K,C,H,W));
    learned or zero-shot weights. Defaults: forget_vector's (SPEC §4). Runtime excludes the bank."""

    Params = FVArithmeticParams
    label, color, rank = "FV-arith", "#e377c2", 90
    presets = {dataset: {"*": CPU_SCHEDULE} for dataset in ("digits", "fashion-mnist")}  # forget_vector's
    version = "3"  # 2: β by scenario kind, undivided penalty, steps in normalised directions; 3: fp32 learning
    requires = ("fv_bank",)

    def unlearn(self, task: UnlearnTask) -> Predictor:
        p = self.params
        bank = task.resources.get("fv_bank")
        if bank is None:
            raise ConfigError("method 'fv_arithmetic' needs the class-wise forget-vector bank in "
                              "task.resources['fv_bank']; run it through the runner, which builds the bank")
        bank = bank.to(task.device, torch.float32)
        if tuple(bank.shape[1:]) != tuple(task.input_shape):
            raise ConfigError(f"method 'fv_arithmetic': bank vectors have shape {tuple(bank.shape[1:])}, "
                              f"but the model's inputs are {tuple(task.input_shape)}")
        k = len(bank)
        info = {}
        if p.weights == "learned":
            scale = bank.flatten(1).norm(dim=1).clamp_min(1e-12)  # ‖δ_k‖: theta is u = w·‖δ_k‖
            learned = learn_perturbation(task, p, torch.zeros(k), desc="fv_arithmetic", divide_norm=False,
                                         to_delta=lambda u: torch.einsum("k,kchw->chw", u / scale, bank)[None],
                                         norms=lambda u: (u / scale).norm()[None])
            w = learned.theta.detach() / scale
            info = {"epochs_run": learned.epochs_run, "selected_epoch": learned.selected_epoch,
                    "final_loss": learned.final_loss, "beta": self.resolved(p, task.scenario.kind).beta}
        else:
            classes = involved_classes(task)
            w = torch.zeros(k, device=task.device)
            w[classes] = 1.0 if p.weights == "sum" else 1.0 / len(classes)
        delta = torch.einsum("k,kchw->chw", w, bank).cpu()
        info.update(weights=[float(v) for v in w.cpu()], delta_norm=float(delta.norm()))
        return Predictor(task.original, delta=delta, clamp=p.clamp, params_changed=k, info=info)


# ---------------------------------------------------------------------------------------------
# The report's figure of this method: its learned weights per class-wise vector


def plot_arithmetic_weights(weights: dict[int, Sequence[float]], cell: tuple, label: str,
                            stem: Path) -> Figure | None:
    """Bar per class-wise vector k: the learned weight, mean ± std over seeds, seeds as dots."""
    plt = pyplot()
    sizes = {len(w) for w in weights.values()}
    if len(sizes) != 1 or not sizes.pop():
        return None  # no weights, or seeds with different K cannot share an axis
    w = np.array([list(map(float, weights[s])) for s in sorted(weights)])
    k = np.arange(w.shape[1])
    fig, ax = plt.subplots(figsize=(max(5.5, 0.45 * len(k) + 2.5), 3.2), layout="constrained")
    ax.bar(k, w.mean(axis=0), yerr=w.std(axis=0, ddof=1) if len(w) > 1 else None,
           color=method_color(FVArithmetic.name), capsize=2, label="mean ± std over seeds")
    for row in w:
        ax.plot(k, row, "o", ms=3, color="black", alpha=0.6)
    ax.plot([], [], "o", ms=3, color="black", alpha=0.6, label="one seed")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(k)
    ax.set_xlabel("class-wise forget vector k")
    ax.set_ylabel("weight")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(fontsize=8, frameon=False, loc="outside right upper")
    title = f"{' / '.join(map(str, cell))}: {label} weights"
    ax.set_title(title, fontsize=10)
    return save_figure(fig, stem, cell, "weights", title)


@register_figure("weights", caption="Learned weight of each class-wise forget vector in the arithmetic combination; "
                                    "bars: mean ± std over seeds, dots: single seeds.")
def weights_figures(inp: FigureInput) -> list:
    """One weights figure per arithmetic variant of the cell, from its records' `info.weights`."""
    out = []
    for variant, g in inp.rows[inp.rows["method"].eq(FVArithmetic.name)].groupby("variant", sort=False):
        weights = {int(r.seed): (r.info or {}).get("weights") or [] for r in g.itertuples() if isinstance(r.info, dict)}
        out.append(plot_arithmetic_weights(weights, inp.cell, inp.label(variant), inp.path(variant, "weights")))
    return out
