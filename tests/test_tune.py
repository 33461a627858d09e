"""`mubench tune` and the per-scenario config layer it writes: grid parsing and validation,
the precedence of hyper-parameter layers, the tuned marker, selection rules, and one real
search on digits whose chosen value `mubench run --config` then uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mubench.cli import build_parser, main
from mubench.commands.run import config_from_args
from mubench.config import ExperimentConfig
from mubench.config_toml import config_from_dict, config_to_toml, load_config, tomllib
from mubench.errors import ConfigError
from mubench.runner import build_plan
from mubench.store import Store
from mubench.tuning import Candidate, Cell, TunePlan, cell_candidates, parse_grid_options, select


def mubench(*args, check=True, timeout=600):
    proc = subprocess.run([sys.executable, "-m", "mubench", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"mubench {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


# -- the per-scenario layer and its precedence -------------------------------------------------
LAYERED = """
[experiment]
datasets = ["digits"]
scenarios = ["class:0", "random:10"]
seeds = [0]
methods = ["finetune"]

[methods.finetune]            # all scenarios
lr = 0.05
epochs = 7

[methods.finetune."class:0"]  # this scenario only
lr = 0.2

[tuned]
finetune = ["class:0"]
"""


def _jobs(tmp_path, *flags) -> dict:
    """The planned finetune jobs (nothing runs) of LAYERED with command-line flags, by scenario."""
    path = tmp_path / "layered.toml"
    path.write_text(LAYERED)
    args = build_parser().parse_args(["run", "--config", str(path), "--out", str(tmp_path / "r"), *flags])
    plan = build_plan(config_from_args(args), Store(tmp_path / "r"))
    return {j.scenario: j for j in plan.evaluations() if j.method != "retrain"}


def test_precedence_defaults_preset_config_scenario_set(tmp_path):
    jobs = _jobs(tmp_path)
    # Params default (momentum) < digits preset (batch 32) < [methods.finetune] (lr, epochs) < class:0 table (lr)
    p = jobs["class:0"].params
    assert (p["momentum"], p["batch_size"], p["epochs"], p["lr"]) == (0.9, 32, 7, 0.2)
    assert (jobs["random:10"].params["lr"], jobs["random:10"].params["epochs"]) == (0.05, 7)
    # --set beats both file layers, the scenario table included
    jobs = _jobs(tmp_path, "--set", "finetune.lr=0.3", "--set", "finetune.epochs=9")
    assert (jobs["class:0"].params["lr"], jobs["class:0"].params["epochs"]) == (0.3, 9)
    assert jobs["random:10"].params["lr"] == 0.3


def test_tuned_marker_reaches_the_job_and_its_key(tmp_path):
    jobs = _jobs(tmp_path)
    assert jobs["class:0"].tuned and not jobs["random:10"].tuned
    # the same params without the marker is another job: a record never claims the wrong provenance
    untuned = _jobs(tmp_path, "--set", "finetune.lr=0.2")  # --set replaces the tuned value: not tuned
    assert not untuned["class:0"].tuned
    assert untuned["class:0"].params == jobs["class:0"].params
    assert untuned["class:0"].key != jobs["class:0"].key
    # a --set on another field leaves the tuned value (and the marker) in place
    assert _jobs(tmp_path, "--set", "finetune.epochs=3")["class:0"].tuned


def test_scenario_tables_are_canonical_and_validated(tmp_path):
    c = config_from_dict({"methods": {"finetune": {"random:10.0": {"lr": 0.1}}}}, "x.toml")
    assert c.scenario_params == {"finetune": {"random:10": {"lr": 0.1}}}
    with pytest.raises(ConfigError, match=r"x.toml \[methods.finetune.\"bogus\"\].*names a scenario"):
        config_from_dict({"methods": {"finetune": {"bogus": {"lr": 0.1}}}}, "x.toml")
    with pytest.raises(ConfigError, match=r"\[tuned\].*no \[methods.finetune.\"class:1\"\] table"):
        config_from_dict({"tuned": {"finetune": ["class:1"]}}, "x.toml")
    with pytest.raises(ConfigError, match="never tuned"):
        config_from_dict({"methods": {"retrain": {"class:0": {"epochs": 2}}}, "tuned": {"retrain": ["class:0"]}}, "x")
    with pytest.raises(ConfigError, match=r"\[tune\]: unknown key 'grids'"):
        config_from_dict({"tune": {"grids": {}}}, "x.toml")
    # a bad field in a scenario table is caught at planning, even for a scenario not run now
    bad = tmp_path / "bad.toml"
    bad.write_text('[methods.finetune."class:5"]\nlrr = 0.1\n')
    args = build_parser().parse_args(["run", "--config", str(bad), "--out", str(tmp_path / "r")])
    with pytest.raises(ConfigError, match=r"\[methods.finetune.\"class:5\"\]\)?: unknown hyper-parameter 'lrr'; did you mean 'lr'"):
        build_plan(config_from_args(args), Store(tmp_path / "r"))


def test_config_to_toml_round_trips():
    doc = tomllib.loads(LAYERED + '[recipe]\nepochs = 10\nmilestones = [2, 4]\n[tune]\nseeds = [7]\n'
                        '[tune.grid.finetune]\nlr = [1e-05, 0.1]\n[execution.slurm]\ncores = 4\nname = "a \\"b\\""\n')
    config = config_from_dict(doc, "x.toml")
    assert config_from_dict(tomllib.loads(config_to_toml(config)), "x.toml") == config


# -- the grid ---------------------------------------------------------------------------------
def test_grid_options_parse():
    assert parse_grid_options(["finetune.lr=0.01, 0.1", "finetune.epochs=5,10", "finetune.lr=0.3"]) == {
        "finetune": {"lr": ["0.3"], "epochs": ["5", "10"]}}


@pytest.mark.parametrize("args, words", [
    (["--grid", "finetune.lr"], ["--grid 'finetune.lr'", "METHOD.FIELD=V1,V2"]),
    (["--grid", "lr=0.1,0.3"], ["METHOD.FIELD=V1,V2"]),
    (["--grid", "finetune.lr="], ["METHOD.FIELD=V1,V2"]),
    (["--grid", "finetune.lrr=0.1,0.3"], ["--grid finetune: unknown hyper-parameter 'lrr'", "did you mean 'lr'"]),
    (["--grid", "finetune.lr=fast,0.1"], ["--grid finetune: 'lr' must be a number", "'fast'"]),
    (["--grid", "finetune.lr=-1,0.1"], ["'lr' must be a number in (0, inf)", "'-1'"]),
    (["--grid", "finetune.lr=0.1,0.10"], ["'lr' lists 0.1 twice"]),
    (["--grid", "fine_tune.lr=0.1"], ["unknown method 'fine_tune'", "did you mean 'finetune'"]),
    (["--grid", "salun.lr=0.1"], ["'salun' is not among the methods to tune (finetune)"]),
    (["--grid", "retrain.epochs=1,2"], ["never tuned"]),
    (["--grid", "finetune.lr=0.1,0.3", "--set", "finetune.lr=0.2"], ["also fixed with --set finetune.lr"]),
])
def test_bad_grid_is_one_line_and_exit_2(args, words, tmp_path, capsys):
    code = main(["tune", "--methods", "finetune", "--scenarios", "class:0", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("mubench: error:"), err
    for w in words:
        assert w in err[0]
    assert not (tmp_path / "tune").exists()  # nothing ran


def test_default_grid_is_the_default_lr_times_a_third_one_three():
    from mubench.plugins import load_methods
    from mubench.scenarios import parse_scenario

    load_methods(())
    config = config_from_dict({"methods": {"finetune": {"class:0": {"lr": 0.2}}}})
    cands = cell_candidates(config, "finetune", "digits", parse_scenario("random:10"), None)
    assert [c.overrides["lr"] for c in cands] == [0.0333, 0.1, 0.3]  # digits preset lr 0.1
    assert [c.default for c in cands] == [False, True, False]
    cands = cell_candidates(config, "finetune", "digits", parse_scenario("class:0"), None)
    assert [c.overrides["lr"] for c in cands] == [0.0667, 0.2, 0.6]  # the config's class:0 value
    assert cands[1].label == "lr=0.2 (default)"


# -- selection --------------------------------------------------------------------------------
def _selected(tmp_path, gaps: list[list[float | None]], defaults: list[bool]) -> int | None:
    """Which candidate wins, given each candidate's gap per seed (None = a failed job). Gaps are
    recomputed from the records against the Retrain each names (as reports do): a candidate
    whose UA is 50 + 4g against Retrain's 50 (RA, TA, MIA equal) sits at Avg. Gap g."""
    store = Store(tmp_path)
    cell_fields = {"dataset": "digits", "model": "small_cnn", "scenario": "class:0", "finished": "2026-01-01"}
    metrics = {"ua": 50.0, "ra": 50.0, "ta": 50.0, "mia_efficacy": 50.0}
    retrain = {}
    for seed in range(max(len(g) for g in gaps)):
        retrain[seed] = f"r{seed}"
        store.write_record("method", f"r{seed}", {**cell_fields, **metrics, "key": f"r{seed}", "seed": seed,
                                                  "status": "ok", "method": "retrain", "display_name": "retrain"})
    cell = Cell("digits", "small_cnn", "class:0", "finetune",
                [Candidate({"lr": 0.1 * (i + 1)}, d) for i, d in enumerate(defaults)], retrain=retrain)
    for i, per_seed in enumerate(gaps):
        cell.keys.append({})
        for seed, gap in enumerate(per_seed):
            key = f"c{i}s{seed}"
            cell.keys[i][seed] = key
            record = {**cell_fields, "key": key, "seed": seed, "method": "finetune", "retrain_key": f"r{seed}",
                      "display_name": f"finetune[lr={0.1 * (i + 1):g}]"}
            if gap is None:
                record["status"] = "failed"
            else:
                record.update(metrics, status="ok", ua=50.0 + 4 * gap, avg_gap=-1.0)  # stored gap ignored
            store.write_record("method", key, record)
    tp = TunePlan(ExperimentConfig(out=str(tmp_path)), None, [cell], {})
    return select(tp)[0].winner


