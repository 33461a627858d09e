"""Retrain: train a fresh model on the retain set with the original recipe (exact unlearning).

Source: the standard exact-unlearning reference of every MU benchmark (SPEC §3); the reference
for every gap. Loss: cross-entropy on the retain set. Defaults: the original model's recipe
(`task.recipe`: optimiser, schedule, epochs, batch size, augmentation), the same initialisation
seed (`task.build_model()` seeds the initial weights as the original's were) and the same
shuffle/augmentation seed. Where we differ from reference code: the OPTML code retrains on a
differently seeded 45k subset; here the retain set is the full training set minus the forget
set (SPEC §2), so Retrain and the original see exactly the same images except the forgotten.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from mubench.params import Interval, param
from mubench.predictor import Predictor
from mubench.training import fit_supervised
from mubench.unlearning import Method, UnlearnTask, register_method


@dataclass(frozen=True)
class RetrainParams:
    """Retrain has no hyper-parameters of its own: it is the original recipe on the retain set."""

    epochs: int | None = param(None, Interval(1, None),
                               "override the recipe's epochs (None: the original's; only for smoke runs)")


@register_method("retrain")
class Retrain(Method):
    """Retrain from scratch on the retain set with the original recipe (the gold standard)."""

    Params = RetrainParams
    label, color, rank = "Retrain", "#4d4d4d", 0
    test_params = {"epochs": 2}

    def unlearn(self, task: UnlearnTask) -> Predictor:
        recipe = task.recipe
        if self.params.epochs is not None:
            recipe = dataclasses.replace(recipe, epochs=self.params.epochs)
        model = task.build_model()
        result = fit_supervised(model, task.retain_x, task.retain_y, recipe, task.augment, task.seed,
                                task.device, progress=task.progress, desc=self.name)
        return Predictor(model, info={"epochs_run": result.epochs_run, "final_loss": result.last_loss})


INDEPENDENT_SEED_OFFSET = 700_000  # disjoint from reporting, tuning (100+), shadow (1000+) and reference (500000+) seeds


def independent_seed(seed: int) -> int:
    """The training seed of the independent Retrain of a cell seed."""
    return INDEPENDENT_SEED_OFFSET + seed


@register_method("retrain_seed")
class RetrainIndependentSeed(Retrain):
    """Retrain with an independent seed, audited as a target (calibration: what an ideal unlearner reads).

    Retrain is the reference of every gap, so it cannot be its own target: its attack numbers would
    compare a model with itself. This row is the same recipe on the same retain set with another
    initialisation and shuffle seed (`independent_seed`), evaluated like any method against the
    cell's Retrain. Its Avg. Gap is the seed-to-seed noise floor of the gap, and its attack columns
    are the attacks' null: a method inside them is as indistinguishable from Retrain as a second
    Retrain is. It takes Retrain's settings (`[methods.retrain]`), is never selected by `--methods`
    or tuned, and costs one more Retrain per cell seed (and one per shadow under U-LiRA)."""

    label, color, rank = "Retrain (independent seed)", "#808080", 1
    calibration, settings_from = True, "retrain"

    def unlearn(self, task: UnlearnTask) -> Predictor:
        seed = independent_seed(task.seed)
        return super().unlearn(dataclasses.replace(task, seed=seed, build_model=functools.partial(task.build_model, seed=seed)))
