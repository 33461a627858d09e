"""U-LiRA as an attack plugin: shadow models per cell, shadow runs per method (../shared/MIA.md).

    ShadowSplit(cell split, k, K)           → forget = S_k ⊂ D_f, retain = D_r   artifacts/split
    ShadowOriginal(recipe, seed_k, S_k)     → the recipe trained on D_r ∪ S_k    artifacts/original
    Unlearn(method, shadow original, S_k)   → the method's shadow predictor      artifacts/predictor

The shadow jobs are new job types (their type name is in their keys), so turning the attack
on adds jobs and never changes the key of the cell's Original, Retrain or real method runs;
shadow originals are shared by every method and cached like originals. Each method's Evaluate
then lists its K shadow Unlearns as dependencies (`ULiRA.jobs`, through `cell.rerun`), and
`ULiRA.score` turns their φ on D_f into the record's `ulira_*` fields. (Retrain needs no shadow
runs: its negatives are the cell's Retrain itself; the reference-model screen has its own
models, refmia.py.) Shadows are job types of their own rather than a `Resource`: a resource
depends on the original only, a shadow on the cell's split too.

Instance table: `[evaluation.attacks.ulira] shadows = 16, variance = "tied", null_models = 4`. Its
Evaluate key entries are those of the flat fields it had before attacks were plugins
(`ulira_shadows`, and `ulira_variance` unless per side), plus `ulira_null_models` unless 0.

Its null band (`ulira_null_lo/hi`): the method's own fitted Gaussians applied to models that never
saw D_f (the screen's reference models, trained on D_r; the same jobs when both attacks are on),
each audited as the target against the cell's Retrain. An AUC inside it is what a never-trained
model reads; above it the target is identifiable as trained on D_f, below it as over-forgotten.
`ulira_unseparated` is the share of D_f whose IN and OUT means coincide (saturated shadows): where
it is large, an AUC of 50 means the attack saw nothing, not that the method forgot.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..jobs import Original, RunContext, Split, original_fields
from ..params import Check, Options, param
from ..plots import Figure, FigureInput, method_color, pyplot, register_figure, save_figure
from ..store import Store
from . import lira_stats as ls
from .base import Attack, AttackInput, CellJobs, Column, register_attack
from .refmia import ReferenceOriginal, null_band, reference_models

VARIANCES = ("tied", "per_side")  # lira_stats.fit_gaussians: one tied σ, or one per side (MIA.md's text)
# The σ rule of U-LiRA runs made before the option existed: Evaluate keys leave it out (their
# records stay valid) and a record without `ulira_variance` used it.
UNKEYED_VARIANCE = "per_side"


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
        o = ShadowOriginal(**{**original_fields(original), "seed": shadow_seed(original.seed, k)}, split=s)
        out.append((o, s))
    return out


def shadow_seconds(store: Store, unlearns) -> tuple[float, float]:
    """(training seconds of the shadow originals, wall seconds of the shadow unlearning runs)."""
    train = sum((store.read_record("original", u.original.key) or {}).get("seconds") or 0.0 for u in unlearns)
    unlearn = sum((store.read_record("unlearn", u.key) or {}).get("wall_s") or 0.0 for u in unlearns)
    return float(train), float(unlearn)


def forget_phi(inp: AttackInput, unlearn) -> np.ndarray:
    """φ of a shadow predictor on the cell's whole D_f (its outputs cached in the store)."""
    out = inp.outputs_of(unlearn, ("forget",)).forget
    return ls.phi(out.logits, out.labels)


@dataclass(frozen=True)
class ULiRAParams:
    shadows: int = param(16, Check(lambda k: k >= 2 and k % 2 == 0, "that is even and at least 2 (8+ for real use)"),
                         "K shadows per cell; every forget example is IN exactly K/2 of them")
    # tied is the default because per side misreads a class-wise null (docs/metrics.md, "Which σ")
    variance: str = param("tied", Options(VARIANCES), "pooled σ: one tied over IN and OUT, or one per side")
    null_models: int = param(4, Check(lambda k: k == 0 or k >= 2, "that is 0 (no null band) or at least 2"),
                             "models trained on D_r only, each audited as the target: the null band (the screen's "
                             "reference models, shared with it)")


