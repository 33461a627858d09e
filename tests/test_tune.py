"""`mubench tune` (SPEC §3): equal budgets drawn from each method's search space, selection that
never reads the test set or the reported seeds, a criterion that counts the spread, the tuned
settings files it writes and the layer they form under the user's values, and the shipped
digits file that the default run uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli import run_cli

from mubench.cli import build_parser, main
from mubench.commands.run import config_from_args
from mubench.config import ExperimentConfig, TuneConfig
from mubench.config_toml import config_from_dict, config_to_toml, tomllib
from mubench.errors import ConfigError
from mubench.params import check_params
from mubench.planner import build_plan
from mubench.plugins import load_plugins
from mubench.search import Choice, LogUniform, draw, search_space
from mubench.store import Store
from mubench.tuned import SHIPPED_DIR, read_tuned, shipped
from mubench.tuning import Candidate, Cell, TunePlan, kind_candidates, parse_grid_options, select
from mubench.unlearning import METHODS, selectable_methods


def mubench(*args, check=True):
    """The CLI in this process (mubench.testing.run_cli): a fresh interpreter per call cost more
    than the small searches here (the selection test fell from 38 to 15 s)."""
    proc = run_cli(*args)
    if check and proc.returncode != 0:
        raise AssertionError(f"mubench {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _tuned_file(path: Path, tables: str, **meta) -> Path:
    fields = {"dataset": "digits", "train_subset": 0, "model": "small_cnn", "protocol": "heldout",
              "criterion": "mean+std", "budget": 8, "seeds": [100, 101, 102], "command": "written by a test", **meta}
    head = "\n".join(f"{k} = {json.dumps(v)}" for k, v in fields.items())
    path.write_text(f"[tuned]\n{head}\n{tables}")
    return path


# -- the layers: Params < sizing preset < tuned file < [methods] < scenario table < --set -------
LAYERED = """
[experiment]
datasets = ["digits"]
scenarios = ["class:0", "random:10"]
seeds = [0]
methods = ["finetune"]
tuned = "{tuned}"

