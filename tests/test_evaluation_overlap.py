"""The MIA's fit started ahead (attacks.svc.FitAhead) while the forget set is forwarded: an
evaluation that overlaps them writes the same record, number for number, as one that does not.
Each FitAhead owns its thread and its pending fit; closing it drops the fit and ends the thread,
and the attack module keeps nothing between evaluations."""

from __future__ import annotations

import threading
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np
import pytest
import torch

from mubench import method_jobs
from mubench.attacks import svc
from mubench.attacks.svc import FitAhead, MIAConfig, fit_attack
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


def _fit_threads_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("mubench-svc-fit")]


def _features(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.6, 1.0, 40), rng.uniform(0.0, 0.7, 40)


def _same_fit(a, b) -> bool:
    return np.array_equal(a.dual_coef_, b.dual_coef_) and np.array_equal(a.intercept_, b.intercept_)


@pytest.mark.parametrize("split_name", ["class0_split", "random10_split"])
def test_fit_ahead_gives_the_metrics_of_the_serial_fit(digits, digits_original, split_name, request, fit_threads):
    split = request.getfixturevalue(split_name)
    predictor = Predictor(digits_original)
    mia = MIAConfig(seed=3)
    serial = evaluate(predictor, digits, split, device=CPU, original=digits_original, mia=mia,
                      outputs=forward_split(predictor, digits, split, CPU))
    assert fit_threads == ["MainThread"]
    with FitAhead(mia) as ahead:
        outputs = forward_split(predictor, digits, split, CPU, on_part=ahead)
        assert ahead.started and ahead.pending
        taken = evaluate(predictor, digits, split, device=CPU, original=digits_original, mia=mia, outputs=outputs,
                         fit_ahead=ahead)
        assert fit_threads[1:] == ["mubench-svc-fit_0"]  # the fit ran beside the forwards, and was taken
        assert not ahead.pending
    assert not _fit_threads_alive()
    assert taken == serial


def test_an_evaluation_without_the_fit_ahead_fits_itself_and_close_drops_it(digits, digits_original, class0_split,
                                                                            fit_threads):
    predictor = Predictor(digits_original)
    mia = MIAConfig(seed=3)
    ahead = FitAhead(mia)
    try:
        outputs = forward_split(predictor, digits, class0_split, CPU, on_part=ahead)
        assert ahead.pending and _fit_threads_alive() == ["mubench-svc-fit_0"]
        evaluate(predictor, digits, class0_split, device=CPU, original=digits_original, mia=mia,
                 outputs=outputs)  # no fit_ahead given: nothing global to find it through
        assert fit_threads.count("MainThread") == 1 and ahead.pending
    finally:
        ahead.close()
    assert ahead.closed and not ahead.pending and not _fit_threads_alive()
    assert ahead.take(*_features()) is None
    with pytest.raises(RuntimeError, match="closed"):
        ahead.start(*_features())
    ahead.close()  # a second close is harmless


def test_a_fit_started_on_other_features_is_not_taken(fit_threads):
    member, nonmember = _features()
    with FitAhead(MIAConfig()) as ahead:
        ahead.start(member, nonmember)
        other = nonmember.copy()
        other[0] += 1e-12  # one value changed in its 12th decimal: another fit
        assert _same_fit(fit_attack(member, other, ahead), _serial(member, other))
        assert fit_threads.count("MainThread") == 1  # fit_attack fitted `other` itself
        assert ahead.pending  # the unused one waits, for the features it was started on
        assert fit_attack(member.astype(np.float32), nonmember.astype(np.float32), ahead) is not None
        assert fit_threads.count("MainThread") == 2 and ahead.pending  # same values, other dtype: not taken
        assert ahead.take(member.view(np.uint64), nonmember.view(np.uint64)) is None  # same bytes, other dtype
        assert ahead.take(member.reshape(4, 10), nonmember) is None and ahead.pending  # same bytes, other shape
        taken = fit_attack(member, nonmember, ahead)
        assert _same_fit(taken, _serial(member, nonmember)) and not ahead.pending
        assert fit_threads.count("mubench-svc-fit_0") == 1
        ahead.start(member + 1, nonmember)
        ahead.start(member + 2, nonmember)  # one fit pending at a time: the first is dropped
        assert ahead.take(member + 1, nonmember) is None
        assert _same_fit(ahead.take(member + 2, nonmember), _serial(member + 2, nonmember))
    assert not _fit_threads_alive()


def test_two_fit_aheads_share_nothing_and_the_module_keeps_no_state(fit_threads):
    member, nonmember = _features()
    with FitAhead(MIAConfig()) as first, FitAhead(MIAConfig()) as second:
        first.start(member, nonmember)
        assert not second.pending and second.take(member, nonmember) is None
        fit_attack(member, nonmember, second)
        fit_attack(member, nonmember)
        assert fit_threads.count("MainThread") == 2 and first.pending  # neither found the other's fit
        assert first.take(member, nonmember) is not None
    assert not _fit_threads_alive()
    lock = type(threading.Lock())
    for name, value in vars(svc).items():
        assert not isinstance(value, (Future, Executor, lock, threading.Thread)), f"svc.{name} is module-level state"
        if isinstance(value, dict):
            assert not any(isinstance(v, Future) for v in value.values()), f"svc.{name} holds fits"


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
    assert not _fit_threads_alive()  # each job ended its own thread
    assert ahead == serial
    assert {"ua", "ra", "ta", "mia_efficacy", "mia_support", "avg_gap", "kl_forget"} <= serial["finetune"].keys()


def test_an_evaluate_job_that_fails_closes_its_fit_ahead(finished, monkeypatch):
    out, config = finished
    made: list[FitAhead] = []

    class Recorded(FitAhead):
        def __init__(self, mia):
            super().__init__(mia)
            made.append(self)

    def fails(*args, **kwargs):
        raise RuntimeError("the metrics failed")

    monkeypatch.setattr(method_jobs, "FitAhead", Recorded)
    monkeypatch.setattr(method_jobs, "spare_core", lambda ctx: True)
    monkeypatch.setattr(method_jobs, "evaluate", fails)
    store = Store(out)
    job = next(iter(build_plan(config, store).evaluations()))
    store.artifact_path("outputs", outputs_key(job.unlearn)).unlink()  # forwarded anew: the fit starts
    with pytest.raises(RuntimeError, match="the metrics failed"):
        job.run(RunContext(store, CPU))
    assert len(made) == 1 and made[0].started and made[0].closed and not made[0].pending
    assert not _fit_threads_alive()


def test_a_lone_cpu_job_has_a_spare_core_and_a_full_layout_none(monkeypatch):
    monkeypatch.setattr(method_jobs.os, "cpu_count", lambda: 2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert method_jobs.spare_core(RunContext(Store("unused"), CPU, n_jobs=1))
        assert not method_jobs.spare_core(RunContext(Store("unused"), CPU, n_jobs=2))
    finally:
        torch.set_num_threads(threads)