@register_attack("ulira")
class ULiRA(Attack):
    """U-LiRA (Hayes et al., SaTML 2025): per-example Gaussians from K shadow runs of the audited
    method; positives = the audited predictor on D_f, negatives = the cell's Retrain on D_f."""

    label = "U-LiRA (per-example, shadow-calibrated)"
    Params = ULiRAParams
    rank = 10
    deps_field = "shadows"
    degenerate = {"ulira_unseparated": "U-LiRA degenerate: no IN/OUT separation on {:.0f}% of D_f"}
    columns = {
        "ulira_auc": Column("U-LiRA AUC", "50", summary=True, null=("ulira_null_lo", "ulira_null_hi")),
        "ulira_null_lo": Column("U-LiRA null low"),
        "ulira_null_hi": Column("U-LiRA null high"),
        "ulira_auc_lo": Column("AUC CI low"),
        "ulira_auc_hi": Column("AUC CI high"),
        "ulira_tpr1": Column("U-LiRA TPR@1%FPR", "1", summary=True, side="TPR@1%FPR (1)"),
        "ulira_tpr01": Column("TPR@0.1%FPR", "0.1"),
        "ulira_bacc": Column("bal. acc.", "50"),
        "ulira_win": Column("examples won", "50"),
        "ulira_shadow_train_s": Column("shadows (s)"),
        "ulira_shadow_unlearn_s": Column("shadow unlearning (s)"),
    }

    def key_fields(self) -> dict:
        out = {"ulira_shadows": self.params.shadows}
        if self.params.variance != UNKEYED_VARIANCE:  # per side keeps the keys of runs made before the option
            out["ulira_variance"] = self.params.variance
        if self.params.null_models:  # 0 keeps the keys of runs made before the null band
            out["ulira_null_models"] = self.params.null_models
        return out

    def jobs(self, cell: CellJobs) -> tuple:
        """The audited method rerun on each of the cell's K shadows (shadow originals are shared),
        and the null band's models trained on D_r (the same jobs as the screen's references)."""
        shadows = tuple(cell.rerun(o, s) for o, s in shadow_cell(cell.original, cell.split, self.params.shadows))
        return shadows + tuple(reference_models(cell.original, cell.split, cell.kind, self.params.null_models))

    def score(self, inp: AttackInput) -> dict:
        n = len(inp.split.forget)
        shadows = [m for m in inp.models if not isinstance(m, ReferenceOriginal)]
        nulls = [m for m in inp.models if isinstance(m, ReferenceOriginal)]
        pos = ls.phi(inp.outputs.forget.logits, inp.outputs.forget.labels)
        neg = ls.phi(inp.retrain.forget.logits, inp.retrain.forget.labels)
        phis = np.stack([forget_phi(inp, u) for u in shadows])
        mask = np.stack([u.split.membership(n) for u in shadows])
        g = ls.fit_gaussians(phis, mask, self.params.variance)
        fields = ls.summary(ls.lira_scores(g, pos), ls.lira_scores(g, neg), seed=inp.seed)
        train_s, unlearn_s = shadow_seconds(inp.ctx.store, shadows)
        fields.update(ulira_shadows=len(shadows), ulira_variance=self.params.variance, ulira_sd_in=g.sd_in,
                      ulira_sd_out=g.sd_out, ulira_shadow_train_s=train_s, ulira_shadow_unlearn_s=unlearn_s,
                      ulira_unseparated=ls.unseparated_share(g), ulira_saturated=ls.saturated_share(phis))
        null = [ls.auc(ls.lira_scores(g, forget_phi(inp, m)), ls.lira_scores(g, neg)) for m in nulls]
        fields.update(null_band("ulira", null))
        return fields

    @classmethod
    def describe(cls, rows) -> dict:
        """"U-LiRA σ": the rule each row's numbers used (records made before the option have none:
        they were per side)."""
        if "ulira_auc" not in rows:
            return {}
        rule = rows["ulira_variance"] if "ulira_variance" in rows else rows["ulira_auc"].map(lambda _: None)
        return {"U-LiRA σ": rule.fillna(UNKEYED_VARIANCE).where(rows["ulira_auc"].notna(), "")}