[methods.finetune."random:10"]
lr = 0.2
"""


def _jobs(tmp_path, *flags) -> dict:
    """The planned finetune Evaluate jobs (nothing runs) by scenario."""
    tuned = _tuned_file(tmp_path / "t.toml", "[methods.finetune.class]\nlr = 0.0404\nepochs = 3\n"
                                             "[methods.finetune.random]\nlr = 0.011\nepochs = 5\n")
    path = tmp_path / "layered.toml"
    path.write_text(LAYERED.format(tuned=tuned))
    args = build_parser().parse_args(["run", "--config", str(path), "--out", str(tmp_path / "r"), *flags])
    plan = build_plan(config_from_args(args), Store(tmp_path / "r"))
    return {j.scenario: j for j in plan.evaluations() if j.method == "finetune"}


def test_tuned_values_sit_between_the_sizing_preset_and_the_user(tmp_path):
    jobs = _jobs(tmp_path)
    c, r = jobs["class:0"], jobs["random:10"]
    # Params (momentum) < digits sizing preset (batch 32) < tuned file (lr, epochs per kind)
    assert (c.params["momentum"], c.params["batch_size"], c.params["lr"], c.params["epochs"]) == (0.9, 32, 0.0404, 3)
    assert c.tuned["file"].endswith("t.toml") and c.tuned["protocol"] == "heldout"
    # the scenario table beats the file: that row's lr is the user's, so it is not marked tuned
    assert (r.params["lr"], r.params["epochs"]) == (0.2, 5) and r.tuned == {}
    # --set beats everything and unmarks the rows whose tuned field it replaces
    jobs = _jobs(tmp_path, "--set", "finetune.epochs=9")
    assert jobs["class:0"].params["epochs"] == 9 and jobs["class:0"].tuned == {}
    # the display name holds the user's values only, so tuned rows keep the method's name
    assert _jobs(tmp_path)["class:0"].unlearn.user_params == {}


def test_a_tuned_row_and_the_same_values_set_by_hand_are_different_records(tmp_path):
    tuned = _jobs(tmp_path)["class:0"]
    by_hand = _jobs(tmp_path, "--tuned", "none", "--set", "finetune.lr=0.0404", "--set", "finetune.epochs=3")["class:0"]
    assert by_hand.params == tuned.params and by_hand.unlearn.key == tuned.unlearn.key  # one predictor
    assert by_hand.key != tuned.key and by_hand.tuned == {}  # a record never claims the wrong provenance


def test_tuned_none_and_files_for_other_data_apply_nothing(tmp_path):
    assert _jobs(tmp_path, "--tuned", "none")["class:0"].params["lr"] == 0.01  # the Params default
    other = _tuned_file(tmp_path / "o.toml", "[methods.finetune.class]\nlr = 0.3\n", train_subset=500)
    assert _jobs(tmp_path, "--tuned", str(other))["class:0"].params["lr"] == 0.01


def test_bad_tuned_option_and_the_old_tuned_table_are_one_line_errors(tmp_path, capsys):
    assert main(["run", "--tuned", str(tmp_path / "nope.toml"), "--dry-run", "--out", str(tmp_path)]) == 2
    assert "--tuned: tuned settings file" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("[methods.finetune.class]\nlr = 0.1\n")
    assert main(["run", "--tuned", str(tmp_path / "bad.toml"), "--dry-run", "--out", str(tmp_path)]) == 2
    assert "is not a tuned settings file" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"the \[tuned\] table is gone"):
        config_from_dict({"tuned": {"finetune": ["class:0"]}}, "x.toml")


def test_config_to_toml_round_trips():
    doc = tomllib.loads(LAYERED.format(tuned="none") + '[recipe]\nepochs = 10\nmilestones = [2, 4]\n'
                        '[tune]\nseeds = [7, 8, 9]\nbudget = 4\nprotocol = "test"\n'
                        '[tune.grid.finetune]\nlr = [1e-05, 0.1]\n[execution.slurm]\ncores = 4\n')
    config = config_from_dict(doc, "x.toml")
    assert config.tune.budget == 4 and config.tune.protocol == "test" and config.tuned == "none"
    assert config_from_dict(tomllib.loads(config_to_toml(config)), "x.toml") == config


# -- search spaces and the equal budget ---------------------------------------------------------
def test_draws_cover_each_axis_and_are_reproducible():
    space = {"lr": LogUniform(1e-3, 1e-1), "epochs": Choice((3, 5, 10, 20))}
    a = draw(space, 8, seed=1)
    assert a == draw(space, 8, seed=1) and a != draw(space, 8, seed=2)
    # a Latin hypercube puts one candidate in each eighth of the (log) lr range ...
    import math
    eighths = sorted(int((math.log10(c["lr"]) + 3) / 2 * 8 - 1e-9) for c in a)
    assert eighths == list(range(8))
    # ... and each choice of 4 exactly twice
    assert sorted(c["epochs"] for c in a) == [3, 3, 5, 5, 10, 10, 20, 20]


def test_every_builtin_method_declares_a_space_its_params_accept():
    load_plugins(())
    for name in METHODS.names():
        cls = METHODS.get(name)
        space = search_space(cls.Params)
        if name == "retrain" or cls.calibration:
            assert space == {}  # the reference is never tuned
            continue
        assert space, f"{name} declares no search space"
        for values in draw(space, 8, seed=0):
            check_params(cls.Params(**{k: v for k, v in values.items()}), f"method {name!r}")
        # hand-set numbers may size a method (batch sizes, epoch caps), never set what is searched
        for table in getattr(cls, "presets", {}).values():
            for kind_table in table.values():
                assert not set(kind_table) & set(space), f"{name}'s preset sets a searched field"


def test_every_method_gets_the_same_number_of_candidates(tmp_path, capsys):
    assert main(["tune", "--methods", "all", "--scenarios", "class:0,random:10", "--budget", "3",
                 "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    n_methods = len(selectable_methods("all")) - 1  # Retrain and the calibration rows are never tuned
    assert f"{n_methods * 2 * 3} candidates in {n_methods * 2} (dataset, model, scenario kind, method) cells" in out
    # a field fixed with --set is left out of that method's draw
    load_plugins(())
    assert {tuple(c.overrides) for c in kind_candidates("finetune", "class", 4, None, {"epochs": "3"})} == {("lr",)}


def test_tuning_seeds_may_not_be_reporting_seeds(tmp_path, capsys):
    assert main(["tune", "--methods", "finetune", "--seeds", "2,100", "--out", str(tmp_path), "--dry-run"]) == 2
    assert "tuning seeds 2 are also reporting seeds" in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["--grid", "finetune.lr"], ["--grid 'finetune.lr'", "METHOD.FIELD=V1,V2"]),
    (["--grid", "finetune.lrr=0.1,0.3"], ["--grid finetune: unknown hyper-parameter 'lrr'", "did you mean 'lr'"]),
    (["--grid", "finetune.lr=-1,0.1"], ["'lr' must be a number in (0, inf)", "'-1'"]),
    (["--grid", "finetune.lr=0.1,0.10"], ["'lr' lists 0.1 twice"]),
    (["--grid", "salun.lr=0.1"], ["'salun' is not among the methods to tune (finetune)"]),
    (["--grid", "retrain.epochs=1,2"], ["never tuned"]),
    (["--grid", "finetune.lr=0.1,0.3", "--set", "finetune.lr=0.2"], ["also fixed with --set finetune.lr"]),
    (["--budget", "0"], ["--budget", "'budget' must be an integer in [1, inf); got 0"]),
    (["--validation", "1.5"], ["--validation", "'validation' must be a number in (0, 1); got 1.5"]),
])
def test_bad_search_options_are_one_line_and_exit_2(args, words, tmp_path, capsys):
    code = main(["tune", "--methods", "finetune", "--scenarios", "class:0", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("mubench: error:"), err
    for w in words:
        assert w in err[0]
    assert not (tmp_path / "tune").exists()  # nothing ran


def test_grid_options_parse():
    assert parse_grid_options(["finetune.lr=0.01, 0.1", "finetune.epochs=5,10", "finetune.lr=0.3"]) == {
        "finetune": {"lr": ["0.3"], "epochs": ["5", "10"]}}


# -- selection ------------------------------------------------------------------------------------
def _selected(tmp_path, gaps: list[list[float | None]], criterion: str, extra: dict | None = None,
              outcome: bool = False):
    """Which candidate wins, given each candidate's gap per seed (None = a failed job). Gaps are
    recomputed from the records against the Retrain each names (as reports do): a candidate
    whose UA is 50 + 4g against Retrain's 50 (RA, TA, MIA equal) sits at Avg. Gap g."""
    store = Store(tmp_path)
    cell_fields = {"dataset": "digits", "model": "small_cnn", "scenario": "class:0", "finished": "2026-01-01"}
    metrics = {"ua": 50.0, "ra": 50.0, "ta": 50.0, "mia_efficacy": 50.0}
    retrain = {}
    for seed in range(max(len(g) for g in gaps)):
        retrain[("class:0", seed)] = f"r{seed}"
        store.write_record("method", f"r{seed}", {**cell_fields, **metrics, "key": f"r{seed}", "seed": seed,
                                                  "status": "ok", "method": "retrain", "display_name": "retrain"})
    cell = Cell("digits", "small_cnn", "class", "finetune", [Candidate({"lr": 0.1 * (i + 1)}) for i in range(len(gaps))],
                scenarios=["class:0"], retrain=retrain)
    for i, per_seed in enumerate(gaps):
        cell.keys.append({})
        for seed, gap in enumerate(per_seed):
            key = f"c{i}s{seed}"
            cell.keys[i][("class:0", seed)] = key
            record = {**cell_fields, "key": key, "seed": seed, "method": "finetune", "retrain_key": f"r{seed}",
                      "display_name": "finetune"}
            if gap is None:
                record["status"] = "failed"
            else:
                record.update(metrics, status="ok", ua=50.0 + 4 * gap, avg_gap=-1.0)  # stored gap ignored
                record.update((extra or {}).get((i, seed), {}))
            store.write_record("method", key, record)
    tp = TunePlan(ExperimentConfig(out=str(tmp_path)), None, [cell], {}, TuneConfig(criterion=criterion))
    result = select(tp)[0]
    return result if outcome else result.winner


