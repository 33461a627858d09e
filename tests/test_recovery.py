"""Recovery attacks on inputs (issue 26, item 3): targeted PGD at ε = 0 is the plain UA, and at
ε > 0 it brings back what a predictor forgot; the universal attack is bounded and seeded;
Retrain, the control, is attacked at the same ε; the shift analysis's untargeted PGD is labelled
as the TA-robustness condition it is."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mubench.analysis.corruptions import linf_pgd
from mubench.analysis.recovery import (
    attacker_split,
    recovery_curves,
    recovery_table,
    universal_recovery,
)
from mubench.data import eval_view
from mubench.evaluation import evaluate
from mubench.predictor import Predictor

EPS = (0.0, 16 / 255, 64 / 255)


def _part(data, split, name):
    x, y = (data.test_x, data.test_y) if name == "test" else (data.train_x, data.train_y)
    idx = torch.from_numpy(getattr(split, name))
    return eval_view(data, x[idx]), y[idx]


class _Suppressed(torch.nn.Module):
    """The untouched original with `margin` taken off one logit: a model-based predictor that
    forgot class `cls` at the output, the knowledge still in its weights."""

    def __init__(self, model, cls: int, margin: float):
        super().__init__()
        self.model, self.cls, self.margin = model, cls, margin

    def forward(self, x):
        z = self.model(x)
        return z - self.margin * torch.nn.functional.one_hot(torch.tensor(self.cls), z.shape[1]).to(z.dtype)


@pytest.fixture(scope="module")
def forget_vector(digits, digits_original, digits_recipe, class0_split, cpu):
    """A forget vector for class 0 of the untouched original (x ↦ f(x + δ))."""
    from mubench.methods.forget_vector import ForgetVector
    from mubench.pipeline import build_task

    task = build_task(digits, class0_split, digits_original, "small_cnn", digits_recipe, 0, cpu, precision="fp32",
                      progress=False)
    return ForgetVector(dataclasses.replace(ForgetVector.Params(), epochs=8, tol=0.0)).unlearn(task)


@pytest.fixture(scope="module")
def fv_curves(forget_vector, digits, class0_split):
    return recovery_curves(forget_vector, _part(digits, class0_split, "forget"), _part(digits, class0_split, "test"),
                           EPS, seed=0)


def test_linf_pgd_stays_in_its_budget_and_in_pixel_range(digits_original, digits, class0_split):
    x, y = _part(digits, class0_split, "forget")
    pred = Predictor(digits_original)
    assert linf_pgd(pred, x, y, 0.0, targeted=True) is x
    for targeted in (False, True):
        adv = linf_pgd(pred, x, y, 8 / 255, targeted=targeted)
        assert float((adv - x).abs().max()) <= 8 / 255 + 1e-6
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1
        assert not torch.equal(adv, x)


def test_targeted_pgd_at_eps_zero_reproduces_ua_on_the_original_and_on_a_forget_vector(
        digits_original, digits, class0_split, forget_vector, fv_curves, cpu):
    forget, test = _part(digits, class0_split, "forget"), _part(digits, class0_split, "test")
    for pred, rows in ((Predictor(digits_original), recovery_curves(Predictor(digits_original), forget, test, (0.0,))),
                       (forget_vector, fv_curves)):
        m = evaluate(pred, digits, class0_split, device=cpu, controls=False)
        assert rows[0]["eps"] == 0.0
        assert rows[0]["ua_targeted"] == m["ua"]  # exactly: δ applied once, same samples, same UA
        assert rows[0]["ta_untargeted"] == m["ta"]
        assert rows[0]["u_linf"] == 0.0
    assert fv_curves[0]["ua_targeted"] >= 90  # the forget vector forgot: a recovery has room to show


def test_on_the_untouched_original_the_attack_direction_decides_ua(digits_original, digits, class0_split):
    """The original still knows class 0 (UA near 0): targeted PGD cannot raise its UA, while the
    shift analysis's untargeted PGD at the same ε does — the two share one loop, only the sign differs."""
    x, y = _part(digits, class0_split, "forget")
    pred = Predictor(digits_original)

    def ua(inputs):
        return 100.0 - 100.0 * float((pred.logits(inputs, torch.device("cpu")).argmax(1) == y).double().mean())

    eps = 32 / 255
    assert ua(linf_pgd(pred, x, y, eps, targeted=True)) <= ua(x)
    assert ua(linf_pgd(pred, x, y, eps)) > ua(x) + 50


def test_recovery_lowers_ua_of_a_forget_vector_as_eps_grows(fv_curves):
    ua = [r["ua_targeted"] for r in fv_curves]
    assert all(b <= a + 1.0 for a, b in zip(ua, ua[1:], strict=False)), ua  # monotone up to a sample
    assert ua[-1] < ua[0] - 50, ua
    universal = [r["ua_universal"] for r in fv_curves]
    assert universal[-1] < universal[0] - 20, universal  # held-out samples: the attack generalises
    assert all(r["u_linf"] <= r["eps"] + 1e-6 for r in fv_curves)


