"""U-LiRA's shadow models as jobs of a cell, and the attack run at Evaluate time (../shared/MIA.md).

    ShadowSplit(cell split, k, K)           → forget = S_k ⊂ D_f, retain = D_r   artifacts/split
    ShadowOriginal(recipe, seed_k, S_k)     → the recipe trained on D_r ∪ S_k    artifacts/original
    Unlearn(method, shadow original, S_k)   → the method's shadow predictor      artifacts/predictor

The shadow jobs are new job types (their type name is in their keys), so turning the attack
on adds jobs and never changes the key of the cell's Original, Retrain or real method runs;
shadow originals are shared by every method and cached like originals. Each method's Evaluate
then lists its K shadow Unlearns as dependencies, and `attack_fields` turns their φ on D_f
into the record's `ulira_*` fields. (Retrain needs no shadow runs: its negatives are the cell's
Retrain itself; the reference-model screen has its own models, reference_mia.py.)

Deviation from DESIGN.md: shadows are not a `Resource` (a resource depends on the original
only; a shadow depends on the cell's split too), but their own job types beside Original.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import lira_stats as ls
from .config import UNKEYED_ULIRA_VARIANCE
from .jobs import Original, RunContext, Split
from .store import Store, stable_hash

SHADOW_OUTPUTS_VERSION = "1"


def shadow_seed(seed: int, k: int) -> int:
    """The training seed of shadow k of a cell seed (disjoint from the reporting seeds)."""
    return 1000 * (seed + 1) + k


@dataclass(frozen=True)
class ShadowSplit(Split):
    """Shadow k's split: forget = S_k (its balanced share of D_f), retain = D_r, test unchanged."""

    base: Split | None = None
    shadow: int = 0
    shadows: int = 0

    @property
    def label(self) -> str:
        return f"shadow split {self.shadow}/{self.shadows} {self.scenario}/seed {self.seed}"

    def membership(self, n_forget: int) -> np.ndarray:
        """(n_forget,) bool: which forget examples are in S_k (seeded by the cell's split key)."""
        return ls.balanced_assignment(n_forget, self.shadows, int(self.base.key[:8], 16))[self.shadow]

    def load(self, store: Store):
        base = self.base.load(store)
        split = dataclasses.replace(base, forget=base.forget[self.membership(len(base.forget))])
        if not store.has_artifact("split", self.key):
            store.save_artifact("split", self.key, split.to_state())
        return split


@dataclass(frozen=True)
class ShadowOriginal(Original):
    """The cell's recipe trained on D_r ∪ S_k with shadow k's seed, keyed like an original."""

    split: ShadowSplit | None = None

    @property
    def label(self) -> str:
        s = self.split
        return f"shadow original {s.shadow}/{s.shadows} {self.dataset}/{self.model}/{s.scenario}/seed {s.seed}"

    def load(self, ctx: RunContext):
        split = self.split.load(ctx.store)
        return self._fit_on_training_subset(ctx, np.concatenate([split.retain, split.forget]))


def shadow_cell(original: Original, split: Split, shadows: int) -> list[tuple[ShadowOriginal, ShadowSplit]]:
    """The K (shadow original, shadow split) pairs of a cell, shared by every method."""
    out = []
    for k in range(shadows):
        s = ShadowSplit(dataset=split.dataset, data=split.data, scenario=split.scenario, seed=split.seed,
                        data_options=split.data_options, base=split, shadow=k, shadows=shadows)
        o = ShadowOriginal(dataset=original.dataset, data=original.data, model=original.model, arch=original.arch,
                           recipe=original.recipe, seed=shadow_seed(original.seed, k),
                           data_options=original.data_options, split=s)
        out.append((o, s))
    return out


def wants_ulira(settings: dict) -> bool:
    return "ulira" in settings.get("attacks", ())


# ---------------------------------------------------------------------------------------------
# Evaluate time


def forget_phi(ctx: RunContext, unlearn, data, split) -> np.ndarray:
    """φ of a shadow predictor on the cell's whole D_f (cached in the store as "outputs")."""
    from .outputs import forward_split, load_outputs, save_outputs

    key = stable_hash({"shadow_outputs": unlearn.key, "split": split.hash, "v": SHADOW_OUTPUTS_VERSION})
    state = ctx.store.load_artifact("outputs", key)
    if state is not None:
        out = load_outputs(state)
    else:
        model = unlearn.original.load(ctx).model
        predictor, _ = unlearn.load_predictor(ctx.store, model)
        out = forward_split(predictor, data, split, ctx.device, parts=("forget",))
        ctx.store.save_artifact("outputs", key, save_outputs(out))
    return ls.phi(out.forget.logits, out.forget.labels)


def shadow_seconds(store: Store, unlearns) -> tuple[float, float]:
    """(training seconds of the shadow originals, wall seconds of the shadow unlearning runs)."""
    train = sum((store.read_record("original", u.original.key) or {}).get("seconds") or 0.0 for u in unlearns)
    unlearn = sum((store.read_record("unlearn", u.key) or {}).get("wall_s") or 0.0 for u in unlearns)
    return float(train), float(unlearn)


def attack_fields(job, ctx: RunContext, data, split, outputs, reference_outputs) -> dict:
    """The record's `ulira_*` fields of one Evaluate.

    Positives: φ of the audited predictor on D_f; negatives: φ of the cell's Retrain on D_f."""
    n = len(split.forget)
    pos = ls.phi(outputs.forget.logits, outputs.forget.labels)
    neg = ls.phi(reference_outputs.forget.logits, reference_outputs.forget.labels)
    phis = np.stack([forget_phi(ctx, u, data, split) for u in job.shadows])
    mask = np.stack([u.split.membership(n) for u in job.shadows])
    variance = job.settings.get("ulira_variance", UNKEYED_ULIRA_VARIANCE)  # planner.evaluation_settings
    g = ls.fit_gaussians(phis, mask, variance)
    fields = ls.summary(ls.lira_scores(g, pos), ls.lira_scores(g, neg), seed=job.seed)
    train_s, unlearn_s = shadow_seconds(ctx.store, job.shadows)
    fields.update(ulira_shadows=len(job.shadows), ulira_variance=variance, ulira_sd_in=g.sd_in, ulira_sd_out=g.sd_out,
                  ulira_shadow_train_s=train_s, ulira_shadow_unlearn_s=unlearn_s)
    return fields
