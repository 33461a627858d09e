"""Relearning attack (issue 26, item 2): at 0 steps each predictor reads its own forget accuracy;
on a constructed case the untouched original recovers at once while a model trained without the
class starts near 0 and learns it from the sample; a seed fixes every number; a forget vector is
attacked with δ kept and with δ removed, and the two rows differ."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from mubench.analysis.cells import accuracy
from mubench.analysis.relearn import (
    RelearnSettings,
    attacker_split,
    relearn_curve,
    relearn_summary,
    variants,
)
from mubench.data import eval_view
from mubench.errors import MubenchError
from mubench.predictor import Predictor

SETTINGS = RelearnSettings(retain_mix=(0,))  # the defaults (8 and 32 samples, 1, 5 and 20 steps, lr 0.01), forget sample alone


def _part(data, split, name):
    x, y = (data.test_x, data.test_y) if name == "test" else (data.train_x, data.train_y)
    idx = torch.from_numpy(getattr(split, name))
    return eval_view(data, x[idx]), y[idx]


@pytest.fixture(scope="module")
def parts(digits, class0_split):
    forget, retain = _part(digits, class0_split, "forget"), _part(digits, class0_split, "retain")
    return forget, (retain[0][:300], retain[1][:300])


@pytest.fixture(scope="module")
def random_parts(digits, random10_split):
    """random:10: forget samples of every class, so accuracies are not all 0 or 100."""
    forget, retain = _part(digits, random10_split, "forget"), _part(digits, random10_split, "retain")
    return forget, (retain[0][:300], retain[1][:300])


@pytest.fixture(scope="module")
def never_saw_class0(digits, digits_original, digits_recipe, class0_split, cpu):
    """A Retrain-like model: the digits recipe for 5 epochs on the retain set (no class 0)."""
    from mubench.methods.retrain import Retrain, RetrainParams
    from mubench.pipeline import build_task

    task = build_task(digits, class0_split, digits_original, "small_cnn", digits_recipe, 0, cpu, precision="fp32",
                      progress=False)
    return Retrain(RetrainParams(epochs=5)).unlearn(task)


@pytest.fixture(scope="module")
def shifted(digits_original):
    """A stand-in forget vector: the original behind a fixed seeded δ large enough to change predictions."""
    delta = 0.8 * torch.randn((1, 8, 8), generator=torch.Generator().manual_seed(0))
    return Predictor(digits_original, delta)


def _at(rows, samples, steps, field="forget_acc", mix=0):
    (row,) = [r for r in rows if r["samples"] == samples and r["steps"] == steps and r["retain_mix"] == mix]
    return row[field]


def test_at_zero_steps_each_predictor_reads_its_own_accuracy(digits_original, shifted, parts):
    forget, retain = parts
    _, rest = attacker_split(len(forget[1]), max(SETTINGS.samples), seed=0)
    settings = RelearnSettings(samples=(8, 32), steps=(1,), retain_mix=(0,))
    for pred in (Predictor(digits_original), shifted):
        rows = relearn_curve(pred, forget, retain, settings, seed=0)
        own = accuracy(pred, forget[0][rest], forget[1][rest])
        for n in settings.samples:
            assert _at(rows, n, 0) == own
            assert _at(rows, n, 0, "retain_acc") == accuracy(pred, *retain)
            assert _at(rows, n, 0, "d_forget_acc") == 0.0 == _at(rows, n, 0, "d_retain_acc")
    assert accuracy(shifted, forget[0][rest], forget[1][rest]) < accuracy(Predictor(digits_original), forget[0][rest],
                                                                           forget[1][rest]) - 20  # δ matters


def test_the_original_recovers_at_once_and_a_model_without_the_class_learns_it_from_the_sample(
        digits_original, never_saw_class0, parts):
    forget, retain = parts
    original = relearn_curve(Predictor(digits_original), forget, retain, SETTINGS, seed=0)
    control = relearn_curve(never_saw_class0, forget, retain, SETTINGS, seed=0)
    last = max(SETTINGS.steps)
    for n in SETTINGS.samples:
        assert _at(original, n, 0) >= 95  # it never forgot: nothing to relearn
        assert _at(control, n, 0) <= 5  # trained without class 0: never predicts it
        assert _at(control, n, last) >= _at(control, n, 0) + 50, control  # but learns it from the sample
        for t in (0, *SETTINGS.steps):
            assert _at(original, n, t) >= _at(control, n, t)  # the ordering at every budget
    # the retain-side change is reported beside it: fine-tuning on class 0 alone costs the control retain accuracy
    assert _at(control, 8, last, "d_retain_acc") < -20 < _at(original, 8, last, "d_retain_acc")


def test_the_same_seed_gives_the_same_numbers_and_leaves_the_predictor_unchanged(shifted, random_parts):
    forget, retain = random_parts
    settings = RelearnSettings(samples=(8,), steps=(2, 5), lr=0.05, retain_mix=(0,))
    state = {k: v.clone() for k, v in shifted.model.state_dict().items()}
    rows = relearn_curve(shifted, forget, retain, settings, seed=3)
    assert rows == relearn_curve(shifted, forget, retain, settings, seed=3)
    assert all(torch.equal(v, shifted.model.state_dict()[k]) for k, v in state.items())
    assert not any(p.requires_grad for p in shifted.model.parameters())
    assert rows != relearn_curve(shifted, forget, retain, settings, seed=4)  # another sample and rest
    assert rows[-1]["d_forget_acc"] != 0  # the fine-tuning moved something
    taken, rest = attacker_split(len(forget[1]), 32, seed=3)
    assert torch.equal(taken, attacker_split(len(forget[1]), 32, seed=3)[0])
    assert sorted(torch.cat([taken, rest]).tolist()) == list(range(len(forget[1])))
    with pytest.raises(MubenchError, match="--relearn-samples"):
        attacker_split(10, 10, seed=0)


def test_a_forget_vector_is_attacked_with_delta_kept_and_with_delta_removed(digits_original, shifted, parts):
    forget, retain = parts
    assert list(variants(Predictor(digits_original))) == ["deployed"]
    by_variant = {v: relearn_curve(p, forget, retain, RelearnSettings(samples=(8,), steps=(3,), retain_mix=(0,)), seed=0)
                  for v, p in variants(shifted).items()}
    assert list(by_variant) == ["deployed", "delta_removed"]
    assert by_variant["deployed"] != by_variant["delta_removed"]
    assert _at(by_variant["delta_removed"], 8, 0) > _at(by_variant["deployed"], 8, 0) + 20
    # δ removed is the model alone: the original's own rows
    assert by_variant["delta_removed"] == relearn_curve(Predictor(digits_original), forget, retain,
                                                        RelearnSettings(samples=(8,), steps=(3,), retain_mix=(0,)), seed=0)


def test_retain_samples_in_the_batch_separate_relearning_from_collapse(digits_original, never_saw_class0, parts):
    """On class:0 the forget sample alone pushes the control (which never saw class 0) towards
    predicting 0 everywhere: its forget accuracy rises as its retain accuracy falls. With retain
    samples in every batch it keeps its retain accuracy, and the untouched original still reads
    its class at once. The retain pool is never scored, and mix 0 is the sample-alone attack."""
    from mubench.analysis.relearn import retain_pools

    forget, retain = parts
    pool, scored = retain_pools(retain, 32, 10_000, seed=0)
    assert len(pool[1]) == 32 and len(scored[1]) == len(retain[1]) - 32
    assert not (pool[0][:, None] == scored[0][None]).flatten(2).all(2).any()  # no pool image is scored
    settings = RelearnSettings(samples=(8,), steps=(20,), retain_mix=(0, 32))
    control = relearn_curve(never_saw_class0, forget, scored, settings, seed=0, pool=pool)
    alone = relearn_curve(never_saw_class0, forget, scored, RelearnSettings(samples=(8,), steps=(20,),
                                                                            retain_mix=(0,)), seed=0)
    assert [r for r in control if r["retain_mix"] == 0] == alone
    collapsed, mixed = _at(control, 8, 20, "d_retain_acc"), _at(control, 8, 20, "d_retain_acc", mix=32)
    assert collapsed < -20 and mixed > collapsed + 20, (collapsed, mixed)
    original = relearn_curve(Predictor(digits_original), forget, scored, settings, seed=0, pool=pool)
    assert _at(original, 8, 20, mix=32) >= 95 and _at(original, 8, 20, "d_retain_acc", mix=32) > -5
    with pytest.raises(MubenchError, match="pool"):
        relearn_curve(never_saw_class0, forget, scored, settings, seed=0)
    with pytest.raises(MubenchError, match="--relearn-retain"):
        retain_pools(retain, len(retain[1]), 100, seed=0)


def test_summary_puts_the_control_first_with_mean_std_over_seeds_and_the_gap_to_it():
    rows = [{"dataset": "d", "model": "m", "scenario": "class:0", "method": method, "seed": seed, "variant": variant,
             "samples": 8, "steps": steps, "forget_acc": acc + seed, "d_retain_acc": -1.0}
            for method, variant, acc in (("forget_vector", "deployed", 10.0), ("retrain", "deployed", 0.0),
                                         ("forget_vector", "delta_removed", 90.0), ("original", "deployed", 100.0))
            for seed in (0, 2) for steps in (0, 5)]
    (table,) = relearn_summary(pd.DataFrame(rows)).values()
    assert list(table.method) == ["retrain (control)", "original", "forget_vector",
                                  "forget_vector [δ removed]"]
    fv = table.set_index("method").loc["forget_vector"]
    assert fv["forget acc @0"] == "11.0 ± 1.4"  # 10 and 12
    assert fv["forget acc − Retrain's @5"] == "10.0 ± 0.0"  # paired per seed
    assert fv["seeds"] == 2


def test_summary_pairs_each_method_with_the_retrain_of_its_own_cell():
    """A grid has several cells (the default: class:0 and random:10): the gap to Retrain is
    taken within a cell, never across them."""
    rows = [{"dataset": "d", "model": "m", "scenario": scenario, "method": method, "seed": seed,
             "variant": "deployed", "samples": 8, "steps": steps, "forget_acc": acc + offset, "d_retain_acc": 0.0}
            for scenario, offset in (("class:0", 0.0), ("random:10", 50.0))
            for method, acc in (("retrain", 0.0), ("finetune", 5.0))
            for seed in (0, 1) for steps in (0, 5)]
    tables = relearn_summary(pd.DataFrame(rows))
    assert len(tables) == 2
    for table in tables.values():
        assert table.set_index("method").loc["finetune", "forget acc − Retrain's @5"] == "5.0 ± 0.0"


def test_analyze_rejects_bad_relearn_options_in_one_line(capsys):
    from mubench.cli import main

    for flag, value in (("--relearn-steps", "0,x"), ("--relearn-samples", "0"), ("--relearn-lr", "-1"),
                        ("--relearn-retain", "-4")):
        assert main(["analyze", "--results", "nowhere", "--only", "relearn", flag, value]) == 2
        assert flag in capsys.readouterr().err


def test_analyze_relearn_attacks_every_stored_predictor_and_writes_its_tables(tmp_path):
    """A tiny real grid through `mubench analyze --only relearn`: every stored predictor, Retrain
    included, gets rows at every budget; the forget vector a second, δ-removed row whose step 0 is
    the original's; the tidy CSV and Markdown, the section and its figure are written; a rerun
    reads the cache."""
    from _grids import run_tiny_forget_vector_grid

    from mubench.analysis.cells import load_cells
    from mubench.analysis.relearn import KEYS, analyze_relearn
    from mubench.cli import main

    run_tiny_forget_vector_grid(tmp_path)
    assert main(["analyze", "--results", str(tmp_path), "--only", "relearn", "--relearn-samples", "4,8",
                 "--relearn-steps", "2"]) == 0
    out = tmp_path / "analysis"
    assert "## Relearning" in (out / "analysis.md").read_text()
    assert "| retrain (control) |" in (out / "analysis.md").read_text()
    assert list((out / "figures").glob("relearn_*.png"))
    frame = pd.read_csv(out / "relearn.csv")
    assert (out / "relearn.md").read_text().count("\n|") == len(frame) + 2  # header, rule, rows
    assert not frame.duplicated(KEYS).any()
    assert {"original", "retrain", "forget_vector"} <= set(frame.method)
    assert set(frame[frame.method == "forget_vector"].variant) == {"deployed", "delta_removed"}
    assert set(frame[frame.method != "forget_vector"].variant) == {"deployed"}
    assert set(frame.steps) == {0, 2} and set(frame.samples) == {4, 8}
    assert set(frame.retain_mix) == {0, 32}  # the default: both attackers
    assert "4 forget samples + 32 retain samples per step" in (out / "analysis.md").read_text()
    first = frame[frame.steps == 0].set_index(["method", "variant", "samples"]).forget_acc
    assert (first["forget_vector", "delta_removed"] == first["original", "deployed"]).all()
    assert (first["forget_vector", "deployed"] < first["original", "deployed"] - 50).all()  # δ forgets class 0
    (cell,) = load_cells(tmp_path)
    cache = out / "cache" / "relearn"
    n_cached = len(list(cache.glob("*.json")))
    analyze_relearn(cell, RelearnSettings(samples=(4, 8), steps=(2,)))
    assert len(list(cache.glob("*.json"))) == n_cached  # read, not recomputed