def test_a_cell_whose_mia_term_extrapolates_is_selected_without_it(tmp_path):
    """Candidate 0: UA exact, MIA-Efficacy 90 against Retrain's 50 (gap 10, all of it the MIA term);
    candidate 1: UA 58 (gap 2, no MIA term). On the full gap 1 wins; where the SVC extrapolates on
    one run of the cell, the MIA term is dropped and 0 wins (gap 0 against 8/3)."""
    mia = {(0, s): {"ua": 50.0, "mia_efficacy": 90.0, "mia_extrapolates": False} for s in range(3)}
    assert _selected(tmp_path / "f", [[0, 0, 0], [2, 2, 2]], "mean+std", mia) == 1
    flagged = {**mia, (1, 2): {"mia_extrapolates": True}}
    result = _selected(tmp_path / "g", [[0, 0, 0], [2, 2, 2]], "mean+std", flagged, outcome=True)
    assert result.winner == 0 and result.selected_on == "avg_gap_no_mia"
    assert result.stats[1]["scores"]["mean"] == pytest.approx(8 / 3)


def test_mean_plus_std_prefers_a_stable_candidate_the_mean_does_not(tmp_path):
    flips = [0, 10, 0]  # mean 3.33, std 5.77: forgets on two seeds, not on the third
    steady = [4, 4, 4]  # mean 4, std 0
    assert _selected(tmp_path / "a", [flips, steady], "mean+std") == 1
    assert _selected(tmp_path / "b", [flips, steady], "mean") == 0


