"""Sequential deletion (issue 26 part 1): a chain of requests, each an Unlearn + Evaluate step
started from the previous step's predictor, against the Retrain of that step (mubench/sequential.py).

One real 3-step class chain on digits (a 3-epoch original, 1-epoch steps, FT and the forget
vector) runs once for the module, with an exception injected into FT's step 2; the tests then
read what it did, and what its rerun did."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch
from _cli import run_cli

from mubench.config import EvaluationConfig, ExecutionConfig, ExperimentConfig, split_scenarios
from mubench.errors import ConfigError
from mubench.method_jobs import Evaluate, Unlearn
from mubench.methods.finetune import Finetune
from mubench.methods.retrain import Retrain
from mubench.planner import build_plan
from mubench.predictor import Predictor
from mubench.runner import execute
from mubench.scenarios import make_split, parse_entry, parse_scenario
from mubench.sequential import InputShift, StepEvaluate, StepUnlearn, compose
from mubench.store import Store

pytestmark = pytest.mark.filterwarnings("ignore:original .* under-fits")  # a 3-epoch original on purpose: speed

CHAIN = "sequential:class:0+3+5"
METHODS = ("finetune", "forget_vector")


def _config(root, *scenarios) -> ExperimentConfig:
    return ExperimentConfig(scenarios=scenarios or (CHAIN,), seeds=(0,), methods=METHODS, out=str(root),
                            calibration=(), precision="fp32", recipe={"epochs": 3},
                            method_params={"retrain": {"epochs": 1}, "finetune": {"epochs": 1},
                                           "forget_vector": {"epochs": 1}},
                            evaluation=EvaluationConfig(attacks=("svc",)),
                            execution=ExecutionConfig(backend="sequential", jobs=1, threads_per_worker=1))


def _state_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode() + value.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory):
    """The chain run twice into one store: first with FT failing at its step 2 (request class:3),
    then again without the failure. Records what the Retrains trained on and what FT started from."""
    root = tmp_path_factory.mktemp("chain")
    seen = {"retrain": [], "finetune": [], "earlier": []}
    fail = {"on": True}
    retrain_unlearn, finetune_unlearn = Retrain.unlearn, Finetune.unlearn

    def retrain(self, task):
        seen["retrain"].append((int(task.forget_y[0]), set(task.retain_y.tolist()), len(task.retain_y)))
        return retrain_unlearn(self, task)

    def finetune(self, task):
        request = int(task.forget_y[0])
        seen["finetune"].append((request, _state_hash(task.original), task.scenario.spec))
        earlier = task.earlier_forget_y
        seen["earlier"].append(None if earlier is None else (sorted(set(earlier.tolist())), len(earlier),
                                                             len(task.earlier_forget_x)))
        if fail["on"] and request == 3:
            raise RuntimeError("injected failure at step 2")
        return finetune_unlearn(self, task)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Retrain, "unlearn", retrain)
        mp.setattr(Finetune, "unlearn", finetune)
        config = _config(root)
        first_plan = build_plan(config, Store(root))
        first = execute(first_plan, config, progress=False)
        steps = {t: j for j in first_plan.jobs if isinstance(j, StepUnlearn) and j.method == "finetune"
                 for t in [parse_scenario(j.split.scenario).requests]}
        step1 = Store(root).record_path("unlearn", steps[1].key)
        before = (step1.stat().st_mtime_ns, len(seen["finetune"]))
        fail["on"] = False
        second_plan = build_plan(config, Store(root))
        second = execute(second_plan, config, progress=False)
    return {"root": root, "config": config, "first": first, "second": second, "seen": seen, "steps": steps,
            "step1_record": step1, "before": before, "second_plan": second_plan}


def _rows(records, method):
    return sorted((r for r in records if r["method"] == method), key=lambda r: r["step"])


def test_a_three_step_class_chain_runs_and_records_each_step(chain_run):
    records = chain_run["second"].records
    assert not chain_run["second"].failed
    for method in ("retrain", *METHODS):
        rows = _rows(records, method)
        assert [r["step"] for r in rows] == [1, 2, 3]
        assert [r["request"] for r in rows] == ["class:0", "class:3", "class:5"]
        assert [r["scenario"] for r in rows] == ["sequential:class:0", "sequential:class:0+3", CHAIN]
        assert [len(r["ua_requests"]) for r in rows] == [1, 2, 3]
        for r in rows:
            assert r["ua_requests"][-1] == r["ua"]  # request t's UA is the cell's own
            assert min(r["ua_requests"]) <= r["ua_all"] <= max(r["ua_requests"])
            assert r["n_forgotten"] == sum(r2["n_forget"] for r2 in rows[: r["step"]])
        cumulative = np.cumsum([r["rte_s"] for r in rows])
        assert np.allclose([r["rte_cum_s"] for r in rows], cumulative)
    for ft, ref in zip(_rows(records, "finetune"), _rows(records, "retrain"), strict=True):
        assert ft["retrain_key"] == ref["key"]  # each step's gap is to that step's Retrain
        assert ft["rte_cum_rel"] == pytest.approx(ft["rte_cum_s"] / ref["rte_cum_s"])
    # Retrain after every request has forgotten every request so far (none of them in its training set)
    assert all(u == 100.0 for r in _rows(records, "retrain") for u in r["ua_requests"])


def test_the_method_sees_request_t_alone_and_continues_from_step_t_minus_1(chain_run):
    store = Store(chain_run["root"])
    seen = chain_run["seen"]["finetune"]
    steps = chain_run["steps"]
    assert [(r, spec) for r, _, spec in seen] == [(0, "class:0"), (3, "class:3"), (3, "class:3"), (5, "class:5")]
    original = next(j for j in steps[1].deps() if j.kind == "original")
    from mubench.jobs import RunContext

    base = original.load(RunContext(store, torch.device("cpu"))).model
    step1 = steps[1].load_predictor(store, base)[0]
    step2 = steps[2].load_predictor(store, base)[0]
    assert seen[0][1] == _state_hash(base)  # step 1 starts from the original
    assert seen[1][1] == seen[2][1] == _state_hash(step1.model) != _state_hash(base)  # step 2 from step 1's model
    assert seen[3][1] == _state_hash(step2.model)
    assert steps[2].previous.key == steps[1].key and steps[1].previous is None


def test_step_t_also_carries_requests_1_to_t_minus_1_for_methods_that_want_them(chain_run):
    """`earlier_forget_x/_y` hold every earlier request's images (and only those), in order."""
    records = _rows(chain_run["second"].records, "retrain")
    n = {r["request"]: r["n_forget"] for r in records}
    assert chain_run["seen"]["earlier"] == [None, ([0], n["class:0"], n["class:0"]), ([0], n["class:0"], n["class:0"]),
                                            ([0, 3], n["class:0"] + n["class:3"], n["class:0"] + n["class:3"])]


