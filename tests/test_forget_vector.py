"""Forget vectors on digits / small_cnn: the loss by hand, forgetting class 0 with a frozen
model, determinism, the convergence stop and the held-out epoch selection.

Measured on this setup (class:0, batch 128, 8 epochs, no convergence stop): UA 100.0,
RA 96.2, TA 97.3, against the original's UA 0.0, RA 99.4. The assertions keep wide margins.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import pytest
import torch
from _grids import FV_CLASS_VALUES

from mubench.errors import ConfigError
from mubench.methods.forget_vector import (
    ForgetVector,
    ForgetVectorParams,
    PerturbationParams,
    cw_margin,
    forget_vector_loss,
    split_holdout,
)
from mubench.params import apply_overrides
from mubench.predictor import Predictor

FAST = ForgetVectorParams(batch_size=128, epochs=8, tol=0.0)



def _state_hash(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _accuracy(predictor, x, y, task) -> float:
    return 100.0 * (predictor.logits(x, task.device, prepare=task.prepare).argmax(1) == y.cpu()).float().mean().item()


@pytest.fixture(scope="module")
def learned(digits_original, class0_split, digits, digits_recipe, cpu):
    """One forget vector for class:0, plus the original's state hash taken before learning it."""
    from mubench.pipeline import build_task

    task = build_task(digits, class0_split, digits_original, "small_cnn", digits_recipe, 0, cpu,
                      precision="fp32", progress=False)
    before = _state_hash(digits_original)
    # lr 0.1, not the default 0.2: at 0.2, 8 epochs sit on a tipping point that differs by CPU
    # (UA 100 on the Xeons, 82.0 on an AMD EPYC, both one thread); at 0.1 the AMD reads 99.2 / RA 96.1
    return task, before, ForgetVector(dataclasses.replace(FAST, lr=0.1)).unlearn(task)


def test_loss_matches_hand_computation():
    # Three samples, 3 classes; sample 0 and 2 are forget samples, sample 1 is retain.
    logits = torch.tensor([[3.0, 1.0, 0.0],    # forget, y=0: margin 3 − 1 = 2
                           [0.0, 2.0, 0.0],    # retain, y=1: CE = −log(e²/(e²+2))
                           [0.0, 4.0, 1.0]])   # forget, y=2: margin 1 − 4 = −3 → clamped at −τ = −1
    y = torch.tensor([0, 1, 2])
    forget = torch.tensor([True, False, True])
    p = PerturbationParams(alpha=2.0, beta=0.5, lam=3.0, tau=1.0)
    ce = -math.log(math.exp(2) / (math.exp(2) + 2))
    # Every term divided by the whole batch size |B| = 3 (not by 1 retain or 2 forget samples).
    expected = 2.0 * ce / 3 + 0.5 * (2 + (-1)) / 3 + 3.0 * 1.5 / 3
    got = forget_vector_loss(logits, y, forget, torch.tensor(1.5), p)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert cw_margin(logits, y).tolist() == pytest.approx([2.0, 2.0, -3.0])
    # Stacked problems pass the size of one batch: two copies give twice the loss.
    two = forget_vector_loss(logits.repeat(2, 1), y.repeat(2), forget.repeat(2), torch.tensor(3.0), p, batch_size=3)
    assert two.item() == pytest.approx(2 * expected, rel=1e-6)


def test_forgets_class0_and_keeps_retain(learned, digits_original):
    task, _, predictor = learned
    original = Predictor(digits_original)
    ua_original = 100 - _accuracy(original, task.forget_x, task.forget_y, task)
    ua = 100 - _accuracy(predictor, task.forget_x, task.forget_y, task)
    ra = _accuracy(predictor, task.retain_x, task.retain_y, task)
    assert ua_original < 5  # measured 0.0
    assert ua > 90  # measured 99.2 (AMD EPYC)
    assert ra > 90  # measured 96.1 (original 99.4)


def test_the_cpu_schedule_forgets_class0_in_three_epochs_for_every_learner(make_task, class0_split, cpu):
    """The presets' schedule (CPU_SCHEDULE: 3 epochs of batch 32) at a class-wise lr and β of a
    digits search (FV_CLASS_VALUES) forgets and keeps the retain set, and FV-arithmetic and the bank learn on the
    same schedule. (At the untuned lr 0.2 / β 5 retain accuracy is a tipping point: 87.9 on an
    AMD EPYC, 77.5 on a Xeon without AMX, both one thread; so the tuned values are what is checked.)"""
    from mubench.methods._fv_bank import bank_settings
    from mubench.methods.forget_vector import CPU_SCHEDULE
    from mubench.methods.fv_arithmetic import FVArithmetic
    preset = ForgetVector.dataset_defaults("digits", "class")
    tuned = FV_CLASS_VALUES  # pinned, so a re-tune does not move what this test checks
    task = make_task(class0_split)
    predictor = ForgetVector(apply_overrides(ForgetVectorParams(), {**preset, **tuned}, "preset")).unlearn(task)
    assert predictor.info["epochs_run"] <= 3  # the 60-epoch preset before it ran ~45
    # measured UA 96.2 / RA 99.4 (Xeon, no AMX) and 99.2 / 99.7 (two threads); original UA 0, RA 99.4
    assert 100 - _accuracy(predictor, task.forget_x, task.forget_y, task) > 85
    assert _accuracy(predictor, task.retain_x, task.retain_y, task) > 95
    for dataset in ("digits", "fashion-mnist"):
        assert FVArithmetic.dataset_defaults(dataset, "class").items() >= CPU_SCHEDULE.items()
        bank = bank_settings(dataset, {}, cpu, "fp32")["params"]
        assert {k: bank[k] for k in CPU_SCHEDULE} == dict(CPU_SCHEDULE)