def test_ties_go_to_the_first_candidate_and_a_failed_run_cannot_win(tmp_path):
    assert _selected(tmp_path / "c", [[1, 1], [1, 1]], "mean+std") == 0
    assert _selected(tmp_path / "d", [[0, None], [2, 2]], "mean+std") == 1
    assert _selected(tmp_path / "e", [[0, None], [None, 2]], "mean+std") is None


# -- real searches on digits ----------------------------------------------------------------------
# A 3-epoch original: nothing here reads how well it fits, only what the search does with it.
TUNE = ["tune", "--datasets", "digits", "--scenarios", "class:0", "--seeds", "100", "--methods", "finetune",
        "--budget", "2", "--set", "recipe.epochs=3", "--backend", "sequential", "--quiet"]

PERMUTED_TEST = '''
import dataclasses, torch
from mubench.data import DATASETS, load_digits

@DATASETS.register("digits_as_is")
def as_is(options):
    """digits under another name (so both datasets get the same generic presets)."""
    return load_digits(options)


@DATASETS.register("digits_permuted_test")
def permuted(options):
    """digits whose test labels are permuted: a selection that never reads the test set cannot tell."""
    data = load_digits(options)
    perm = torch.randperm(len(data.test_y), generator=torch.Generator().manual_seed(0))
    return dataclasses.replace(data, test_y=data.test_y[perm])
'''


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("tuned")
    return root, mubench(*TUNE, "--out", str(root), "--write", str(root / "shipped" / "digits.toml"))


def test_tune_writes_a_settings_file_with_every_candidate_and_the_choice(tuned):
    root, proc = tuned
    summary = json.loads((root / "tune" / "tune.json").read_text())
    (cell,) = summary["cells"]
    scores = [c["scores"]["mean+std"] for c in cell["candidates"]]
    assert cell["chosen"] == cell["candidates"][scores.index(min(scores))]["overrides"]
    settings = read_tuned(root / "shipped" / "digits.toml")
    assert settings.table("finetune", "class") == cell["chosen"] and settings.protocol == "heldout"
    assert settings.seeds == (100,) and settings.command.startswith("python -m mubench tune --datasets digits")
    assert len(settings.candidates) == 2 and sum(c["chosen"] for c in settings.candidates) == 1
    assert settings.produced["precision"] == "fp32" and settings.produced["device"] == "cpu"  # what ran the search
    assert settings.produced["threads"] == 1 and "amx" in settings.produced
    assert "| candidate | Avg. Gap | UA | RA | TA | MIA-Efficacy | score (mean+std) | score (mean) |" in proc.stdout
    # the tuning cells ran on the held-out view: their test split is 10% of the training set
    (key,) = cell["candidates"][0]["keys"].values()
    record = json.loads((root / "tune" / "records" / "method" / f"{key}.json").read_text())
    assert record["dataset"] == "digits{val0.1}" and record["n_test"] == 135  # of 1,347 training images


