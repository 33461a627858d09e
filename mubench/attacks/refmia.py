"""The reference-model screen as an attack plugin (../shared/MIA.md, attack 2): models that never saw D_f.

    ReferenceOriginal(recipe, seed_j, D_r)   → the cell's recipe trained on D_r only   artifacts/original

K' reference models are the cell's recipe trained on its retain set with their own seeds
(`reference_seed`, disjoint from reporting, tuning and shadow seeds). No method runs on them,
so the screen costs K' trainings, not K' × (training + every method's run) like U-LiRA:
cheap enough to be on by default on the small presets (`presets.Preset.attacks`). Instance
table: `[evaluation.attacks.refmia] models = 4`, keyed as the flat `reference_models` it was.

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

from ..jobs import Original, RunContext, Split, original_fields
from ..params import Interval, param
from . import lira_stats as ls
from .base import Attack, AttackInput, CellJobs, Column, register_attack

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


def reference_models(original: Original, split: Split, kind: str, count: int) -> list[ReferenceOriginal]:
    """The `count` ReferenceOriginals of a cell, trained on the seed-0 split's retain set for
    class-wise scenarios (so seeds share them), else on the cell's own."""
    base = dataclasses.replace(split, seed=0) if kind in CLASSWISE_KINDS else split
    return [ReferenceOriginal(**{**original_fields(original), "seed": reference_seed(j)}, split=base)
            for j in range(count)]


def null_band(prefix: str, null: list[float]) -> dict:
    """`{prefix}_null` (each value), `_null_lo`, `_null_hi`: what models that never saw D_f read
    as the target. One model pair spreads far beyond the per-example CI (docs/metrics.md: digits
    AUC 62–79 for models trained exactly like Retrain), so an AUC means something only outside the
    band, above it (identifiable as trained on D_f) or below it (identifiable as over-forgetting)."""
    if not null:
        return {}
    return {f"{prefix}_null": [round(v, 2) for v in null], f"{prefix}_null_lo": min(null), f"{prefix}_null_hi": max(null)}


def offline_null(phi_refs: np.ndarray, neg: np.ndarray) -> list[float]:
    """Offline LiRA's AUC of each reference as the target, scored against the others, against
    Retrain's φ `neg` (none below three references: one remaining gives no pooled σ)."""
    if len(phi_refs) < 3:
        return []

    def one(rest, j):
        mu, sd = ls.out_gaussian(phi_refs[rest])
        return ls.auc(ls.offline_scores(mu, sd, phi_refs[j]), ls.offline_scores(mu, sd, neg))

    return ls.leave_one_out(len(phi_refs), one)


def rmia_null(ref_x: np.ndarray, ref_z: np.ndarray, neg_x: np.ndarray, neg_z: np.ndarray) -> list[float]:
    """RMIA's AUC of each reference as the target (p_y on D_f `ref_x[j]`, on the population
    `ref_z[j]`), the others as references, against Retrain's (`neg_x`, `neg_z`)."""
    if len(ref_x) < 2:
        return []

    def one(rest, j):
        pos = ls.rmia_scores(ref_x[j], ref_x[rest], ref_z[j], ref_z[rest])
        return ls.auc(pos, ls.rmia_scores(neg_x, ref_x[rest], neg_z, ref_z[rest]))

    return ls.leave_one_out(len(ref_x), one)


def reference_fields(inp: AttackInput) -> dict:
    """The record's `refmia_*` and `rmia_*` fields: the audited predictor's outputs (positives)
    against the cell's Retrain's (negatives), both scored against the reference models; each
    with its null band, every reference in turn audited against the others (leave one out)."""
    refs = [inp.outputs_of(r, ("forget", "test")) for r in inp.models]
    fields = {"refmia_models": len(refs)}
    phi_refs = np.stack([ls.phi(r.forget.logits, r.forget.labels) for r in refs])
    mu, sd = ls.out_gaussian(phi_refs)
    pos = ls.phi(inp.outputs.forget.logits, inp.outputs.forget.labels)
    neg = ls.phi(inp.retrain.forget.logits, inp.retrain.forget.labels)
    fields.update(ls.summary(ls.offline_scores(mu, sd, pos), ls.offline_scores(mu, sd, neg), seed=inp.seed,
                             prefix="refmia"))
    fields["refmia_saturated"] = ls.saturated_share(np.vstack([phi_refs, neg[None]]))

    def prob(part) -> np.ndarray:
        return ls.true_class_probability(part.logits, part.labels)

    ref_x = np.stack([prob(r.forget) for r in refs])
    ref_z = np.stack([prob(r.test) for r in refs])
    rmia = [ls.rmia_scores(prob(o.forget), ref_x, prob(o.test), ref_z) for o in (inp.outputs, inp.retrain)]
    fields.update(ls.summary(*rmia, seed=inp.seed, prefix="rmia"))
    fields.update(null_band("refmia", offline_null(phi_refs, neg)))
    fields.update(null_band("rmia", rmia_null(ref_x, ref_z, prob(inp.retrain.forget), prob(inp.retrain.test))))
    return fields


@dataclass(frozen=True)
class RefMIAParams:
    models: int = param(4, Interval(2, None), "K' reference models per retain set (trained on D_r, never on D_f)")


@register_attack("refmia")
class ReferenceScreen(Attack):
    """The reference-model screen: offline LiRA (`refmia_*`, with its null band) and RMIA
    (`rmia_*`) of the audited predictor against models that never saw D_f; no shadow runs."""

    label = "reference-model screen (offline LiRA, RMIA)"
    Params = RefMIAParams
    rank = 20
    deps_field = "references"
    degenerate = {"refmia_saturated": "screen degenerate: φ saturated on {:.0f}% of D_f"}
    columns = {
        "refmia_auc": Column("Ref-MIA AUC", "50", summary=True, null=("refmia_null_lo", "refmia_null_hi")),
        "refmia_null_lo": Column("Ref-MIA null low"),
        "refmia_null_hi": Column("Ref-MIA null high"),
        "rmia_auc": Column("RMIA AUC", "50", summary=True, null=("rmia_null_lo", "rmia_null_hi")),
        "rmia_null_lo": Column("RMIA null low"),
        "rmia_null_hi": Column("RMIA null high"),
    }

    def key_fields(self) -> dict:
        return {"reference_models": self.params.models}  # the flat field's key, as before attacks were plugins

    def jobs(self, cell: CellJobs) -> tuple:
        return tuple(reference_models(cell.original, cell.split, cell.kind, self.params.models))

    def score(self, inp: AttackInput) -> dict:
        return reference_fields(inp)