def test_the_forget_vector_with_chain_forget_all_keeps_the_earlier_request_forgotten(digits, make_task):
    """The chain `class:0+3` in miniature. Step 1 learns δ_1 on class 0; step 2 learns δ_2 on
    f(x + δ_1) with D minus both classes as its retain set. Learned on request 2 (class 3) alone,
    δ_2 has nothing holding class 0 forgotten under δ_1 + δ_2. With chain_forget="all" its forget
    term also covers class 0, so class 0 stays forgotten under the composed δ."""
    from _grids import FV_CLASS_VALUES

    from mubench.methods.forget_vector import CPU_SCHEDULE, ForgetVector, ForgetVectorParams
    from mubench.metrics import unlearning_accuracy
    from mubench.outputs import PartOutputs
    from mubench.pipeline import get_split

    # what a digits chain runs: the CPU schedule and a class-wise β and lr of a digits search
    params = ForgetVectorParams(**CPU_SCHEDULE, **FV_CLASS_VALUES)
    first = make_task(get_split(None, digits, "class:0", 0))
    step1 = ForgetVector(params).unlearn(first)
    task = make_task(get_split(None, digits, "class:3", 0))
    keep = task.retain_y != 0
    task = dataclasses.replace(task, original=InputShift(first.original, step1.delta),
                               retain_x=task.retain_x[keep], retain_y=task.retain_y[keep],
                               earlier_forget_x=first.forget_x, earlier_forget_y=first.forget_y)

    def ua_on_class0(predictor: Predictor) -> float:
        logits = predictor.logits(first.forget_x, torch.device("cpu"), prepare=first.prepare)
        return unlearning_accuracy(PartOutputs(logits, first.forget_y.long()))

    def step2(chain_forget: str) -> float:
        learned = ForgetVector(dataclasses.replace(params, chain_forget=chain_forget)).unlearn(task)
        return ua_on_class0(compose(learned))

    after_step1, alone, every = ua_on_class0(step1), step2("request"), step2("all")
    assert after_step1 > 90, after_step1
    assert every > 90 and every > alone + 20, (after_step1, alone, every)