def test_model_untouched_and_delta_shaped(learned, digits_original):
    task, before, predictor = learned
    assert _state_hash(digits_original) == before  # weights and BN running stats bit-identical
    assert predictor.model is task.original
    assert tuple(predictor.delta.shape) == tuple(task.input_shape)
    assert predictor.delta.abs().sum() > 0
    assert predictor.storage() == (predictor.delta.numel(), 4 * predictor.delta.numel())
    assert predictor.info["epochs_run"] == FAST.epochs


def test_same_seed_same_delta_other_seed_differs(make_task, class0_split):
    p = dataclasses.replace(FAST, epochs=2)
    a = ForgetVector(p).unlearn(make_task(class0_split, seed=0)).delta
    b = ForgetVector(p).unlearn(make_task(class0_split, seed=0)).delta
    c = ForgetVector(p).unlearn(make_task(class0_split, seed=1)).delta
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_convergence_stop_records_epochs_run(make_task, class0_split):
    # A loose tolerance stops long before the epoch budget (measured: tol 0.3 stops at 18 of 30).
    p = dataclasses.replace(FAST, batch_size=256, epochs=40, tol=0.5)
    predictor = ForgetVector(p).unlearn(make_task(class0_split))
    assert 2 <= predictor.info["epochs_run"] < p.epochs
    assert predictor.info["selected_epoch"] == predictor.info["epochs_run"]


def test_holdout_is_stratified_and_disjoint(make_task, class0_split):
    task = make_task(class0_split)
    kept, held = split_holdout(task, 0.2, torch.Generator().manual_seed(0))
    assert len(kept.forget_y) + len(held["forget_y"]) == len(task.forget_y)
    assert len(kept.retain_y) + len(held["retain_y"]) == len(task.retain_y)
    for label in range(1, 10):  # every retain class gives ~20% of its images
        n = int((task.retain_y == label).sum())
        assert int((held["retain_y"] == label).sum()) == round(0.2 * n)
    assert len(held["forget_y"]) == round(0.2 * len(task.forget_y))


def test_best_epoch_selection_uses_holdout(make_task, class0_split):
    p = dataclasses.replace(FAST, batch_size=256, epochs=4, select="best", holdout=0.2)
    predictor = ForgetVector(p).unlearn(make_task(class0_split))
    assert 1 <= predictor.info["selected_epoch"] <= predictor.info["epochs_run"] == 4


def test_bad_params_are_config_errors():
    with pytest.raises(ConfigError, match="select"):
        apply_overrides(ForgetVectorParams(), {"select": "first"}, "method 'forget_vector'")
    with pytest.raises(ConfigError, match="lr_decay"):
        apply_overrides(ForgetVectorParams(), {"lr_decay": 1.5}, "method 'forget_vector'")


def test_render_forget_vector_writes_a_png(learned, digits, tmp_path):
    from mubench.methods._fv_figure import render_forget_vector

    task, _, predictor = learned
    images = torch.cat([task.prepare(task.forget_x[:2]), task.prepare(task.retain_x[:3])])
    labels = torch.cat([task.forget_y[:2], task.retain_y[:3]])
    flags = torch.tensor([True, True, False, False, False])
    path = render_forget_vector(predictor, images, labels, digits.classes, tmp_path / "fv.png", forget=flags)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="delta"):
        render_forget_vector(Predictor(task.original), images, labels, digits.classes, tmp_path / "x.png")


@pytest.mark.parametrize("cls_name", ["forget_vector", "fv_arithmetic"])
@pytest.mark.parametrize(("dataset", "scenario", "beta"), [
    ("cifar10", "random:10", 0.2), ("cifar10", "subset:1,2:50", 0.2), ("cifar10", "class:3", 5.0),
    ("cifar10", "classes:1,2", 5.0), ("svhn", "random:10", 0.2), ("imagefolder:/x", "random:5", 0.2),
    ("digits", "random:10", 0.2)])
