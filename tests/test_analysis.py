"""Forget-vector analyses (issue 16): each on a constructed case whose answer is known."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mubench.methods.forget_vector import ForgetVector, retain_subsample


def test_retain_subsample_keeps_forget_and_draws_a_seeded_fraction(make_task, class0_split):
    task = make_task(class0_split)
    assert retain_subsample(task, 1.0, 0) is task  # the default: today's behaviour
    half = retain_subsample(task, 0.5, 3)
    assert len(half.retain_y) == round(0.5 * len(task.retain_y))
    assert torch.equal(half.forget_y, task.forget_y)
    again = retain_subsample(task, 0.5, 3)
    other = retain_subsample(task, 0.5, 4)
    assert torch.equal(half.retain_y, again.retain_y)  # seeded
    assert not torch.equal(half.retain_x, other.retain_x)  # re-drawn each epoch


def test_budgeted_forget_vector_still_forgets_at_lower_cost(make_task, class0_split):
    from mubench.testing import task_logits

    task = make_task(class0_split)
    p = dataclasses.replace(ForgetVector.Params(), epochs=8, tol=0.0, retain_fraction=0.5)
    pred = ForgetVector(p).unlearn(task)
    logits = task_logits(pred, task)[: len(task.forget_y)]
    assert (logits.argmax(1) == task.forget_y).float().mean() < 0.5  # UA above 50


# -- geometry ---------------------------------------------------------------------------------

def test_linear_cka_is_one_for_the_same_features_up_to_rotation_and_scale():
    from mubench.analysis.geometry import linear_cka

    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 16, generator=g)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    assert abs(linear_cka(a, a) - 1) < 1e-9
    assert abs(linear_cka(a, 3 * a @ q) - 1) < 1e-9
    assert linear_cka(a, torch.randn(200, 16, generator=g)) < 0.3  # unrelated features


def test_zero_delta_gives_cka_one_and_identical_histograms(digits_original, digits, class0_split):
    from mubench.analysis.geometry import geometry
    from mubench.data import eval_view
    from mubench.predictor import Predictor

    parts = {p: (eval_view(digits, (digits.train_x if p != "test" else digits.test_x)[getattr(class0_split, p)]),
                 None) for p in ("forget", "retain", "test")}
    zero = Predictor(digits_original, delta=torch.zeros(digits.input_shape))
    out = geometry(zero, Predictor(digits_original), parts, digits.num_classes)
    assert all(abs(v - 1) < 1e-6 for v in out["cka"].values())
    assert out["hist"] == out["hist_clean"] == out["hist_retrain"]  # Retrain here: the same model
    assert out["margin"]["test"] == out["margin_retrain"]["test"]
    moved = geometry(zero.with_delta(torch.full(digits.input_shape, 0.5)), Predictor(digits_original), parts, 10)
    assert moved["cka"]["forget"] < 0.99  # a large δ moves the features: the test can fail


# -- transfer ---------------------------------------------------------------------------------

def test_transfer_of_zero_vectors_is_the_originals_per_class_accuracy(digits_original, digits):
    import numpy as np

    from mubench.analysis.transfer import composition, per_class_accuracy, transfer_matrix
    from mubench.data import eval_view
    from mubench.predictor import Predictor

    x, y = eval_view(digits, digits.train_x), digits.train_y
    zeros = torch.zeros((digits.num_classes, *digits.input_shape))
    clean = per_class_accuracy(Predictor(digits_original), None, x, y, digits.num_classes)
    m = transfer_matrix(digits_original, zeros, x, y)
    assert m.shape == (10, 10)
    assert np.allclose(m, clean[None, :])
    rows = composition(digits_original, zeros, x, y, [(0, 1)])
    assert rows[0]["acc_a"] == clean[0] and rows[0]["acc_third_mean"] == np.mean(clean[2:])
    big = zeros.clone()
    big[0] = 1.0  # a vector that wrecks every input: its row falls, the others stay
    m2 = transfer_matrix(digits_original, big, x, y)
    assert m2[0].mean() < 50 and np.allclose(m2[1:], clean[None, :])


# -- data shift -------------------------------------------------------------------------------

def test_severity_zero_is_the_clean_input_and_severity_grows_the_shift():
    from mubench.analysis.corruptions import CORRUPTIONS, corrupt

    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for name in CORRUPTIONS:
        assert corrupt(name, x, 0) is x
        dist = [float((corrupt(name, x, s, seed=1) - x).abs().mean()) for s in (1, 2, 3)]
        assert 0 < dist[0] < dist[1] < dist[2], name
        assert torch.equal(corrupt(name, x, 2, seed=1), corrupt(name, x, 2, seed=1))  # seeded


def test_clean_condition_gives_the_clean_metrics_and_pgd_lowers_ta(digits_original, digits, class0_split):
    from mubench.analysis.shift import condition_metrics
    from mubench.evaluation import evaluate
    from mubench.predictor import Predictor

    pred = Predictor(digits_original)
    parts = {}
    for p in ("forget", "retain", "test"):
        src_x, src_y = (digits.train_x, digits.train_y) if p != "test" else (digits.test_x, digits.test_y)
        idx = torch.from_numpy(getattr(class0_split, p))
        parts[p] = (src_x[idx].float(), src_y[idx])
    m = evaluate(pred, digits, class0_split, device=torch.device("cpu"), controls=False)
    clean = condition_metrics(pred, parts, "clean", seed=0)
    assert abs(clean["ta"] - m["ta"]) < 1e-9 and abs(clean["ua"] - m["ua"]) < 1e-9
    assert abs(clean["mia"] - m["mia_efficacy"]) < 1e-9
    attacked = condition_metrics(pred, parts, "pgd:3", seed=0)
    assert attacked["ta"] < clean["ta"]


# -- sensitivity and the loaders of stored grids ------------------------------------------------

def test_sweep_points_scale_each_parameter_around_its_default():
    from mubench.analysis.sensitivity import FACTORS, default_params, sweep_points
    from mubench.config import ExperimentConfig
    from mubench.tuned import SHIPPED_DIR, read_tuned

    d = default_params(ExperimentConfig(tuned="none"), "digits", "small_cnn", "class")
    assert d["beta"] == 5.0  # β by scenario kind
    tuned = default_params(ExperimentConfig(), "digits", "small_cnn", "class")  # centred on the grid's values
    assert tuned["beta"] == read_tuned(SHIPPED_DIR / "digits.toml").table("forget_vector", "class")["beta"]
    points = sweep_points(d)
    assert points[0] == ("default", None, {})
    assert ("beta", 2.5, {"beta": 2.5}) in points and ("select", "best", {"select": "best"}) in points
    assert len(points) == 3 + sum(len(f) for f in FACTORS.values())
    # augmentation while learning δ (issue 25): the other setting than the grid's (on, untuned)
    assert d["augment"] is True and ("augment", False, {"augment": False}) in points


def test_sweep_defaults_resolve_in_a_fresh_process():
    """`mubench analyze` imports no method before the sweep asks for the forget vector's
    defaults: they must resolve without the registry being filled by someone else."""
    import subprocess
    import sys

    code = ("from mubench.analysis.sensitivity import default_params; from mubench.config import ExperimentConfig; "
            "print(default_params(ExperimentConfig(tuned='none'), 'digits', 'small_cnn', 'random')['beta'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0.2"


def test_stored_grid_reloads_to_the_recorded_metrics_and_sweeps_reuse_its_jobs(tmp_path):
    """A tiny real grid: load_cells rebuilds each stored predictor through the jobs of the run's
    plan (its TA is the record's), the run's config round-trips through runs/, a sweep's default
    point is the grid's own job, and the sweep's other point is not read as a grid row."""
    from mubench.analysis.cells import load_cells
    from mubench.analysis.sweep import run_points
    from mubench.config import EvaluationConfig, ExecutionConfig, ExperimentConfig
    from mubench.metrics import accuracy as part_accuracy
    from mubench.outputs import forward_split
    from mubench.runs import run_configs, write_run

    config = ExperimentConfig(scenarios=("class:0",), seeds=(0,), methods=("forget_vector",), out=str(tmp_path),
                              precision="fp32", recipe={"epochs": 3},
                              method_params={"forget_vector": {"epochs": 2}},
                              evaluation=EvaluationConfig(attacks=("svc",)),  # no reference models: not read
                              execution=ExecutionConfig(backend="sequential", jobs=1, threads_per_worker=1))
    write_run(tmp_path, config)
    assert run_configs(tmp_path) == [config]
    first = run_points(config, "forget_vector", [{"epochs": 2}, {"epochs": 2, "retain_fraction": 0.5}])
    assert [len(r.records) for r in first] == [1, 1]
    again = run_points(config, "forget_vector", [{"epochs": 2}])  # cached: the same record
    assert again[0].records[0]["key"] == first[0].records[0]["key"]
    (cell,) = load_cells(tmp_path)
    assert set(cell.records) == {"retrain", "forget_vector", "original", "retrain_seed"}  # with the calibration rows
    assert cell.records["forget_vector"]["key"] == first[0].records[0]["key"]  # the grid's point, not the sweep's
    for method, rec in cell.records.items():
        out = forward_split(cell.predictor(method), cell.data, cell.split, torch.device("cpu"))
        assert abs(part_accuracy(out.test) - rec["ta"]) < 1e-9, method


def test_each_run_keeps_its_own_config_and_analyses_read_every_run(tmp_path):
    """Two runs into one root (the resume workflow, or a second grid): neither config file is
    overwritten, and the analyses plan both grids, so the cells of the first run stay readable
    after the second (they read whichever run came last when there was one config.json)."""
    from mubench.analysis.cells import load_cells
    from mubench.config import EvaluationConfig, ExecutionConfig, ExperimentConfig
    from mubench.runner import build_plan, execute
    from mubench.runs import run_configs, write_run
    from mubench.store import Store

    base = ExperimentConfig(seeds=(0,), methods=("finetune",), out=str(tmp_path), precision="fp32",
                            recipe={"epochs": 3}, method_params={"finetune": {"epochs": 1}},
                            evaluation=EvaluationConfig(attacks=("svc",)),  # no reference models: not what it tests
                            execution=ExecutionConfig(backend="sequential", jobs=1, threads_per_worker=1))
    for scenario in ("class:0", "random:10"):
        config = dataclasses.replace(base, scenarios=(scenario,))
        write_run(tmp_path, config)
        assert not execute(build_plan(config, Store(tmp_path)), config, progress=False).failed
    assert len(list((tmp_path / "runs").glob("*.json"))) == 2
    assert [c.scenarios for c in run_configs(tmp_path)] == [("class:0",), ("random:10",)]
    cells = load_cells(tmp_path)
    assert sorted(c.scenario for c in cells) == ["class:0", "random:10"]
    assert all(set(c.records) == {"retrain", "finetune", "original", "retrain_seed"} for c in cells)  # with the calibration rows


def test_analyses_of_a_root_without_a_run_config_say_what_to_do(tmp_path):
    from mubench.analysis.cells import load_cells
    from mubench.errors import MubenchError

    with pytest.raises(MubenchError, match="no run config under .*runs.*run the grid first"):
        load_cells(tmp_path)


def test_analyze_rejects_an_unknown_analysis_in_one_line(capsys):
    from mubench.cli import main

    assert main(["analyze", "--results", "nowhere", "--only", "geometri"]) == 2
    assert "unknown analysis 'geometri'" in capsys.readouterr().err


def test_figures_are_written_from_result_data(tmp_path):
    from mubench.analysis import figures

    k = 3
    transfer = {"matrix": (100 * (1 - torch.eye(k))).tolist()}
    assert figures.transfer_figure(transfer, "t", tmp_path / "transfer").is_file()
    rows = [{"param": "default", "value": "—", "default": None, "avg_gap": 1.0, "rte_s": 2.0},
            {"param": "beta", "value": 2.5, "default": 5.0, "avg_gap": 1.5, "rte_s": 2.1},
            {"param": "beta", "value": 10.0, "default": 5.0, "avg_gap": 9.0, "rte_s": 1.9}]
    assert figures.sensitivity_figure(rows, "s", tmp_path / "sens").with_suffix(".pdf").is_file()


def test_analyses_name_the_methods_whose_records_are_missing_under_todays_keys(tmp_path, capsys):
    """A method re-keyed since the run (or failed) would vanish from every analysis table without a
    word; load_cells says which methods it leaves out."""
    from _grids import run_tiny_forget_vector_grid

    from mubench.analysis.cells import load_cells
    from mubench.store import Store

    run_tiny_forget_vector_grid(tmp_path)
    capsys.readouterr()
    assert "forget_vector" in load_cells(tmp_path)[0].records
    assert "no finished record" not in capsys.readouterr().err
    store = Store(tmp_path)
    fv = [r for r in store.iter_records("method") if r["method"] == "forget_vector"]
    (tmp_path / "records" / "method" / f"{fv[0]['key']}.json").unlink()
    cells = load_cells(tmp_path)
    assert "forget_vector" not in cells[0].records
    assert "no finished record under today's keys for forget_vector" in capsys.readouterr().err