def test_chain_forget_is_keyed_only_when_set_and_never_in_the_bank(tmp_path):
    """Added after runs were cached: at its default it is left out of the keys (a rerun finds
    the earlier records); set to 'all' it re-keys the forget vector's jobs and nothing else."""
    from mubench.config import parse_set_options, with_set_options
    from mubench.params import keyed_params

    def keys(*sets) -> dict:
        config = with_set_options(ExperimentConfig(scenarios=("class:0",), seeds=(0,), out=str(tmp_path),
                                                   methods=("forget_vector", "fv_arithmetic")), parse_set_options(sets))
        return {(type(j).__name__, getattr(j, "method", None) or getattr(j, "name", None)): j.key
                for j in build_plan(config, Store(tmp_path)).jobs if not isinstance(j, Evaluate)}

    default, chained = keys(), keys("forget_vector.chain_forget=all")
    moved = {job for job in default if default[job] != chained[job]}
    assert moved == {("Unlearn", "forget_vector")}, moved
    from mubench.methods.forget_vector import ForgetVectorParams

    assert "chain_forget" not in keyed_params(ForgetVectorParams())
    assert keyed_params(ForgetVectorParams(chain_forget="all"))["chain_forget"] == "all"


def test_a_chain_that_failed_at_step_2_resumes_without_redoing_step_1(chain_run):
    first, second = chain_run["first"], chain_run["second"]
    failed = sorted((r["method"], r["step"]) for r in first.failed)
    assert failed == [("finetune", 2), ("finetune", 3)]  # step 3 fails upstream, the rest of the grid ran
    assert sum(r["method"] == "forget_vector" for r in first.records) == 3
    mtime, calls = chain_run["before"]
    assert chain_run["step1_record"].stat().st_mtime_ns == mtime  # step 1 was not rewritten
    assert [r for r, _, _ in chain_run["seen"]["finetune"][calls:]] == [3, 5]  # the rerun ran steps 2 and 3 only
    pending = [j for j in chain_run["second_plan"].pending()]
    assert sorted((type(j).__name__, parse_scenario(j.scenario if isinstance(j, Evaluate) else j.split.scenario).requests)
                  for j in pending) == [("StepEvaluate", 2), ("StepEvaluate", 3), ("StepUnlearn", 2), ("StepUnlearn", 3)]
    assert second.ran == 4


def test_each_steps_retrain_trains_without_every_earlier_request(chain_run):
    retrains = {request: (labels, n) for request, labels, n in chain_run["seen"]["retrain"]}
    assert set(retrains) == {0, 3, 5}  # one Retrain per step, run once (the rerun found them done)
    assert len(chain_run["seen"]["retrain"]) == 3
    for request, forgotten in [(0, {0}), (3, {0, 3}), (5, {0, 3, 5})]:
        labels, n = retrains[request]
        assert labels == set(range(10)) - forgotten
    store = Store(chain_run["root"])
    retrain_rows = _rows(chain_run["second"].records, "retrain")
    for row in retrain_rows:
        assert row["n_retain"] == retrains[int(row["request"].split(":")[1])][1]
        assert row["n_retain"] + row["n_forgotten"] == 1347  # digits' training set
    step3 = next(j for j in chain_run["second_plan"].jobs if type(j) is Unlearn and j.split.scenario == CHAIN)
    split = step3.split.load(store)
    earlier = [j.split.load(store).forget for j in chain_run["second_plan"].jobs
               if type(j) is Unlearn and j.method == "retrain" and j.split.scenario != CHAIN]
    assert len(earlier) == 2 and all(not np.intersect1d(split.retain, f).size for f in earlier)
    data = step3.original.ref.load()
    assert set(data.test_y[split.test].tolist()) == set(range(10)) - {0, 3, 5}  # TA on the classes left
    assert set(data.test_y[split.test_forgotten].tolist()) == {0, 3, 5}


def test_forget_vector_steps_compose_their_deltas_on_the_frozen_original():
    model = torch.nn.Linear(4, 2)
    d1, d2 = torch.full((4,), 0.5), torch.arange(4.0)
    step = compose(Predictor(InputShift(model, d1), d2, params_changed=4))
    assert step.model is model and torch.equal(step.delta, d1 + d2) and step.params_changed == 4
    x = torch.randn(3, 4)
    assert torch.allclose(step(x), model(x + d1 + d2))
    # a model-based step is counted against the original by evaluation, over every step
    assert compose(Predictor(model, params_changed=7)).params_changed is None