def test_beta_default_follows_the_scenario_kind_on_every_dataset(cls_name, dataset, scenario, beta):
    from mubench.methods.forget_vector import resolve_beta
    from mubench.plugins import load_plugins
    from mubench.runner import resolve_params
    from mubench.scenarios import parse_scenario

    load_plugins()
    kind = parse_scenario(scenario).kind
    assert resolve_beta(resolve_params(cls_name, dataset, kind, {}), kind).beta == beta
    # A user's β wins over the kind's default.
    assert resolve_beta(resolve_params(cls_name, dataset, kind, {"beta": "3"}), kind).beta == 3.0


def test_resolved_beta_is_used_and_recorded(make_task, random10_split):
    task = make_task(random10_split)
    p = ForgetVectorParams(batch_size=256, epochs=1, tol=0.0)
    auto = ForgetVector(p).unlearn(task)
    explicit = ForgetVector(dataclasses.replace(p, beta=0.2)).unlearn(task)
    assert auto.info["beta"] == 0.2
    assert torch.equal(auto.delta, explicit.delta)


def test_stacked_best_epoch_is_per_problem(make_task, class0_split):
    """Two problems learned at once: each keeps its own best epoch, and `selected_epoch` is the
    latest of them — not simply the last epoch run."""
    from mubench.methods.forget_vector import learn_perturbation

    task = make_task(class0_split)
    p = ForgetVectorParams(batch_size=256, epochs=4, tol=0.0, select="best", lr=0.05)
    theta = torch.zeros((2, *task.input_shape))
    # Problem 0 forgets class 0; problem 1 has no forget samples (pure CE from δ = 0), whose
    # held-out objective is smallest at its start and so can improve only by noise.
    learned = learn_perturbation(task, p, theta, to_delta=lambda d: d, norms=lambda d: d.flatten(1).norm(dim=1),
                                 flags=lambda b: torch.stack([b.y == 0, torch.zeros_like(b.y, dtype=torch.bool)]))
    assert len(learned.selected_epochs) == 2
    assert learned.selected_epoch == max(learned.selected_epochs)
    assert all(0 <= e <= learned.epochs_run for e in learned.selected_epochs)
    for k, e in enumerate(learned.selected_epochs):  # theta of problem k is its own best epoch's
        assert e > 0 or torch.equal(learned.theta[k], theta[k])


def test_delta_does_not_depend_on_the_runs_precision(make_task, class0_split):
    """δ is learned in fp32 whatever --precision says (issue 13 §6): the same task under bf16
    gives the same δ bit for bit (before the fix bf16 autocast rounded x + δ in the forward)."""
    p = dataclasses.replace(FAST, epochs=2)
    task = make_task(class0_split)
    fp32 = ForgetVector(p).unlearn(task).delta
    bf16 = ForgetVector(p).unlearn(dataclasses.replace(task, precision="bf16")).delta
    assert torch.equal(fp32, bf16)


@pytest.mark.parametrize("knob", [{"augment": False}, {"optimizer": "adam", "lr": 0.01},
                                  {"frozen_precision": "bf16"}])
def test_each_learning_knob_changes_delta_and_stays_deterministic(make_task, class0_split, knob):
    """Augmentation while learning δ, the optimiser and the frozen net's precision are real
    hyper-parameters (issues 25 and 27): each changes δ, and each is seeded like the rest."""
    p = dataclasses.replace(FAST, epochs=2)
    task = make_task(class0_split)
    base = ForgetVector(p).unlearn(task).delta
    first = ForgetVector(dataclasses.replace(p, **knob)).unlearn(task).delta
    again = ForgetVector(dataclasses.replace(p, **knob)).unlearn(task).delta
    assert torch.equal(first, again)
    assert not torch.equal(first, base)
    if knob.get("frozen_precision") == "bf16":  # only the later layers round: δ keeps its direction
        # measured 0.93 (Xeon without AMX, one thread) to 0.98; another seed's fp32 δ: 0.36-0.52
        assert torch.nn.functional.cosine_similarity(first.flatten(), base.flatten(), dim=0) > 0.8


def test_adam_forgets_in_few_epochs(make_task, class0_split, digits_original):
    """Adam on the one δ tensor: 3 epochs at lr 0.01 already forget class 0 (forget accuracy
    from 100 to below 50) and keep most of the retain set."""
    task = make_task(class0_split)
    predictor = ForgetVector(dataclasses.replace(FAST, epochs=3, optimizer="adam", lr=0.01)).unlearn(task)
    assert _accuracy(predictor, task.forget_x, task.forget_y, task) < 50
    assert _accuracy(predictor, task.retain_x, task.retain_y, task) > 70


def test_unknown_optimizer_is_a_config_error():
    with pytest.raises(ConfigError, match="optimizer"):
        apply_overrides(ForgetVectorParams(), {"optimizer": "lbfgs"}, "method 'forget_vector'")