def test_run_with_the_file_uses_and_marks_the_chosen_values(tuned):
    root, _ = tuned
    path = root / "shipped" / "digits.toml"
    chosen = read_tuned(path).table("finetune", "class")
    run = mubench("run", "--tuned", str(path), "--methods", "finetune", "--scenarios", "class:0", "--seeds", "0",
                  "--set", "recipe.epochs=3", "--set", "evaluation.attacks=svc", "--backend", "sequential", "--quiet",
                  "--out", str(root / "r"))  # without the screen's 4 reference models: not read here
    records = [json.loads(p.read_text()) for p in (root / "r" / "records" / "method").glob("*.json")]
    (ft,) = [r for r in records if r["method"] == "finetune"]
    assert ft["tuned"] is True and ft["tuned_from"]["file"] == str(path) and ft["tuned_from"]["protocol"] == "heldout"
    assert {k: ft["params"][k] for k in chosen} == chosen and ft["n_test"] == 450  # the real test set
    assert f"tuned (heldout): FT use hyper-parameters from {path}" in run.stdout
    mubench("report", "--results", str(root / "r"), "--format", "md")
    report = (root / "r" / "report" / "report.md").read_text()
    assert f"from {path}" in report and "tuned (heldout)" in report  # note and flags column
    # The search ran on another class than the reported class:0 (issue 25), and the report says where.
    tuned_on = read_tuned(path).scenarios["class"]
    assert tuned_on and "class:0" not in tuned_on
    assert "Tuning vs reported" in report and f"| {tuned_on[0]} | 100 |" in report
    assert "selected on this forget set" not in report


def test_second_tune_is_fully_cached(tuned):
    root, _ = tuned
    proc = mubench(*TUNE, "--out", str(root))
    assert "0 jobs run, 10 cached, 0 failed" in proc.stdout  # original, split, 4 x (Unlearn, Evaluate)