def test_forget_vector_chain_stores_the_composed_delta_and_the_original_weights(chain_run):
    store = Store(chain_run["root"])
    plan = chain_run["second_plan"]
    fv = {parse_scenario(j.split.scenario).requests: j for j in plan.jobs
          if isinstance(j, StepUnlearn) and j.method == "forget_vector"}
    states = {t: store.load_artifact("predictor", job.key) for t, job in fv.items()}
    assert all(set(s) == {"delta"} for s in states.values())  # the model is the original's, unchanged
    assert not torch.equal(states[1]["delta"], states[2]["delta"])
    rows = _rows(chain_run["second"].records, "forget_vector")
    assert [r["params_changed"] for r in rows] == [64] * 3  # one composed 8x8 δ, whatever the step


def test_a_longer_chain_reuses_a_shorter_ones_steps(chain_run, tmp_path):
    root = chain_run["root"]
    shorter = build_plan(_config(root, "sequential:class:0+3"), Store(root))
    assert not shorter.pending()  # every job of the 2-step chain is one of the 3-step run's
    longer = build_plan(_config(root, "sequential:class:0+3+5+7"), Store(root))
    assert {j.key for j in chain_run["second_plan"].jobs} <= {j.key for j in longer.jobs}
    assert {parse_scenario(getattr(j, "scenario", None) or j.split.scenario).requests for j in longer.pending()
            if isinstance(j, (Unlearn, Evaluate))} == {4}
    # and a plain scenario keeps its jobs' keys beside a chain
    plain = {j.key for j in build_plan(_config(tmp_path, "class:0"), Store(tmp_path)).jobs}
    both = build_plan(_config(tmp_path, "class:0", CHAIN), Store(tmp_path))
    assert plain <= {j.key for j in both.jobs}
    assert not any(isinstance(j, (StepUnlearn, StepEvaluate)) for j in both.jobs if j.key in plain)


def test_random_chain_requests_are_disjoint_seeded_and_prefix_stable(digits):
    y, ty = digits.train_y.numpy(), digits.test_y.numpy()
    four = [make_split(y, ty, f"sequential:random:5x{t}", 0) for t in range(1, 5)]
    forgets = [s.forget for s in four]
    assert all(len(f) == round(0.05 * len(y)) for f in forgets)
    assert len(np.unique(np.concatenate(forgets))) == 4 * len(forgets[0])  # disjoint
    assert np.array_equal(four[-1].retain, np.setdiff1d(np.arange(len(y)), np.concatenate(forgets)))
    assert len(four[-1].test) == len(ty)  # random chains test on the whole test set
    assert np.array_equal(make_split(y, ty, "sequential:random:5x2", 0).forget, forgets[1])  # deterministic
    assert not np.array_equal(make_split(y, ty, "sequential:random:5x2", 1).forget, forgets[1])  # seeded


def test_chain_spellings_parse_to_their_canonical_text():
    assert parse_entry(" sequential:class:0+3+5 ").spec == CHAIN
    assert parse_entry("sequential:random:5.0x4").spec == "sequential:random:5x4"
    sc = parse_scenario("sequential:random:5x4")
    assert [s.spec for s in sc.steps()] == [f"sequential:random:5x{t}" for t in range(1, 5)]
    assert sc.request.spec == "random:5" and parse_scenario(CHAIN).request.spec == "class:5"
    assert split_scenarios(f"class:0,{CHAIN},sequential:random:5x4,classes:1,2") == (
        "class:0", CHAIN, "sequential:random:5x4", "classes:1,2")


@pytest.mark.parametrize("text, words", [
    ("sequential:class:0,3", "malformed chain"), ("sequential:class:", "malformed chain"),
    ("sequential:class:0+0", "repeats a class"), ("sequential:random:5", "malformed chain"),
    ("sequential:random:5x0", "malformed chain"), ("sequential:random:30x4", "P × T must stay below 100"),
    ("sequential:random:0x2", "percentage must be in (0, 100)"), ("sequential:foo:1", "malformed chain"),
])
def test_bad_chain_specs_are_one_sentence_errors(text, words):
    with pytest.raises(ConfigError, match="^[^\n]*$") as err:
        parse_entry(text)
    assert words in str(err.value)


def test_a_bad_chain_on_the_command_line_is_one_line_and_exit_2():
    result = run_cli("run", "--scenarios", "class:0,sequential:class:0+3+10", "--dry-run", "--out", "unused")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "class 10 is out of range" in result.stderr


