"""The reference-model screen (issue 15, ../shared/MIA.md attack 2): RMIA's score by hand,
the planner's reference models (shared by a class-wise scenario's seeds, per cell otherwise,
none in tuning cells), and one digits run where the screen is on by default: the untouched
original reads clearly above Retrain, a model trained like Retrain reads ≈ 50."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mubench.attacks import lira_stats as ls
from mubench.attacks.refmia import ReferenceOriginal
from mubench.config import (
    EvaluationConfig,
    ExecutionConfig,
    ExperimentConfig,
    TuneConfig,
    with_evaluation_sets,
)
from mubench.errors import ConfigError
from mubench.jobs import RunContext
from mubench.outputs import forward_split
from mubench.predictor import Predictor
from mubench.runner import build_plan, execute
from mubench.store import Store
from mubench.tuning import tuning_config
from mubench.validate import validate_config

# ---------------------------------------------------------------------------------------------
# RMIA by hand


def test_rmia_counts_population_samples_the_ratio_beats_by_gamma():
    """a = 0: Pr(s) = (mean of the references' p(s) + 1) / 2 = 0.75 for every s here, so
    LR = p / 0.75: LR_z = 0.25, 0.5, 1, 1.25. x with LR 1 beats z by γ = 2 only where LR_z < 0.5
    (0.5 itself is not beaten: strict), one of four; x with LR 2.5 beats LR_z < 1.25, three."""
    ref_x = np.array([[0.25, 0.25], [0.75, 0.75]])  # mean 0.5 per x
    ref_z = np.full((2, 4), 0.5)
    p_z = np.array([0.1875, 0.375, 0.75, 0.9375])
    scores = ls.rmia_scores(np.array([0.75, 1.875]), ref_x, p_z, ref_z, gamma=2.0, a=0.0)
    assert np.allclose(scores, [0.25, 0.75])


def test_rmia_offline_a_rescales_the_references_mean():
    """a = 1: Pr(s) is the references' mean itself; x at twice its references' p beats the z
    whose ratio is below 1 (γ = 2)."""
    ref_x, ref_z = np.array([[0.4]]), np.array([[0.5, 0.5, 0.5]])
    p_z = np.array([0.2, 0.45, 0.6])  # LR_z = 0.4, 0.9, 1.2
    assert ls.rmia_scores(np.array([0.8]), ref_x, p_z, ref_z, gamma=2.0, a=1.0)[0] == pytest.approx(2 / 3)


def test_rmia_separates_members_from_non_members_on_synthetic_probabilities():
    """Members' p is higher than their references' by a margin: AUC well above 50. Models drawn
    like the references read 50 on average; one pair alone spreads by several points (each
    model's own population scores shift all its x together, about 8 points sd here: the
    one-model-per-side limit of docs/metrics.md), so the null is the mean over 64 pairs."""
    rng = np.random.default_rng(0)
    n, m, k = 400, 500, 4
    base_x, base_z = rng.uniform(0.2, 0.8, n), rng.uniform(0.2, 0.8, m)

    def scores(shift: float) -> tuple[np.ndarray, np.ndarray]:
        p_x = np.clip(base_x + shift + rng.normal(0, 0.05, n), 1e-3, 1)
        p_z = np.clip(base_z + rng.normal(0, 0.05, m), 1e-3, 1)
        return p_x, p_z

    refs = [scores(0.0) for _ in range(k)]
    ref_x, ref_z = np.stack([r[0] for r in refs]), np.stack([r[1] for r in refs])

    def rmia(shift: float) -> np.ndarray:
        p_x, p_z = scores(shift)
        return ls.rmia_scores(p_x, ref_x, p_z, ref_z)

    assert ls.auc(rmia(0.15), rmia(0.0)) > 80
    nulls = [ls.auc(rmia(0.0), rmia(0.0)) for _ in range(64)]
    assert abs(np.mean(nulls) - 50) < 3, np.mean(nulls)


def test_true_class_probability_is_the_softmax_entry():
    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    p = torch.softmax(logits.double(), 1)
    assert np.allclose(ls.true_class_probability(logits, torch.tensor([0, 0])), [p[0, 0], p[1, 0]])


# ---------------------------------------------------------------------------------------------
# Settings and plans


def test_the_screen_is_on_by_default_on_digits_only_and_settable():
    default = EvaluationConfig()
    assert list(default.attack_tables("digits")) == ["svc", "refmia"]
    assert list(default.attack_tables("cifar10")) == ["svc"]
    assert list(EvaluationConfig(attacks=("ulira",)).attack_tables("cifar10")) == ["ulira"]
    assert list(EvaluationConfig(attacks=("ulira",), preset_attacks=False).attack_tables("digits")) == ["ulira"]
    assert list(with_evaluation_sets(default, {"attacks": "svc"}).attack_tables("digits")) == ["svc"]
    six = with_evaluation_sets(default, {"attacks.refmia.models": "6"})
    assert six.attack_tables("digits") == {"svc": {}, "refmia": {"models": "6"}}  # the preset's, one field set
    with pytest.raises(ConfigError, match=r"\[evaluation.attacks.refmia\]: 'models' must be an integer in \[2, inf\); got 1"):
        validate_config(ExperimentConfig(evaluation=EvaluationConfig(attacks={"refmia": {"models": 1}})))
    with pytest.raises(ConfigError, match="unknown attack 'rmia'"):
        validate_config(ExperimentConfig(evaluation=EvaluationConfig(attacks=("rmia",))))
    with pytest.raises(ConfigError, match="moved to its attack's table; use --set evaluation.attacks.refmia.models=6"):
        with_evaluation_sets(default, {"reference_models": "6"})


def _config(out, **changes) -> ExperimentConfig:
    base = ExperimentConfig(datasets=("digits",), scenarios=("class:0",), seeds=(0,),
                            methods=("retrain", "finetune"), out=str(out), precision="fp32",
                            recipe={"epochs": 12}, method_params={"finetune": {"epochs": 2}},
                            execution=ExecutionConfig(backend="sequential"))
    return dataclasses.replace(base, **changes)


def _references(plan) -> list[ReferenceOriginal]:
    return [j for j in plan.jobs if isinstance(j, ReferenceOriginal)]


def test_class_wise_seeds_share_their_references_random_cells_get_their_own(tmp_path):
    store = Store(tmp_path)
    classwise = build_plan(_config(tmp_path, seeds=(0, 1, 2)), store)
    assert len(_references(classwise)) == 4
    evaluations = [e for e in classwise.evaluations() if e.method == "finetune"]
    assert len({tuple(r.key for r in e.models_of("refmia")) for e in evaluations}) == 1
    random = build_plan(_config(tmp_path, scenarios=("random:10",), seeds=(0, 1)), store)
    assert len(_references(random)) == 8
    assert {r.split.seed for r in _references(random)} == {0, 1}
    off = build_plan(_config(tmp_path, evaluation=EvaluationConfig(attacks=("svc",), preset_attacks=False)), store)
    assert _references(off) == [] and all(not e.models_of("refmia") for e in off.evaluations())


def test_tuning_cells_train_no_reference_models(tmp_path):
    config = tuning_config(_config(tmp_path), TuneConfig())
    assert _references(build_plan(config, Store(config.out))) == []


# ---------------------------------------------------------------------------------------------
# One real run on digits (the screen on by default)


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    out = tmp_path_factory.mktemp("refmia")
    # two one-thread loky workers: the numbers are the sequential run's (the layout is not in
    # them), in less time on 2 cores
    config = _config(out, scenarios=("class:0", "random:10"), execution=ExecutionConfig(backend="loky", jobs=2))
    plan = build_plan(config, Store(out))
    result = execute(plan, config, progress=False)
    assert not result.failed, result.failed
    return out, plan, {r["key"]: r for r in result.records}


def _finetune(plan, scenario: str):
    return next(e for e in plan.evaluations() if e.method == "finetune" and e.scenario == scenario)


@pytest.mark.parametrize("scenario", ["class:0", "random:10"])
def test_records_carry_both_screens_and_references_never_saw_the_forget_set(screened, scenario):
    out, plan, records = screened
    store = Store(out)
    ft = _finetune(plan, scenario)
    r = records[ft.key]
    assert r["refmia_models"] == 4
    for prefix in ("refmia", "rmia"):
        assert r[f"{prefix}_auc_lo"] <= r[f"{prefix}_auc"] <= r[f"{prefix}_auc_hi"]
        assert len(r[f"{prefix}_margin"]) == r["n_forget"]
    retain = ft.unlearn.split.load(store).retain
    for ref in ft.models_of("refmia"):
        assert store.read_record("original", ref.key)["n_train"] == len(retain)
    assert "refmia_auc" not in records[ft.reference.key]  # Retrain's own row: nothing to compare


def _phi_scores(screened, scenario: str):
    """Offline-LiRA scores on D_f of the cell's Retrain, of the untouched original and of
    reference model 0 (trained like Retrain, another seed), against references 1–3."""
    out, plan, _ = screened
    ft = _finetune(plan, scenario)
    ctx = RunContext(store=Store(out), device=torch.device("cpu"))
    data = ft.unlearn.original.ref.load()
    split = ft.unlearn.split.load(ctx.store)

    def phi(model) -> np.ndarray:
        o = forward_split(Predictor(model), data, split, ctx.device, parts=("forget",))
        return ls.phi(o.forget.logits, o.forget.labels)

    refs = [phi(r.load(ctx).model) for r in ft.models_of("refmia")]
    mu, sd = ls.out_gaussian(np.stack(refs[1:]))
    retrain = ft.reference.unlearn.load_predictor(ctx.store, ft.unlearn.original.load(ctx).model)[0]
    o = forward_split(retrain, data, split, ctx.device, parts=("forget",))
    score = lambda v: ls.offline_scores(mu, sd, v)  # noqa: E731
    return (score(ls.phi(o.forget.logits, o.forget.labels)), score(phi(ft.unlearn.original.load(ctx).model)),
            score(refs[0]))


def test_the_null_band_is_50_when_every_reference_is_retrain():
    from mubench.attacks.refmia import null_band, offline_null, rmia_null

    phi = np.random.default_rng(0).normal(0, 1, (1, 30))
    null = offline_null(np.repeat(phi, 4, axis=0) + np.arange(4)[:, None] * 1e-9, phi[0])
    band = null_band("refmia", null)
    assert len(band["refmia_null"]) == 4 and band["refmia_null_lo"] == pytest.approx(50, abs=5)
    assert offline_null(np.zeros((2, 30)), phi[0]) == []  # leave-one-out needs three references
    assert null_band("refmia", []) == {}
    p = 1 / (1 + np.exp(-phi))
    rmia = rmia_null(np.repeat(p, 4, axis=0), np.full((4, 20), 0.5), p[0], np.full(20, 0.5))
    assert rmia == pytest.approx([50.0] * 4)  # every reference reads exactly like Retrain: ties


def test_a_member_reads_far_above_the_rmia_null():
    """The direction of the null band: a target whose p_y on D_f is high (a member) reads far
    above the references' own leave-one-out values."""
    from mubench.attacks.refmia import rmia_null

    rng = np.random.default_rng(1)
    ref_x, ref_z = rng.uniform(0.2, 0.6, (4, 40)), rng.uniform(0.2, 0.6, (4, 50))
    neg_x, neg_z = rng.uniform(0.2, 0.6, 40), rng.uniform(0.2, 0.6, 50)
    null = rmia_null(ref_x, ref_z, neg_x, neg_z)
    member = ls.auc(ls.rmia_scores(np.full(40, 0.99), ref_x, neg_z, ref_z), ls.rmia_scores(neg_x, ref_x, neg_z, ref_z))
    assert member > 90 and member > max(null) + 20, (member, null)


def test_the_untouched_original_reads_clearly_above_retrain_and_the_null_band_on_class_0(screened):
    """(random:10 on digits leaks too little for one model pair: docs/metrics.md, limits.)"""
    _, plan, records = screened
    retrain, original, _ = _phi_scores(screened, "class:0")
    hit = ls.summary(original, retrain, prefix="refmia")
    band = records[_finetune(plan, "class:0").key]
    assert hit["refmia_auc_lo"] > 90 and hit["refmia_auc_lo"] > band["refmia_null_hi"], (hit["refmia_auc"], band)


def _prediction_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Where one more draw from the distribution of `values` falls with probability `level`
    (normal model: mean ± t·s·√(1 + 1/n), the mean's t half-width times √(n + 1))."""
    from mubench.stats import half_width

    v = np.asarray(values, dtype=float)
    half = half_width(v, level) * np.sqrt(len(v) + 1)
    return v.mean() - half, v.mean() + half


@pytest.mark.parametrize("scenario", ["class:0", "random:10"])
def test_the_independent_retrain_reads_like_the_references_and_the_original_above_them(screened, scenario):
    """What replaces the xfail below: a model trained exactly like Retrain is compared with what
    never-trained models read, not with 50 ± the per-example CI; the untouched Original reads
    above all of them on class:0, where the screen discriminates.

    The twin is one more model like the four references, so it falls outside their [min, max]
    with probability 2/5 by exchangeability alone: measured, it read 59.1 against [60.2, 65.1]
    on random:10 (AMD EPYC) and 53.7 against [55.0, 87.4] on class:0 (Xeon without AMX). It is
    checked against the 95% prediction interval of the references' values instead (the report
    widens the band to the twin's own reading, which would make the check hold by construction).
    Measured on the Xeon: random:10 [55.2, 66.8] around the twin's 60.0; on class:0 the references
    spread over 55-87, so there the interval is wide and the Original's 100 carries the check."""
    _, plan, records = screened
    cell = [r for r in records.values() if r["scenario"] == scenario and "refmia_null_lo" in r]
    null = cell[0]["refmia_null"]
    assert len(null) >= 3 and all(r["refmia_null"] == null for r in cell)
    lo, hi = _prediction_interval(null)
    twin = next(r for r in records.values() if r["method"] == "retrain_seed" and r["scenario"] == scenario)
    assert lo <= twin["refmia_auc"] <= hi, (twin["refmia_auc"], null)
    if scenario == "class:0":
        original = next(r for r in records.values() if r["method"] == "original" and r["scenario"] == scenario)
        assert original["refmia_auc"] > max(null), (original["refmia_auc"], null)


@pytest.mark.parametrize("scenario", [
    pytest.param("class:0", marks=pytest.mark.xfail(strict=False, reason=(
        "measured: a model trained exactly like Retrain (another seed) read AUC 79 [74, 84] against "
        "Retrain: on a class no model saw, phi on D_f is dominated by how each model maps the unseen "
        "class, a model-level offset the per-example CI cannot cover; records carry the null band "
        "instead (docs/metrics.md, limits)"))),
    pytest.param("random:10", marks=pytest.mark.xfail(strict=False, reason=(
        "measured: AUC 62 [56, 67] for a model trained like Retrain: the same model-level offset, "
        "smaller (docs/metrics.md, limits)"))),
])
def test_a_model_trained_like_retrain_reads_50_within_the_per_example_ci(screened, scenario):
    retrain, _, other = _phi_scores(screened, scenario)
    null = ls.summary(other, retrain, prefix="refmia")
    assert null["refmia_auc_lo"] <= 50 <= null["refmia_auc_hi"], null["refmia_auc"]


# ---------------------------------------------------------------------------------------------
# A failed attack model costs the row its attack fields only

SHADOW_FAILS = '''
import copy
from dataclasses import dataclass
from mubench.predictor import Predictor
from mubench.unlearning import Method, register_method

@register_method("fails_on_shadows")
class FailsOnShadows(Method):
    """Returns the original unchanged on the real cell and raises on U-LiRA's shadows."""
    @dataclass(frozen=True)
    class Params:
        pass
    def unlearn(self, task):
        if task.seed >= 1000:  # shadow originals' seeds (attacks/ulira.shadow_seed)
            raise RuntimeError("boom on a shadow")
        return Predictor(copy.deepcopy(task.original))
'''


def test_a_failed_shadow_keeps_the_rows_other_numbers_and_is_retried(tmp_path, isolated_registries):
    plugin = tmp_path / "fails.py"
    plugin.write_text(SHADOW_FAILS)
    config = _config(tmp_path / "out", methods=("retrain", "fails_on_shadows"), recipe={"epochs": 3},
                     plugins=(str(plugin),),
                     evaluation=EvaluationConfig(attacks={"refmia": {}, "ulira": {"shadows": 2}}))
    plan = build_plan(config, Store(config.out))
    result = execute(plan, config, progress=False)
    assert result.failed == []  # no row failed: only its attack did
    ev = next(e for e in plan.evaluations() if e.method == "fails_on_shadows")
    record = next(r for r in result.records if r["key"] == ev.key)
    assert record["status"] == "ok" and record["ua"] is not None and record["mia_efficacy"] is not None
    assert "2 of 6 models missing" in record["ulira_error"] and "boom on a shadow" in record["ulira_error"]
    assert "ulira_auc" not in record and record["refmia_auc"] is not None  # the screen did not need them
    pending = build_plan(config, Store(config.out)).pending()
    assert ev in pending and len([j for j in pending if j in ev.models_of("ulira")]) == 2  # a rerun tries again
