"""The MIA's fit started ahead (attacks.svc.FitAhead) while the forget set is forwarded: an
evaluation that overlaps them writes the same record, number for number, as one that does not."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from mubench import method_jobs
from mubench.attacks import svc
from mubench.attacks.svc import FitAhead, MIAConfig, fit_ahead, fit_attack
from mubench.config import EvaluationConfig, ExecutionConfig, ExperimentConfig
from mubench.evaluation import evaluate, forward_split
from mubench.jobs import RunContext
from mubench.method_jobs import outputs_key
from mubench.outputs import PARTS
from mubench.predictor import Predictor
from mubench.runner import build_plan, execute
from mubench.store import Store

CPU = torch.device("cpu")
VARYING = ("started", "finished", "wall_s")  # a record's clock fields; every other field is compared


@pytest.fixture()
def fit_threads(monkeypatch):
    """The name of the thread each SVC fit ran in, in order."""
    names: list[str] = []
    real = svc._fit

    def recorded(member, nonmember):
        names.append(threading.current_thread().name)
        return real(member, nonmember)

    monkeypatch.setattr(svc, "_fit", recorded)
    return names


def test_retain_and_test_are_forwarded_first_and_each_part_as_alone(digits, digits_original, class0_split):
    predictor = Predictor(digits_original)
    seen: list[str] = []
    together = forward_split(predictor, digits, class0_split, CPU, on_part=lambda part, out: seen.append(part))
    assert seen[:2] == ["retain", "test"] and sorted(seen) == sorted(PARTS)
    for part in PARTS:
        alone = getattr(forward_split(predictor, digits, class0_split, CPU, parts=(part,)), part)
        assert torch.equal(getattr(together, part).logits, alone.logits)
        assert torch.equal(getattr(together, part).labels, alone.labels)


@pytest.mark.parametrize("split_name", ["class0_split", "random10_split"])
def test_fit_ahead_gives_the_metrics_of_the_serial_fit(digits, digits_original, split_name, request, fit_threads):
    split = request.getfixturevalue(split_name)
    predictor = Predictor(digits_original)
    mia = MIAConfig(seed=3)
    serial = evaluate(predictor, digits, split, device=CPU, original=digits_original, mia=mia,
                      outputs=forward_split(predictor, digits, split, CPU))
    assert fit_threads == ["MainThread"]
    outputs = forward_split(predictor, digits, split, CPU, on_part=FitAhead(mia))
    ahead = evaluate(predictor, digits, split, device=CPU, original=digits_original, mia=mia, outputs=outputs)
    assert fit_threads[1:] == ["mubench-svc-fit_0"]  # the fit ran beside the forwards, and was taken
    assert not svc._AHEAD
    assert ahead == serial


def test_a_fit_started_on_other_features_is_not_taken(fit_threads):
    rng = np.random.default_rng(0)
    member, nonmember = rng.uniform(0.6, 1.0, 40), rng.uniform(0.0, 0.7, 40)
    fit_ahead(member, nonmember)
    other = nonmember.copy()
    other[0] += 1e-12  # one value changed in its 12th decimal: another fit
    a, b = fit_attack(member, other), _serial(member, other)
    assert np.array_equal(a.dual_coef_, b.dual_coef_) and np.array_equal(a.intercept_, b.intercept_)
    assert len(svc._AHEAD) == 1  # the unused one waits, bounded
    for i in range(svc._AHEAD_MAX + 2):
        fit_ahead(member + i, nonmember)
    assert len(svc._AHEAD) == svc._AHEAD_MAX
    for future in list(svc._AHEAD.values()):
        future.result()
    svc._AHEAD.clear()
    assert fit_threads.count("MainThread") == 1  # fit_attack fitted `other` itself


def _serial(member, nonmember):
    from sklearn.svm import SVC

    x = np.concatenate([member, nonmember]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
    return SVC(kernel="rbf", C=svc.SVC_C, gamma="auto").fit(x, y)


# ---------------------------------------------------------------------------------------------
# Through the Evaluate job: the record of a lone job (fit ahead) against one without


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("overlap")
    config = ExperimentConfig(
        datasets=("digits",), scenarios=("class:0",), seeds=(0,), methods=("retrain", "finetune"),
        calibration=("original",), out=str(out), precision="fp32", recipe={"epochs": 2},
        method_params={"finetune": {"epochs": 1}}, execution=ExecutionConfig(backend="sequential"),
        evaluation=EvaluationConfig(attacks=("svc",)))  # no reference models: not what it tests
    result = execute(build_plan(config, Store(out)), config, progress=False)
    assert not result.failed and len(result.records) == 3
    return out, config


def _rerun_evaluations(out: Path, config, overlap: bool, monkeypatch) -> dict[str, dict]:
    """Every Evaluate job of the plan run again from its stored predictor (outputs forwarded
    anew), with the fit ahead or not; their records without the clock fields."""
    monkeypatch.setattr(method_jobs, "spare_core", lambda ctx: overlap)
    store = Store(out)
    plan = build_plan(config, store)
    records = {}
    for job in plan.evaluations():  # Retrain's first: the others read its record
        store.artifact_path("outputs", outputs_key(job.unlearn)).unlink()
        record = job.run(RunContext(store, CPU))
        records[job.method] = {k: v for k, v in record.items() if k not in VARYING}
    return records


def test_an_evaluate_job_with_its_fit_ahead_writes_the_serial_record(finished, monkeypatch, fit_threads):
    out, config = finished
    serial = _rerun_evaluations(out, config, False, monkeypatch)
    assert set(fit_threads) == {"MainThread"} and len(fit_threads) == 3
    del fit_threads[:]
    ahead = _rerun_evaluations(out, config, True, monkeypatch)
    assert set(fit_threads) == {"mubench-svc-fit_0"} and len(fit_threads) == 3
    assert ahead == serial
    assert {"ua", "ra", "ta", "mia_efficacy", "mia_support", "avg_gap", "kl_forget"} <= serial["finetune"].keys()


def test_a_lone_cpu_job_has_a_spare_core_and_a_full_layout_none(monkeypatch):
    monkeypatch.setattr(method_jobs.os, "cpu_count", lambda: 2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert method_jobs.spare_core(RunContext(Store("unused"), CPU, n_jobs=1))
        assert not method_jobs.spare_core(RunContext(Store("unused"), CPU, n_jobs=2))
    finally:
        torch.set_num_threads(threads)