def test_the_report_lines_up_each_chain_by_step(chain_run, tmp_path):
    from mubench.report.records import load_records
    from mubench.report.sequential import chain_figures, chain_table, chains

    assert chains(["class:0", "sequential:class:0", "sequential:class:0+3", "sequential:class:1"]) == {
        "sequential:class:0+3": ["sequential:class:0", "sequential:class:0+3"],
        "sequential:class:1": ["sequential:class:1"]}
    table = chain_table(load_records(chain_run["root"]))
    assert set(table["chain"]) == {CHAIN}
    assert table.groupby("method")["step"].apply(list).to_dict() == {m: [1, 2, 3] for m in ("retrain", *METHODS)}
    ft = table[table["method"].eq("finetune")]
    rows = _rows(chain_run["second"].records, "finetune")
    assert np.allclose(ft["rte_cum_s"], [r["rte_cum_s"] for r in rows])
    assert np.allclose(ft["avg_gap"], [r["avg_gap"] for r in rows])
    # the chain-level gap on forgetting: |UA on all forgotten so far - that step's Retrain's|
    retrain_ua_all = [r["ua_all"] for r in _rows(chain_run["second"].records, "retrain")]
    assert np.allclose(ft["ua_all_gap"], [abs(r["ua_all"] - u) for r, u in zip(rows, retrain_ua_all, strict=True)])
    assert (table.loc[table["method"].eq("retrain"), "ua_all_gap"] == 0).all()
    (figure,) = chain_figures(table, tmp_path)
    assert figure.png.is_file() and figure.cell == ("digits", "small_cnn", CHAIN)


def test_chain_avg_gap_charges_a_request_given_back(tmp_path):
    """Hand-computed (issue 26's chain-level Avg. Gap): on a 2-step class chain FV matches
    Retrain on request t at both steps (per-step gaps 0), but at step 2 its UA on everything
    forgotten so far is 50 against Retrain's 100 (class 0 given back): its chain gap is
    (0 + 50 / 4) / 2 = 6.25 per seed; FT is 2 points off on RA at each step: 0.5."""
    from mubench.report.records import load_records
    from mubench.report.sequential import chain_summary
    from mubench.store import Store

    store = Store(tmp_path)
    for seed in (0, 1):
        for step, spec in ((1, "sequential:class:0"), (2, "sequential:class:0+3")):
            for method, ua_all, ra in (("retrain", 100.0, 99.0), ("forget_vector", 100.0 if step == 1 else 50.0, 99.0),
                                       ("finetune", 100.0, 97.0)):
                rec = {"key": f"{method}-{step}-{seed}", "dataset": "digits", "model": "small_cnn", "scenario": spec,
                       "scenario_kind": "sequential", "seed": seed, "method": method, "display_name": method,
                       "params": {}, "status": "ok", "split_hash": f"{spec}-{seed}", "retrain_key": f"retrain-{step}-{seed}",
                       "finished": "2026-01-01T00:00:00", "ua": 100.0, "ra": ra, "ta": 98.0, "mia_efficacy": 100.0,
                       "ua_all": ua_all, "step": step, "request": f"class:{spec[-1]}", "rte_cum_rel": 0.1 * step}
                store.write_record("method", rec["key"], rec)
    table = chain_summary(load_records(tmp_path)).set_index("variant")
    assert table.loc["forget_vector", "chain_gap"] == pytest.approx(6.25)
    assert table.loc["forget_vector", "step_gap"] == pytest.approx(0.0)
    assert table.loc["forget_vector", "final_ua_all_gap"] == pytest.approx(50.0)
    assert table.loc["finetune", "chain_gap"] == pytest.approx(0.5) and table.loc["finetune", "step_gap"] == pytest.approx(0.5)
    assert table.loc["retrain", "chain_gap"] == 0 and table.loc["forget_vector", "seeds"] == "2/2"
    assert table.loc["finetune", "final_rte_rel"] == pytest.approx(0.2)
    # A committed records.csv re-renders the chain tables (it has no text column for the request).
    from mubench.report.records import tidy
    from mubench.report.sequential import chain_table

    tidy(load_records(tmp_path)).to_csv(tmp_path / "records.csv", index=False)
    steps = chain_table(load_records(tmp_path / "records.csv"))
    assert steps.groupby("step")["request"].first().to_dict() == {1: "class:0", 2: "class:3"}
