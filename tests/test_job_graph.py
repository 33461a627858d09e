"""The job graph's invariances (issue 12): evaluation settings and metrics reach Evaluate keys
only, `train` and `run` share the Original, the core imports no plugin, and a metric added
after a run is computed from cached outputs by Evaluate jobs alone."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

import mubench
from mubench.cli import main
from mubench.config import EvaluationConfig, ExecutionConfig, ExperimentConfig
from mubench.jobs import Original, Resource
from mubench.method_jobs import Evaluate, Unlearn
from mubench.metrics import METRICS
from mubench.predictor import Predictor, predictor_from_state, predictor_state
from mubench.runner import build_plan, execute, job_counts
from mubench.store import Store

TRAINING = (Original, Resource, Unlearn)


def tiny_config(out: Path, **changes) -> ExperimentConfig:
    """One cell, one seed, a 2-epoch original and Retrain, FT for 1 epoch, in this process (no
    calibration rows: these tests count the jobs of the graph's mechanics)."""
    return dataclasses.replace(ExperimentConfig(
        datasets=("digits",), scenarios=("class:0",), seeds=(0,), methods=("retrain", "finetune"), calibration=(),
        out=str(out), precision="fp32", recipe={"epochs": 2}, method_params={"finetune": {"epochs": 1}},
        execution=ExecutionConfig(backend="sequential")), **changes)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("graph")
    config = tiny_config(out)
    result = execute(build_plan(config, Store(out)), config, progress=False)
    assert not result.failed and len(result.records) == 2
    return out, config


def _keys(plan, types) -> set[str]:
    return {j.key for j in plan.jobs if isinstance(j, types)}


@pytest.mark.parametrize("evaluation", [EvaluationConfig(extra_mia=True), EvaluationConfig(controls=False),
                                        EvaluationConfig(mia_legacy_first_n=True)])
def test_evaluation_settings_change_evaluate_keys_only(finished, evaluation):
    out, config = finished
    before = build_plan(config, Store(out))
    after = build_plan(dataclasses.replace(config, evaluation=evaluation), Store(out))
    assert _keys(after, TRAINING) == _keys(before, TRAINING)
    assert _keys(after, Evaluate).isdisjoint(_keys(before, Evaluate))
    assert {type(j) for j in after.pending()} == {Evaluate}  # a rerun trains nothing


def test_rerun_with_new_evaluation_runs_only_evaluate_jobs(finished):
    out, config = finished
    changed = dataclasses.replace(config, evaluation=EvaluationConfig(extra_mia=True))
    plan = build_plan(changed, Store(out))
    result = execute(plan, changed, progress=False)
    assert result.ran == job_counts(plan)["Evaluate"] == 2
    assert all(r.get("mia_entropy") is not None for r in result.records)


def test_metric_registered_after_a_run_needs_only_evaluate_jobs_and_no_forward(finished, monkeypatch):
    out, config = finished

    def margin_mean(ctx):
        """mean top-1 logit on the forget set (a metric added after the run)"""
        return float(ctx.outputs.forget.logits.max(1).values.mean())

    METRICS.add("late_metric", margin_mean, requires=(), default=True, needs=())
    try:
        plan = build_plan(config, Store(out))
        assert {type(j) for j in plan.pending()} == {Evaluate}

        def no_forward(*args, **kwargs):
            raise AssertionError("evaluation ran a forward pass; the outputs were cached")

        monkeypatch.setattr("mubench.outputs.forward_split", no_forward)
        result = execute(plan, config, progress=False)
    finally:
        METRICS.remove("late_metric")
    assert result.ran == 2 and not result.failed
    assert all(isinstance(r["late_metric"], float) for r in result.records)


def test_train_then_run_trains_the_original_once(tmp_path, capsys):
    assert main(["train", "--dataset", "digits", "--seed", "0", "--epochs", "2", "--out", str(tmp_path)]) == 0
    config = dataclasses.replace(tiny_config(tmp_path), precision="auto")
    plan = build_plan(config, Store(tmp_path))
    originals = [j for j in plan.jobs if type(j) is Original]  # not the reference models (subclasses)
    assert len(originals) == 1 and originals[0].key in plan.cached


def test_core_imports_no_plugin_module():
    """mubench's core modules never import mubench.methods (the plugins depend on the core)."""
    root = Path(mubench.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if "methods" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            offenders += [f"{path.name}: {n}" for n in names
                          if n.startswith(("mubench.methods", "methods", ".methods")) or n == "methods"]
    assert not offenders


def test_forget_vector_override_does_not_relearn_the_bank(tmp_path):
    config = dataclasses.replace(tiny_config(tmp_path), methods=("retrain", "fv_arithmetic"))
    bank = _keys(build_plan(config, Store(tmp_path)), Resource)
    with_fv = dataclasses.replace(config, method_params={"forget_vector": {"beta": 0.3}})
    assert _keys(build_plan(with_fv, Store(tmp_path)), Resource) == bank
    with_bank = dataclasses.replace(config, bank={"beta": 0.3})
    assert _keys(build_plan(with_bank, Store(tmp_path)), Resource).isdisjoint(bank)


def test_predictor_round_trips_as_a_diff(digits_original):
    model = predictor_from_state({}, digits_original).model  # a copy
    with torch.no_grad():
        first = next(model.parameters())
        first.view(-1)[:3] += 1.0
    state = predictor_state(Predictor(model, delta=torch.full((1, 8, 8), 0.1)), digits_original)
    assert set(state) == {"delta", f"model.{next(iter(dict(model.named_parameters())))}.idx",
                          f"model.{next(iter(dict(model.named_parameters())))}.val"}
    back = predictor_from_state(state, digits_original)
    for (name, a), b in zip(model.state_dict().items(), back.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(back.delta, state["delta"])
