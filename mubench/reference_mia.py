"""The reference-model screen (../shared/MIA.md, attack 2): models that never saw D_f.

    ReferenceOriginal(recipe, seed_j, D_r)   → the cell's recipe trained on D_r only   artifacts/original

K' reference models are the cell's recipe trained on its retain set with their own seeds
(`reference_seed`, disjoint from reporting, tuning and shadow seeds). No method runs on them,
so the screen costs K' trainings, not K' × (training + every method's run) like U-LiRA:
cheap enough to be on by default on the small presets (`presets.Preset.attacks`).

For class-wise scenarios D_f and D_r do not depend on the seed (the forget set is the whole
class), so the references are keyed on the seed-0 split and every seed of the scenario shares
the same K' models; random and subset scenarios get K' per cell.

At Evaluate time `reference_fields` gives two scores per forget example, each compared between
the audited predictor (positives) and the cell's Retrain (negatives), as AUC etc.:
- `refmia_*`: offline LiRA, log Φ((φ − μ_out(x)) / σ_out), μ_out(x) and the pooled σ_out
  over the references' φ, with the band a never-trained-on-D_f model reads (`null_band`).
- `rmia_*`: RMIA (Zarifzadeh et al., ICML 2024), offline, γ = 2, a = 0.33
  (`lira_stats.rmia_scores`), with the test split as the population z.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import lira_stats as ls
from .jobs import Job, Original, RunContext, Split
from .store import stable_hash

REFERENCE_OUTPUTS_VERSION = "1"
CLASSWISE_KINDS = ("class", "classes")  # D_f = the whole listed classes: the same for every seed


def reference_seed(j: int) -> int:
    """The training seed of reference model j (never a reporting, tuning or shadow seed)."""
    return 500_000 + j


@dataclass(frozen=True)
class ReferenceOriginal(Original):
    """The cell's recipe trained on D_r alone (never on D_f), keyed like an original."""

    split: Split | None = None  # whose retain set it trains on

    @property
    def label(self) -> str:
        s = self.split
        return f"reference model {self.seed - reference_seed(0)} {self.dataset}/{self.model}/{s.scenario}/split seed {s.seed}"

    def load(self, ctx: RunContext):
        return self._fit_on_training_subset(ctx, self.split.load(ctx.store).retain)


def reference_models(original: Original, split: Split, kind: str, count: int) -> list[Job]:
    """The split the references train on (the seed-0 one for class-wise scenarios, so seeds
    share them) followed by the `count` ReferenceOriginals."""
    base = dataclasses.replace(split, seed=0) if kind in CLASSWISE_KINDS else split
    refs = [ReferenceOriginal(dataset=original.dataset, data=original.data, model=original.model, arch=original.arch,
                              recipe=original.recipe, seed=reference_seed(j), data_options=original.data_options,
                              split=base) for j in range(count)]
    return [base, *refs]


def wants_references(settings: dict) -> bool:
    return "refmia" in settings.get("attacks", ())


def reference_outputs(ctx: RunContext, reference: ReferenceOriginal, data, split):
    """A reference model's outputs on the cell's D_f and test split (cached as "outputs")."""
    from .outputs import forward_split, load_outputs, save_outputs
    from .predictor import Predictor

    key = stable_hash({"reference_outputs": reference.key, "split": split.hash, "v": REFERENCE_OUTPUTS_VERSION})
    state = ctx.store.load_artifact("outputs", key)
    if state is not None:
        return load_outputs(state)
    out = forward_split(Predictor(reference.load(ctx).model), data, split, ctx.device, parts=("forget", "test"))
    ctx.store.save_artifact("outputs", key, save_outputs(out))
    return out


def null_band(phi_refs: np.ndarray, neg: np.ndarray) -> dict:
    """What a model that never saw D_f reads: each reference audited against Retrain, scored
    against the other references (leave one out). One model pair spreads far beyond the
    per-example CI (docs/metrics.md: digits AUC 62–79 for models trained exactly like Retrain),
    so a method's `refmia_auc` means something only outside [refmia_null_lo, refmia_null_hi]."""
    if len(phi_refs) < 3:  # one remaining reference gives no pooled σ
        return {}
    null = []
    for j in range(len(phi_refs)):
        mu, sd = ls.out_gaussian(np.delete(phi_refs, j, axis=0))
        null.append(ls.auc(ls.offline_scores(mu, sd, phi_refs[j]), ls.offline_scores(mu, sd, neg)))
    return {"refmia_null": [round(v, 2) for v in null], "refmia_null_lo": min(null), "refmia_null_hi": max(null)}


def reference_fields(references, ctx: RunContext, data, split, outputs, retrain_outputs, seed: int) -> dict:
    """The record's `refmia_*` and `rmia_*` fields: the audited predictor's outputs (positives)
    against the cell's Retrain's (negatives), both scored against the reference models."""
    refs = [reference_outputs(ctx, r, data, split) for r in references]
    fields = {"refmia_models": len(refs)}
    phi_refs = np.stack([ls.phi(r.forget.logits, r.forget.labels) for r in refs])
    mu, sd = ls.out_gaussian(phi_refs)
    pos = ls.phi(outputs.forget.logits, outputs.forget.labels)
    neg = ls.phi(retrain_outputs.forget.logits, retrain_outputs.forget.labels)
    fields.update(ls.summary(ls.offline_scores(mu, sd, pos), ls.offline_scores(mu, sd, neg), seed=seed,
                             prefix="refmia"))
    fields.update(null_band(phi_refs, neg))

    def prob(part) -> np.ndarray:
        return ls.true_class_probability(part.logits, part.labels)

    ref_x = np.stack([prob(r.forget) for r in refs])
    ref_z = np.stack([prob(r.test) for r in refs])
    rmia = [ls.rmia_scores(prob(o.forget), ref_x, prob(o.test), ref_z) for o in (outputs, retrain_outputs)]
    fields.update(ls.summary(*rmia, seed=seed, prefix="rmia"))
    return fields