# ---------------------------------------------------------------------------------------------
# Its figures in the report: per-example success, and the population vs the per-example attack


def _attacked(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[pd.to_numeric(rows["ulira_auc"], errors="coerce").notna()] if "ulira_auc" in rows else rows.iloc[:0]


def _axes():
    return pyplot().subplots(figsize=(6, 4), layout="constrained")


def _finish(fig, ax, inp: FigureInput, kind: str, title: str) -> list[Figure]:
    """Legend, title, the files (PNG + PDF) of one of U-LiRA's figures."""
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return [save_figure(fig, inp.path(kind), inp.cell, kind, title)]


def _margins(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """variant → per-example margins Λ_pos(x) − Λ_neg(x), pooled over seeds."""
    out = {}
    for variant, g in rows.groupby("variant", sort=False):
        values = [np.asarray(m, float) for m in g["ulira_margin"] if isinstance(m, list)]
        if values:
            out[variant] = np.concatenate(values)
    return out


@register_figure("ulira_examples", caption=(
    "Per forget example, U-LiRA's score of the unlearned predictor minus Retrain's, pooled over seeds: the "
    "curve gives the share of examples above each margin. An unlearned predictor Retrain-like for every "
    "example crosses 50% at 0; a curve far right of it leaves examples identifiable."))
def example_success_figure(inp: FigureInput) -> list[Figure]:
    """Share of forget examples whose U-LiRA margin over Retrain exceeds t, per method."""
    rows = _attacked(inp.rows)
    if rows.empty:
        return []
    fig, ax = _axes()
    methods = dict(zip(rows["variant"], rows["method"], strict=False))
    for variant, margin in _margins(rows).items():
        t = np.sort(margin)
        share = 100.0 * (1.0 - np.arange(len(t)) / len(t))
        ax.step(t, share, where="post", color=method_color(methods[variant]), label=inp.label(variant))
    ax.axvline(0, color="k", lw=0.8, ls=":")
    ax.axhline(50, color="k", lw=0.8, ls=":")
    ax.set_xscale("symlog")
    ax.set_xlabel("per-example margin Λ(unlearned) − Λ(Retrain)")
    ax.set_ylabel("% of forget examples above")
    return _finish(fig, ax, inp, "ulira_examples", f"U-LiRA per example: {' / '.join(map(str, inp.cell))}")


@register_figure("svc_vs_ulira", caption=(
    "Each method at (SVC MIA-Efficacy, U-LiRA AUC), mean ± std over seeds. Ideal: the crossing of the dotted "
    "lines (Retrain's MIA-Efficacy, AUC 50); a point near Retrain's MIA-Efficacy but high on AUC is one the "
    "population attack misjudges."))
def svc_vs_ulira_figure(inp: FigureInput) -> list[Figure]:
    """Each method at (SVC MIA-Efficacy, U-LiRA AUC), mean ± std over seeds."""
    rows = _attacked(inp.rows)
    if rows.empty:
        return []
    retrain_mia = pd.to_numeric(inp.rows.loc[inp.rows["method"].eq("retrain"), "mia_efficacy"]).mean()
    fig, ax = _axes()
    for variant, g in rows.groupby("variant", sort=False):
        x, y = pd.to_numeric(g["mia_efficacy"]), pd.to_numeric(g["ulira_auc"])
        ax.errorbar(x.mean(), y.mean(), xerr=x.std(ddof=1) if len(g) > 1 else None,
                    yerr=y.std(ddof=1) if len(g) > 1 else None, fmt="o",
                    color=method_color(g["method"].iloc[0]), label=inp.label(variant))
    ax.axhline(50, color="k", lw=0.8, ls=":")
    if np.isfinite(retrain_mia):
        ax.axvline(retrain_mia, color="k", lw=0.8, ls=":")
    ax.set_xlabel("SVC MIA-Efficacy (%; ideal: Retrain's, dotted)")
    ax.set_ylabel("U-LiRA AUC (%; ideal 50)")
    return _finish(fig, ax, inp, "svc_vs_ulira", f"population vs per-example attack: {' / '.join(map(str, inp.cell))}")