def test_selection_cannot_read_the_test_set(tmp_path, isolated_registries, capsys):
    """The same search on digits and on digits with permuted test labels: the held-out protocol
    scores every candidate identically; the references' protocol (select on the test set) does not,
    which shows the comparison can fail. The four searches run through the CLI in this process
    (the registries are restored after it): four fresh interpreters cost more than the searches."""
    plugin = tmp_path / "permuted.py"
    plugin.write_text(PERMUTED_TEST)

    def scores(dataset, protocol):
        out = tmp_path / f"{dataset}-{protocol}"
        code = main([*TUNE, "--datasets", dataset, "--models", "small_cnn", "--plugin", str(plugin),
                     "--protocol", protocol, "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        (cell,) = json.loads((out / "tune" / "tune.json").read_text())["cells"]
        return cell["chosen"], [c["scores"] for c in cell["candidates"]]

    assert scores("digits_as_is", "heldout") == scores("digits_permuted_test", "heldout")
    assert scores("digits_as_is", "test")[1] != scores("digits_permuted_test", "test")[1]


NO_SPACE_PLUGIN = '''
from dataclasses import dataclass
from mubench.params import Interval, param
from mubench.unlearning import Method, register_method

@dataclass(frozen=True)
class NoSpaceParams:
    alpha: float = param(1.0, Interval(0, None), "a weight")

@register_method("tune_test_no_space")
class NoSpace(Method):
    """A method that declares no search space: tune has nothing to draw from."""
    Params = NoSpaceParams
    def unlearn(self, task):
        raise RuntimeError("never run here")
'''


def test_a_method_without_a_space_or_grid_is_skipped_and_said(tmp_path, capsys):
    plugin = tmp_path / "no_space.py"
    plugin.write_text(NO_SPACE_PLUGIN)
    common = ["tune", "--plugin", str(plugin), "--scenarios", "class:0", "--budget", "3",
              "--out", str(tmp_path), "--dry-run"]
    assert main([*common, "--methods", "tune_test_no_space,finetune"]) == 0
    out = capsys.readouterr().out
    assert "tune_test_no_space: not searched" in out and "3 candidates in 1 " in out
    assert main([*common, "--methods", "tune_test_no_space"]) == 2
    assert "nothing to tune" in capsys.readouterr().err
    assert main([*common, "--methods", "tune_test_no_space", "--grid", "tune_test_no_space.alpha=0.5,2"]) == 0
    out = capsys.readouterr()
    assert "2 candidates in 1 " in out.out and "budgets are unequal" in out.err


# -- the shipped settings -------------------------------------------------------------------------
def _builtin_methods() -> list[str]:
    """Registered methods that ship with mubench (plugins loaded by other tests excluded)."""
    load_plugins(())
    return [m for m in selectable_methods("all") if "/mubench/methods/" in METHODS.entry(m).source.replace("\\", "/")]


def test_shipped_files_cover_every_method_and_kind_with_equal_budgets():
    load_plugins(())
    files = shipped()
    assert {f.dataset for f in files} >= {"digits", "fashion-mnist"}
    for f in files:
        assert f.protocol == "heldout" and f.budget >= 1
        assert not set(f.seeds) & set(ExperimentConfig().seeds)  # never a reported seed
        counts = {}
        for c in f.candidates:
            counts[(c["method"], c["kind"])] = counts.get((c["method"], c["kind"]), 0) + 1
        expected = {(m, k) for m in _builtin_methods() if m != "retrain" for k in ("class", "random")}
        assert set(counts) == expected, f"{f.path}: {set(counts) ^ expected}"
        assert set(counts.values()) == {f.budget}, f"{f.path}: unequal budgets {counts}"
        assert all(f.table(m, k) for m, k in expected)


def test_the_default_run_uses_the_shipped_digits_settings(tmp_path):
    load_plugins(())
    plan = build_plan(ExperimentConfig(out=str(tmp_path)), Store(tmp_path))
    builtin = set(_builtin_methods()) - {"retrain"}
    evaluations = [j for j in plan.evaluations() if j.method in builtin]
    assert {j.method for j in evaluations} == builtin and all(j.tuned.get("file") == "mubench/tuned/digits.toml" for j in evaluations)
    settings = read_tuned(SHIPPED_DIR / "digits.toml")
    for j in evaluations:
        chosen = settings.table(j.method, j.scenario.split(":")[0])
        assert {k: j.params[k] for k in chosen} == chosen


def test_run_says_which_tuned_settings_apply(tmp_path, capsys):
    assert main(["run", "--dry-run", "--methods", "finetune", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tuned settings for digits/small_cnn: mubench/tuned/digits.toml (heldout protocol, mean+std, budget 8)" in out
    assert main(["run", "--dry-run", "--methods", "finetune", "--tuned", "none", "--out", str(tmp_path)]) == 0
    assert "tuned settings for digits/small_cnn: none (tuned = 'none')" in capsys.readouterr().out


def test_a_file_from_an_older_search_space_is_named_with_the_fields_it_never_tried(tmp_path):
    """A tuned file whose search did not vary a field today's SEARCH has (scrub's batch sizes,
    added by issue 25) runs that field at its default: `mubench run` says so."""
    from mubench.config import ExperimentConfig
    from mubench.tuned import describe_tuned

    load_plugins(())
    path = tmp_path / "old.toml"
    path.write_text('[tuned]\ndataset = "digits"\ntrain_subset = 0\nmodel = "small_cnn"\nprotocol = "heldout"\n'
                    'criterion = "mean+std"\nbudget = 1\nseeds = [100]\ncommand = "x"\n\n'
                    '[methods.scrub.class]\nlr = 0.001\nepochs = 3\n\n'
                    '[[candidates]]\nmethod = "scrub"\nkind = "class"\nvalues = {lr = 0.001, epochs = 3}\nchosen = true\n')
    settings = read_tuned(path)
    assert settings.unsearched() == {"scrub": ["batch_size", "forget_batch_size"]}
    lines = describe_tuned(ExperimentConfig(tuned=str(path)))
    assert any("searched before today's search spaces: scrub (batch_size, forget_batch_size)" in line for line in lines)
    whole = path.read_text().replace("epochs = 3}", "epochs = 3, batch_size = 64, forget_batch_size = 32}")
    path.write_text(whole)
    assert read_tuned(path).unsearched() == {}