def test_recovery_lowers_ua_of_a_suppressed_logit(digits_original, digits, class0_split):
    pred = Predictor(_Suppressed(digits_original, 0, 15.0))
    forget, test = _part(digits, class0_split, "forget"), _part(digits, class0_split, "test")
    rows = recovery_curves(pred, forget, (test[0][:100], test[1][:100]), (0.0, 64 / 255), seed=0)
    assert rows[0]["ua_targeted"] >= 90
    assert rows[1]["ua_targeted"] < rows[0]["ua_targeted"] - 50


def test_universal_perturbation_is_one_bounded_image_and_deterministic_under_its_seed(
        forget_vector, digits, class0_split):
    x, y = _part(digits, class0_split, "forget")
    fit, held = attacker_split(len(y), 0.5, seed=3)
    assert sorted(torch.cat([fit, held]).tolist()) == list(range(len(y)))
    assert abs(len(fit) - len(y) / 2) <= 1
    assert torch.equal(fit, attacker_split(len(y), 0.5, seed=3)[0])
    other = attacker_split(len(y), 0.5, seed=4)[0]
    assert not torch.equal(fit, other)
    eps = 8 / 255
    u = universal_recovery(forget_vector, x[fit], y[fit], eps, steps=10)
    assert u.shape == x.shape[1:]
    assert 0 < float(u.abs().max()) <= eps + 1e-7
    assert torch.equal(u, universal_recovery(forget_vector, x[fit], y[fit], eps, steps=10))
    assert not torch.equal(u, universal_recovery(forget_vector, x[other], y[other], eps, steps=10))
    assert torch.equal(universal_recovery(forget_vector, x[fit], y[fit], 0.0), torch.zeros(x.shape[1:]))


def test_recovery_table_lists_the_control_first_at_every_eps():
    rows = [{"eps": e, "ua_targeted": 100 - 1000 * e} for e in (0.0, 4 / 255)]
    table = recovery_table({"forget_vector": rows, "original": rows, "retrain": rows}, "ua_targeted")
    assert [r["method"] for r in table] == ["retrain (control)", "original", "forget_vector"]
    assert all(list(r) == ["method", "ε=0", "ε=4/255"] for r in table)


def test_shift_tables_label_their_pgd_as_untargeted_ta_robustness():
    from mubench.analysis.corruptions import CORRUPTIONS, SEVERITIES
    from mubench.analysis.report import shift_frame

    conditions = ["clean", *(f"{c}:{s}" for c in (*CORRUPTIONS, "pgd") for s in SEVERITIES)]
    results = {"retrain": {c: {"ta": 90.0, "ua": 100.0, "mia": 50.0} for c in conditions}}
    for metric in ("ta", "ua"):
        columns = list(shift_frame(results, metric).columns)
        assert "Δ pgd (untargeted: TA robustness)" in columns and "Δ pgd" not in columns


def test_analyze_rejects_bad_epsilons_in_one_line(capsys):
    from mubench.cli import main

    assert main(["analyze", "--results", "nowhere", "--only", "recovery", "--epsilons", "0,x"]) == 2
    assert "--epsilons" in capsys.readouterr().err


def test_analyze_recovery_attacks_every_stored_predictor_and_retrain_at_the_same_eps(tmp_path):
    """A tiny real grid through `mubench analyze --only recovery`: every stored predictor,
    Retrain (the control) included, gets the same ε list; at ε = 0 each reads its record's UA and
    TA; the section, its table rows and its figure are written; a rerun reads the cache."""
    from _grids import run_tiny_forget_vector_grid

    from mubench.analysis.cells import load_cells
    from mubench.analysis.recovery import analyze_recovery
    from mubench.cli import main

    run_tiny_forget_vector_grid(tmp_path)
    assert main(["analyze", "--results", str(tmp_path), "--only", "recovery", "--epsilons", "0,16"]) == 0
    text = (tmp_path / "analysis" / "analysis.md").read_text()
    assert "## Recovery" in text and "| retrain (control) |" in text
    assert "TA under untargeted PGD (robustness, not recovery)" in text
    assert list((tmp_path / "analysis" / "figures").glob("recovery_*.png"))
    (cell,) = load_cells(tmp_path)
    cache = tmp_path / "analysis" / "cache" / "recovery"
    n_cached = len(list(cache.glob("*.json")))
    results = analyze_recovery(cell, epsilons=(0.0, 16 / 255))
    assert len(list(cache.glob("*.json"))) == n_cached  # read, not recomputed
    assert {"retrain", "forget_vector", "original"} <= set(results)
    for method, rows in results.items():
        assert [r["eps"] for r in rows] == [0.0, 16 / 255], method
        assert abs(rows[0]["ua_targeted"] - cell.records[method]["ua"]) < 1e-9, method
        assert abs(rows[0]["ta_untargeted"] - cell.records[method]["ta"]) < 1e-9, method