def test_selection_smallest_mean_gap_ties_to_default_then_first(tmp_path):
    assert _selected(tmp_path / "a", [[3, 1], [1, 1], [2, 2]], [False, False, True]) == 1
    assert _selected(tmp_path / "b", [[1, 1], [2, 0], [1, 1]], [False, False, True]) == 2  # tie → default
    assert _selected(tmp_path / "c", [[2, 0], [1, 1], [3, 3]], [False, False, True]) == 0  # tie → first
    assert _selected(tmp_path / "d", [[0, None], [2, 2]], [False, True]) == 1  # a failed seed cannot win
    assert _selected(tmp_path / "e", [[0, None], [None, 2]], [False, True]) is None


# -- a real search on digits, then a run with its choice --------------------------------------
TUNE = ["tune", "--datasets", "digits", "--scenarios", "class:0", "--seeds", "100", "--methods", "finetune",
        "--grid", "finetune.lr=0.02,0.3", "--set", "recipe.epochs=10", "--backend", "sequential", "--quiet"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("tuned")
    return root, mubench(*TUNE, "--out", str(root))


def test_tune_chooses_the_smallest_recorded_gap(tuned):
    root, proc = tuned
    summary = json.loads((root / "tune" / "tune.json").read_text())
    (cell,) = summary["cells"]
    gaps = {}
    for cand in cell["candidates"]:
        (key,) = cand["keys"].values()
        record = json.loads((root / "tune" / "records" / "method" / f"{key}.json").read_text())
        assert record["status"] == "ok" and record["params"]["lr"] == cand["overrides"]["lr"]
        gaps[cand["overrides"]["lr"]] = record["avg_gap"]
    best = min(gaps, key=gaps.get)
    assert gaps[0.02] != gaps[0.3] and cell["chosen"] == {"lr": best}
    assert "| candidate | Avg. Gap | UA | RA | TA | MIA-Efficacy | seeds | chosen |" in proc.stdout
    chosen_row = next(line for line in proc.stdout.splitlines() if line.endswith("| ✓ |"))
    assert chosen_row.startswith(f"| lr={best:g} |")
    assert (root / "tune" / "tune.md").read_text().strip() in proc.stdout


def test_tuned_config_makes_run_use_the_chosen_value(tuned):
    root, _ = tuned
    (cell,) = json.loads((root / "tune" / "tune.json").read_text())["cells"]
    path = root / "tune" / "tuned-digits-small_cnn.toml"
    config = load_config(path)
    assert config.scenario_params == {"finetune": {"class:0": cell["chosen"]}}
    assert config.tuned == {"finetune": ("class:0",)} and config.recipe == {"epochs": 10}
    assert config.seeds == (0, 1, 2) and config.out == str(root)  # reporting seeds, reporting root
    run = mubench("run", "--config", str(path), "--seeds", "0", "--backend", "sequential", "--quiet")
    records = [json.loads(p.read_text()) for p in (root / "records" / "method").glob("*.json")]
    (ft,) = [r for r in records if r["method"] == "finetune"]
    assert ft["seed"] == 0 and ft["tuned"] is True and ft["params"]["lr"] == cell["chosen"]["lr"]
    assert ft["params"]["epochs"] == 5  # the rest still comes from the digits preset
    note = f"tuned: FT[lr={cell['chosen']['lr']:g}] on digits/small_cnn/class:0 uses hyper-parameters chosen"
    assert note in run.stdout  # run's summary says the numbers come from tuned settings ...
    mubench("report", "--results", str(root), "--format", "md")
    assert note in (root / "report" / "report.md").read_text()  # ... and so does the report


def test_second_tune_is_fully_cached(tuned):
    root, _ = tuned
    proc = mubench(*TUNE, "--out", str(root))
    assert "0 jobs run, 8 cached, 0 failed" in proc.stdout  # original, split, 3 x (Unlearn, Evaluate)
    assert (root / "tune" / "tuned-digits-small_cnn.toml").is_file()


def test_dry_run_lists_the_candidates_without_running(tmp_path):
    proc = mubench(*TUNE, "--out", str(tmp_path), "--dry-run")
    assert "2 candidates in 1 (dataset, model, scenario, method) cells, seeds 100" in proc.stdout
    assert "Unlearn: 3 jobs, 0 cached, 3 to run" in proc.stdout  # Retrain and the 2 candidates
    assert not Path(tmp_path / "tune" / "records").exists()


NO_LR_PLUGIN = '''
from dataclasses import dataclass
from mubench.params import Interval, param
from mubench.unlearning import Method, register_method

@dataclass(frozen=True)
class NoLrParams:
    alpha: float = param(1.0, Interval(0, None), "a weight")

@register_method("tune_test_no_lr")
class NoLr(Method):
    """A method without an lr (like SSD): the default grid has nothing to search."""
    Params = NoLrParams
    def unlearn(self, task):
        raise RuntimeError("never run here")
'''


def test_a_method_without_lr_or_grid_is_skipped_and_said(tmp_path, capsys):
    plugin = tmp_path / "no_lr.py"
    plugin.write_text(NO_LR_PLUGIN)
    common = ["tune", "--plugin", str(plugin), "--scenarios", "class:0", "--seeds", "100",
              "--set", "recipe.epochs=10", "--out", str(tmp_path), "--dry-run"]
    assert main([*common, "--methods", "tune_test_no_lr,finetune"]) == 0
    out = capsys.readouterr().out
    assert "tune_test_no_lr: not searched: no 'lr'" in out and "3 candidates in 1 " in out
    assert main([*common, "--methods", "tune_test_no_lr"]) == 2
    assert "nothing to tune: tune_test_no_lr has no 'lr'" in capsys.readouterr().err
    assert main([*common, "--methods", "tune_test_no_lr", "--grid", "tune_test_no_lr.alpha=0.5,2"]) == 0
    assert "2 candidates in 1 " in capsys.readouterr().out
