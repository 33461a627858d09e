"""U-LiRA (issue 15, ../shared/MIA.md): the statistics by hand, then one real digits run with
K = 8 shadows — adding the attack trains no original, Retrain or real method output; a forget
vector learns its own δ per shadow; changing the σ rule re-runs evaluation only; Retrain audited
against another-seed Retrain reads ≈ 50 (class:0 and random:10); the untouched original clearly
more (class:0; random:10 is xfail: measured, see the test).

The run uses 400 training images and a 20-epoch recipe, so the original memorises what it saw:
on all 1,347 images digits leaks almost no membership (train 99.5% / test 98.9%), and no attack
can find what is not there (docs/metrics.md, "Which σ", benchmarks/ulira_power.py)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from mubench.attacks import lira_stats as ls
from mubench.attacks.refmia import ReferenceOriginal
from mubench.attacks.ulira import ShadowOriginal, ULiRAParams
from mubench.config import EvaluationConfig, ExecutionConfig, ExperimentConfig
from mubench.errors import ConfigError
from mubench.jobs import Original, RunContext
from mubench.method_jobs import Evaluate, Unlearn
from mubench.outputs import forward_split
from mubench.predictor import Predictor
from mubench.runner import build_plan, execute
from mubench.store import Store
from mubench.validate import validate_config

K = 8

# ---------------------------------------------------------------------------------------------
# Statistics, by hand


def test_phi_is_the_logit_of_the_true_class_probability():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
    labels = torch.tensor([0, 2])
    p = torch.softmax(logits.double(), 1)[torch.arange(2), labels].numpy()
    assert np.allclose(ls.phi(logits, labels), np.log(p) - np.log(1 - p))
    huge = ls.phi(torch.tensor([[100.0, 0.0]]), torch.tensor([0]))  # p_y rounds to 1: clipped
    assert huge[0] == pytest.approx(math.log(1 - 1e-7) - math.log(1e-7))


def test_auc_tpr_and_balanced_accuracy_by_hand():
    assert ls.auc(np.array([2.0, 1.0]), np.array([0.0, 1.0])) == pytest.approx(87.5)  # (1+1+1+½)/4
    neg = np.arange(100.0)
    pos = np.array([97.5, 98.5, 99.5, 10.0])
    assert ls.tpr_at_fpr(pos, neg, 0.01) == pytest.approx(50.0)  # one negative allowed above: t = 98
    assert ls.tpr_at_fpr(pos, neg, 0.001) == pytest.approx(25.0)  # none allowed: t = 99
    assert ls.balanced_accuracy(np.array([1.0, -1.0]), np.array([-1.0, -2.0])) == pytest.approx(75.0)


def test_pooled_gaussians_by_hand():
    phis = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 14.0], [7.0, 18.0]])
    mask = np.array([[True, False], [True, False], [False, True], [False, True]])
    g = ls.fit_gaussians(phis, mask)
    assert np.allclose(g.mu_in, [2.0, 16.0]) and np.allclose(g.mu_out, [6.0, 15.0])
    assert g.sd_in == pytest.approx(math.sqrt((1 + 1 + 4 + 4) / 2))  # 4 values − 2 examples
    assert g.sd_out == pytest.approx(math.sqrt((1 + 1 + 25 + 25) / 2))
    tied = ls.fit_gaussians(phis, mask, "tied")  # both sides' squares over 8 values − 4 means
    assert tied.sd_in == tied.sd_out == pytest.approx(math.sqrt((10 + 52) / 4))
    assert np.allclose(tied.mu_in, g.mu_in) and np.allclose(tied.mu_out, g.mu_out)
    with pytest.raises(ValueError, match="'per_side' or 'tied'"):
        ls.fit_gaussians(phis, mask, "per-side")
    x = np.array([2.0])
    assert ls.lira_scores(dataclasses.replace(g, mu_in=g.mu_in[:1], mu_out=g.mu_out[:1]), x)[0] == pytest.approx(
        norm.logpdf(2.0, 2.0, g.sd_in) - norm.logpdf(2.0, 6.0, g.sd_out))


def test_synthetic_gaussian_phi_recovers_the_known_auc():
    """φ_in ~ N(μ(x) + d, 1), φ_out ~ N(μ(x), 1): Λ is increasing in φ − μ(x), so the attack's
    AUC is P(N(d, 1) > N(0, 1)) = Φ(d / √2) (76.0% for d = 1). K = 64 keeps the noise of the
    estimated per-example means (which lowers the AUC a little) below the tolerance."""
    rng = np.random.default_rng(0)
    n, k, d = 2000, 64, 1.0
    mu = rng.normal(0, 3, n)  # examples differ a lot: a population attack could not do this
    mask = ls.balanced_assignment(n, k, seed=1)
    phis = mu + d * mask + rng.normal(0, 1, (k, n))
    g = ls.fit_gaussians(phis, mask)
    assert g.sd_in == pytest.approx(1.0, abs=0.05) and g.sd_out == pytest.approx(1.0, abs=0.05)
    pos, neg = mu + d + rng.normal(0, 1, n), mu + rng.normal(0, 1, n)
    fields = ls.summary(ls.lira_scores(g, pos), ls.lira_scores(g, neg), seed=0)
    expected = 100 * norm.cdf(d / math.sqrt(2))
    assert fields["ulira_auc"] == pytest.approx(expected, abs=2.0)
    assert fields["ulira_auc_lo"] < expected < fields["ulira_auc_hi"]
    same = ls.summary(ls.lira_scores(g, neg), ls.lira_scores(g, mu + rng.normal(0, 1, n)), seed=0)
    assert same["ulira_auc_lo"] < 50 < same["ulira_auc_hi"]


@pytest.mark.parametrize("n,k", [(7, 4), (180, 16), (1, 8)])
def test_balanced_assignment_puts_every_example_in_exactly_half(n, k):
    mask = ls.balanced_assignment(n, k, seed=3)
    assert mask.shape == (k, n) and (mask.sum(0) == k // 2).all()
    assert np.array_equal(mask, ls.balanced_assignment(n, k, seed=3))
    if n > 5:
        assert not np.array_equal(mask, ls.balanced_assignment(n, k, seed=4))


def test_bad_attack_settings_fail_in_one_sentence():
    def check(**evaluation):
        validate_config(ExperimentConfig(evaluation=EvaluationConfig(**evaluation)))

    with pytest.raises(ConfigError, match="unknown attack 'lira'; did you mean 'ulira'"):
        check(attacks=("svc", "lira"))
    with pytest.raises(ConfigError, match=r"\[evaluation.attacks.ulira\]: 'shadows' must be an integer that is even"):
        check(attacks={"ulira": {"shadows": 5}})
    with pytest.raises(ConfigError, match="'variance' must be one of 'tied', 'per_side'; got 'pooled'"):
        check(attacks={"ulira": {"variance": "pooled"}})
    with pytest.raises(ConfigError, match="unknown hyper-parameter 'shadow'; did you mean 'shadows'"):
        check(attacks={"ulira": {"shadow": 8}})


# ---------------------------------------------------------------------------------------------
# One real run on digits


def _attacks(variance: str | None = None) -> dict:
    """[evaluation.attacks] of the audited run: the screen and U-LiRA with K shadows."""
    return {"svc": {}, "refmia": {}, "ulira": {"shadows": K, **({"variance": variance} if variance else {})}}


def _config(out, **evaluation) -> ExperimentConfig:
    # Two loky workers of one thread each: a job's numbers do not depend on the layout (the thread
    # count is fixed and keyed), and on 2 cores this runs the fixture in 2/3 of the sequential time.
    return ExperimentConfig(datasets=("digits",), scenarios=("class:0", "random:10"), seeds=(0,),
                            methods=("retrain", "forget_vector"), calibration=("original",), out=str(out), precision="fp32",
                            train_subset=400, recipe={"epochs": 20}, method_params={"forget_vector": {"epochs": 5}},
                            evaluation=EvaluationConfig(**evaluation),
                            execution=ExecutionConfig(backend="loky", jobs=2))


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """A finished run without the attack, then the same run with U-LiRA added (K = 8)."""
    out = tmp_path_factory.mktemp("ulira")
    plain = _config(out)
    assert not execute(build_plan(plain, Store(out)), plain, progress=False).failed
    config = _config(out, attacks=_attacks())
    plan = build_plan(config, Store(out))
    pending = plan.pending()
    result = execute(plan, config, progress=False)
    assert not result.failed, result.failed
    return out, plan, pending, {r["key"]: r for r in result.records}


def test_adding_the_attack_trains_no_original_retrain_or_real_output(audited):
    out, plan, pending, _ = audited
    assert not [j for j in pending if type(j) is Original]
    real = [j for j in pending if isinstance(j, Unlearn) and not isinstance(j.original, ShadowOriginal)]
    assert real == []
    counts = {t: sum(type(j) is t for j in pending) for t in (ShadowOriginal, ReferenceOriginal, Unlearn, Evaluate)}
    # per scenario: K shadows, K shadow runs each of the forget vector and the Original row
    # (Retrain needs none), three Evaluates; the reference models of the null band came with the
    # plain run (digits' default attacks include the screen, whose models they are)
    assert counts == {ShadowOriginal: 2 * K, ReferenceOriginal: 0, Unlearn: 4 * K, Evaluate: 6}


def test_the_untouched_original_reads_above_both_null_bands_on_class_0(audited):
    """The direction of the records' summaries: the Original row is a member of D_f, so its
    U-LiRA and screen AUCs sit well above what never-trained models read (a swap of the member
    and non-member sides in either summary fails here)."""
    _, plan, _, records = audited
    ev = next(e for e in plan.evaluations() if e.method == "original" and e.scenario == "class:0")
    r = records[ev.key]
    assert r["ulira_auc"] > 75 and r["ulira_auc"] > r["ulira_null_hi"] + 20, (r["ulira_auc"], r["ulira_null"])
    assert r["refmia_auc"] > 90 and r["refmia_auc"] > r["refmia_null_hi"] + 10, (r["refmia_auc"], r["refmia_null"])
    assert r["rmia_auc"] > r["rmia_null_hi"], (r["rmia_auc"], r["rmia_null"])
    assert len(r["ulira_null"]) == 4 and r["ulira_unseparated"] < 50


def test_a_forget_vectors_shadows_each_learn_their_own_delta(audited):
    out, plan, _, _ = audited
    store = Store(out)
    for ev in plan.evaluations():
        if ev.method != "forget_vector":
            continue
        shadows = [m for m in ev.models_of("ulira") if isinstance(m, Unlearn)]
        deltas = [store.load_artifact("predictor", u.key)["delta"] for u in (ev.unlearn, *shadows)]
        assert len(deltas) == K + 1
        assert len({u.original.key for u in shadows}) == K  # each on its own shadow original
        for i in range(len(deltas)):
            for j in range(i):
                assert not torch.equal(deltas[i], deltas[j])


def test_records_carry_the_attack_with_its_ci(audited):
    _, plan, _, records = audited
    fv = [records[e.key] for e in plan.evaluations() if e.method == "forget_vector"]
    assert len(fv) == 2
    for r in fv:
        assert r["ulira_shadows"] == K and 0 <= r["ulira_auc"] <= 100
        assert r["ulira_auc_lo"] <= r["ulira_auc"] <= r["ulira_auc_hi"]
        assert len(r["ulira_margin"]) == len(r["refmia_margin"]) > 0
        assert r["ulira_shadow_train_s"] > 0 and r["ulira_shadow_unlearn_s"] > 0


def _phi(model, data, split) -> np.ndarray:
    predictor = model if isinstance(model, Predictor) else Predictor(model)
    out = forward_split(predictor, data, split, torch.device("cpu"), parts=("forget",))
    return ls.phi(out.forget.logits, out.forget.labels)


DEFAULT_VARIANCE = ULiRAParams().variance  # the sanity checks read the default rule


def _calibrated(audited, scenario, variance=DEFAULT_VARIANCE):
    """Gaussians fit on the shadow originals themselves (IN: trained on x; OUT: never), and φ on
    D_f of the cell's Retrain, of another seed's Retrain (reference model 0, trained on D_r)
    and of the untouched original."""
    out, plan, _, _ = audited
    ev = next(e for e in plan.evaluations() if e.method == "forget_vector" and e.scenario == scenario)
    ctx = RunContext(store=Store(out), device=torch.device("cpu"))
    data = ev.unlearn.original.ref.load()
    split = ev.unlearn.split.load(ctx.store)
    shadows = [m for m in ev.models_of("ulira") if isinstance(m, Unlearn)]
    phis = np.stack([_phi(u.original.load(ctx).model, data, split) for u in shadows])
    mask = np.stack([u.split.membership(len(split.forget)) for u in shadows])
    g = ls.fit_gaussians(phis, mask, variance)
    retrain = ls.lira_scores(g, _phi(ev.reference.unlearn.predictor(ctx), data, split))
    other_seed = ls.lira_scores(g, _phi(ev.models_of("refmia")[0].load(ctx).model, data, split))
    original = ls.lira_scores(g, _phi(ev.unlearn.original.load(ctx).model, data, split))
    return retrain, other_seed, original


@pytest.mark.parametrize("scenario", ["class:0", "random:10"])
def test_retrain_audited_against_another_seeds_retrain_reads_50(audited, scenario):
    """≈ 50 with the default (tied) σ: inside the per-example CI, or within 3 points of 50. The CI covers
    examples, not models, and one model per side carries a model-level offset (docs/metrics.md,
    limits)."""
    retrain, other_seed, _ = _calibrated(audited, scenario)
    null = ls.summary(other_seed, retrain, seed=0)
    auc = null["ulira_auc"]
    assert null["ulira_auc_lo"] <= 50 <= null["ulira_auc_hi"] or abs(auc - 50) < 3, auc


def test_per_side_sigma_misreads_the_class_wise_null(audited):
    """Why the tied σ exists: Retrain's φ on a class it never saw lies far outside both shadow
    Gaussians, where a per-side Λ is set by which σ is larger; two Retrain-like models then read
    further from 50 than with one tied σ (docs/metrics.md, "Which σ")."""
    def null_auc(variance):
        retrain, other_seed, _ = _calibrated(audited, "class:0", variance)
        return ls.auc(other_seed, retrain)

    assert abs(null_auc("per_side") - 50) > abs(null_auc("tied") - 50) + 5


@pytest.mark.parametrize("scenario", [
    "class:0",
    pytest.param("random:10", marks=pytest.mark.xfail(strict=False, reason=(
        "40 forget examples: the original reads well above the null but the per-example CIs still "
        "overlap at K = 8 on digits[400] (measured in docs/metrics.md, 'Which σ')"))),
])
def test_the_untouched_original_reads_clearly_more_than_retrain(audited, scenario):
    retrain, other_seed, original = _calibrated(audited, scenario)
    null = ls.summary(other_seed, retrain, seed=0)
    hit = ls.summary(original, retrain, seed=0)
    assert hit["ulira_auc_lo"] > null["ulira_auc_hi"] and hit["ulira_auc"] > 65, hit["ulira_auc"]


def test_the_sigma_rule_reruns_evaluation_only(audited):
    """U-LiRA's variance is an evaluation setting: switching it plans Evaluates and nothing else,
    and the records say which rule ran (the audited run used the default, tied)."""
    out, plan, _, records = audited
    fv = [records[e.key] for e in plan.evaluations() if e.method == "forget_vector"]
    assert all(r["ulira_variance"] == "tied" and r["ulira_sd_in"] == r["ulira_sd_out"] for r in fv)
    config = _config(out, attacks=_attacks("per_side"))
    plan = build_plan(config, Store(out))
    assert {type(j) for j in plan.pending()} == {Evaluate}
    result = execute(plan, config, progress=False)
    fv = [r for r in result.records if r["method"] == "forget_vector"]
    assert len(fv) == 2 and all(r["ulira_variance"] == "per_side" and r["ulira_sd_in"] != r["ulira_sd_out"] for r in fv)


def test_without_the_attack_evaluate_settings_are_those_of_older_runs():
    """The default [evaluation] adds no field to Evaluate keys (runs made before attacks
    existed stay cached); asking for U-LiRA adds the flat fields it was keyed by before attacks
    were plugins. Per-side σ, the rule of runs made before the σ option, keeps their keys; the
    default tied σ gets its own, so an old per-side record is never read as a tied one."""
    from mubench.planner import evaluation_settings

    def settings(attacks, dataset="digits"):
        return evaluation_settings(dataclasses.replace(ExperimentConfig(), evaluation=EvaluationConfig(
            attacks=attacks, preset_attacks=False)), dataset)

    plain = evaluation_settings(ExperimentConfig(), "fashion-mnist")
    assert not {"attacks", "ulira_shadows", "reference_models"} & set(plain)
    assert settings(("svc",)) == plain
    on = settings({"ulira": {"shadows": 8}})
    assert on["attacks"] == ("svc", "ulira") and on["ulira_shadows"] == 8 and "reference_models" not in on
    assert on["ulira_variance"] == "tied"
    per_side = settings({"ulira": {"shadows": "8", "variance": "per_side"}})  # --set strings convert alike
    assert per_side == {k: v for k, v in on.items() if k != "ulira_variance"}


def _record(method: str, seed: int, **fields) -> dict:
    base = {"dataset": "digits", "model": "small_cnn", "scenario": "random:10", "method": method, "seed": seed,
            "status": "ok", "display_name": method, "key": f"{method}{seed}", "finished": "2026-01-01T00:00:00",
            "ua": 1.0, "ra": 99.0, "ta": 98.0, "mia_efficacy": 5.0 + seed, "rte_s": 1.0, "params_changed": 1}
    return {**base, **fields}


def test_reports_show_the_attack_columns_side_by_side_and_figures(tmp_path):
    from mubench.plots import report_figures
    from mubench.report.attacks import side_by_side
    from mubench.report.records import records_frame, with_gaps
    from mubench.report.tables import summary_stats, summary_table

    attacked = [_record("retrain", s) for s in (0, 1)] + [
        _record("finetune", s, ulira_auc=60.0 + s, ulira_auc_lo=50.0, ulira_auc_hi=70.0, ulira_tpr1=3.0,
                ulira_tpr01=1.0, ulira_bacc=55.0, ulira_win=58.0, refmia_auc=52.0, ulira_margin=[0.5, -0.1, 2.0])
        for s in (0, 1)]
    df = with_gaps(records_frame(attacked))
    table = summary_table(df)
    assert "U-LiRA AUC (ideal: inside null band)" in table.columns
    assert table.loc[("digits", "small_cnn", "random:10", "FT"), "U-LiRA AUC (ideal: inside null band)"] == "60.50 ± 0.71"
    side = side_by_side(df)
    row = side.loc[("digits", "small_cnn", "random:10", "FT")]
    assert row["U-LiRA AUC (50)"] == 60.5 and row["Retrain's MIA-Efficacy"] == 5.5 and row["seeds"] == 2
    assert row["U-LiRA σ"] == "per_side"  # records made before the option say nothing: they were per side
    mixed = attacked[:3] + [{**attacked[3], "ulira_variance": "tied"}]
    assert side_by_side(with_gaps(records_frame(mixed))).loc[("digits", "small_cnn", "random:10", "FT"),
                                                             "U-LiRA σ"] == "per_side + tied"
    figures = [f for f in report_figures(df, summary_stats(df), tmp_path) if f.kind not in ("metrics", "efficacy_cost")]
    assert {f.kind for f in figures} == {"ulira_examples", "svc_vs_ulira"}  # U-LiRA's own, registered in attacks/ulira.py
    assert all(p.exists() for f in figures for p in f.paths)
    plain = summary_table(with_gaps(records_frame([_record("retrain", 0), _record("finetune", 0)])))
    assert not any("U-LiRA" in c for c in plain.columns)
