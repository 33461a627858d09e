"""Bad user input is one stderr line and exit 2 before any job starts or any folder is written."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
import torch

from mubench.cli import main
from mubench.config import ExperimentConfig, split_scenarios
from mubench.config_toml import config_from_dict, config_to_toml
from mubench.errors import ConfigError
from mubench.validate import check_device, validate_config

README_SCENARIOS = "class:0,random:10,classes:1,2,subset:1,2:50"


def _fails(capsys, tmp_path, *argv, command="run"):
    """main(argv) exits 2 with one stderr line (returned), no traceback, and no results folder."""
    out = tmp_path / "results"
    extra = ("--out", str(out)) if command in ("run", "train") else ()
    assert main([command, *argv, *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mubench: error: ")
    assert not out.exists(), "the results folder was created before the config was validated"
    return lines[0]


RUN_CASES = [
    (["--methods", ","], ["--methods", "no methods selected"]),
    (["--methods", "fintune"], ["unknown method 'fintune'", "did you mean 'finetune'"]),
    (["--methods", "zz*"], ["unknown method 'zz*'"]),
    (["--seeds", ","], ["--seeds", "no seeds given"]),
    (["--seeds", "-1"], ["seed -1", "[0, 2**32)"]),
    (["--seeds", "0,1,0"], ["seed 0 is given twice"]),
    (["--seeds", "1.5"], ["--seeds", "'1.5'"]),
    (["--set", "recipe.epochs=0"], ["'epochs'", "[1, inf)", "'0'"]),
    (["--set", "recipe.batch_size=0"], ["'batch_size'", "[1, inf)"]),
    (["--set", "recipe.lr=0"], ["'lr'", "(0, inf)"]),
    (["--set", "recipe.lr=fast"], ["'lr'", "a number", "'fast'"]),
    (["--set", "recipe.epoch=3"], ["unknown field 'epoch'", "did you mean 'epochs'"]),
    (["--set", "recipe.schedule=step"], ["'schedule'", "'multistep'"]),
    (["--set", "recipe.milestones=91,136"], ["'milestones'", "(0, 1)"]),
    (["--set", "salun.lr=-1"], ["method 'salun'", "'lr'"]),
    (["--set", "salun.lrr=1"], ["unknown hyper-parameter 'lrr'", "did you mean 'lr'"]),
    (["--set", "nosuch.lr=1"], ["unknown method 'nosuch'"]),
    (["--datasets", "digit"], ["unknown dataset 'digit'", "did you mean 'digits'"]),
    (["--datasets", ","], ["--datasets", "no datasets given"]),
    (["--models", "resnet"], ["unknown model 'resnet'"]),
    (["--scenarios", ","], ["--scenarios", "no scenarios given"]),
    (["--scenarios", "class:0,foo:1"], ["malformed scenario 'foo:1'"]),
    (["--scenarios", "random:100"], ["percentage must be in (0, 100)"]),
    (["--scenarios", "class:0,class:10"], ["class 10 is out of range 0..9", "'digits'"]),
    (["--scenarios", "subset:3,12:50"], ["class 12 is out of range", "'digits'"]),
    (["--device", "gpu"], ["--device", "'gpu' is not a device"]),
    (["--device", "cuda:x"], ["--device", "'cuda:x'"]),
    (["--jobs", "-1"], ["--jobs", "got -1"]),
    (["--threads", "-1"], ["--threads", "got -1"]),
]


@pytest.mark.parametrize("argv, words", RUN_CASES, ids=[" ".join(a) for a, _ in RUN_CASES])
def test_bad_run_values_are_one_line_exit_2(argv, words, capsys, tmp_path):
    line = _fails(capsys, tmp_path, *argv)
    for w in words:
        assert w in line, line


def test_bad_precision_in_a_config_file(capsys, tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('[experiment]\nprecision = "fp16"\n')
    line = _fails(capsys, tmp_path, "--config", str(path))
    assert f"{path} [experiment]: 'precision' must be one of 'auto', 'fp32', 'bf16'; got 'fp16'" in line


@pytest.mark.parametrize("table, words", [
    ("[experiment]\nseeds = []\n", ["no seeds given", "[experiment] seeds"]),
    ("[experiment]\nmethods = []\n", ["no methods selected"]),
    ("[experiment]\nscenarios = \"class:0,classes:1,2,random:101\"\n", ["random:101"]),
    ("[recipe]\nepochs = 0\n", ["[recipe]", "'epochs'"]),
    ("[recipe]\noptim = 1\n", ["unknown field 'optim'"]),
    ("[execution]\njobs = -2\n", ["[execution]: 'jobs' must be an integer in [0, inf)", "got -2"]),
    ("[execution]\nthreads_per_worker = -1\n", ["threads_per_worker", "got -1"]),
    ("[execution]\nbackend = \"ray\"\n", ["'backend' must be one of 'loky', 'dask', 'sequential'; got 'ray'"]),
    ("[methods.salun]\nlr = 0\n", ["[methods.salun]", "'lr'"]),
    ("[methods.salun.\"class:0\"]\nlr = 0\n", ["[methods.salun.\"class:0\"]", "'lr'"]),
    ("[tune]\nseeds = [100, 100]\n", ["[tune] seeds", "seed 100 is given twice"]),
    ("[tune.grid.salun]\nlrr = [0.1, 0.2]\n", ["[tune.grid.salun]", "'lrr'", "did you mean 'lr'"]),
    ("[tune.grid.salon]\nlr = [0.1]\n", ["unknown method 'salon'"]),
])
def test_bad_config_file_values(table, words, capsys, tmp_path):
    path = tmp_path / "x.toml"
    path.write_text(table)
    line = _fails(capsys, tmp_path, "--config", str(path))
    for w in words:
        assert w in line, line


def test_float_seeds_in_toml_are_not_truncated():
    with pytest.raises(ConfigError, match="'seeds' must be a list of int"):
        config_from_dict({"experiment": {"seeds": [0, 1.5]}}, "x.toml")


def test_a_missing_cuda_device_is_one_line_before_any_job(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = _fails(capsys, tmp_path, "--device", "cuda")
    assert "'cuda' is not present" in line and "no CUDA GPU" in line


def test_a_missing_gpu_index_is_named(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    line = _fails(capsys, tmp_path, "--device", "cuda:3")
    assert "'cuda:3' is not present" in line and "1 CUDA device(s), cuda:0 to cuda:0" in line
    check_device("cuda:0")  # the one that exists passes
    check_device("cuda:3", present=False)  # a Dask cluster's workers have their own GPUs


def test_dask_backend_does_not_check_this_machines_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = ExperimentConfig(methods=("finetune",), seeds=(0,))
    with pytest.raises(ConfigError, match="not present"):
        validate_config(config.__class__(**{**config.__dict__, "execution": config.execution.__class__(device="cuda")}))
    validate_config(config.__class__(**{**config.__dict__, "execution": config.execution.__class__(
        device="cuda", backend="dask")}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_subprocess(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mubench", "run", "--device", "cuda", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert "Traceback" not in out.stderr and "'cuda' is not present" in out.stderr


def test_a_plugin_that_registers_nothing_is_an_error(capsys, tmp_path):
    empty = tmp_path / "empty_plugin.py"
    empty.write_text("X = 1  # forgot @register_method\n")
    line = _fails(capsys, tmp_path, "--plugin", str(empty))
    assert f"plugin {empty} registered nothing (no @register_method/_dataset/_model/_metric/_attack)" in line


@pytest.mark.parametrize("argv, words", [
    (["--dataset", "digit"], ["unknown dataset 'digit'"]),
    (["--model", "resnet"], ["unknown model 'resnet'"]),
    (["--seed", "-3"], ["--seed", "seed -3"]),
    (["--epochs", "0"], ["--epochs", "'epochs'", "[1, inf)"]),
    (["--device", "cuda:7"], ["--device", "'cuda:7'"]),
])
def test_bad_train_values_are_one_line_exit_2(argv, words, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = _fails(capsys, tmp_path, *argv, command="train")
    for w in words:
        assert w in line, line


def test_list_with_a_missing_plugin_is_one_line(capsys, tmp_path):
    _fails(capsys, tmp_path, "methods", "--plugin", str(tmp_path / "absent.py"), command="list")


# -- scenario lists with commas inside scenarios ---------------------------------------------------
def test_readme_scenario_list_splits_into_four():
    assert split_scenarios(README_SCENARIOS) == ("class:0", "random:10", "classes:1,2", "subset:1,2:50")
    assert split_scenarios("class:0, random:10 ,classes:1, 2") == ("class:0", "random:10", "classes:1, 2")
    assert split_scenarios("") == ()


def _args(**given):
    from mubench.commands.run import add_experiment_arguments

    p = argparse.ArgumentParser()
    add_experiment_arguments(p)
    argv = [x for k, v in given.items() for x in (f"--{k.replace('_', '-')}", v)]
    return p.parse_args(argv)


def test_readme_scenarios_flag_parses_and_validates():
    from mubench.commands.run import config_from_args

    config = config_from_args(_args(scenarios=README_SCENARIOS, methods="finetune", seeds="0"))
    assert config.scenarios == ("class:0", "random:10", "classes:1,2", "subset:1,2:50")
    validate_config(config)


def test_toml_scenario_string_splits_the_same_way():
    config = config_from_dict({"experiment": {"scenarios": README_SCENARIOS}})
    assert config.scenarios == ("class:0", "random:10", "classes:1,2", "subset:1,2:50")
    doc = {"methods": {"salun": {"classes:1,2": {"lr": 0.1}, "class:0": {"lr": 0.2}}}}
    assert set(config_from_dict(doc).scenario_params["salun"]) == {"classes:1,2", "class:0"}


def test_the_default_config_is_valid():
    validate_config(ExperimentConfig())
    validate_config(config_from_dict({"recipe": {"epochs": 3, "milestones": [0.5], "lr": 0.05,
                                                 "schedule": "cosine", "precision": "fp32"}}))


# -- [bank] ----------------------------------------------------------------------------------------
def test_bank_table_is_read_written_back_and_set_from_the_command_line(tmp_path):
    from mubench.commands.run import config_from_args
    from mubench.config_toml import load_config

    doc = {"bank": {"epochs": 30, "lr": 0.2}, "methods": {"forget_vector": {"beta": 5.0}}}
    config = config_from_dict(doc, "x.toml")
    assert config.bank == {"epochs": 30, "lr": 0.2}
    assert config.method_params == {"forget_vector": {"beta": 5.0}}
    path = tmp_path / "back.toml"
    path.write_text(config_to_toml(config))
    assert "[bank]" in path.read_text()
    assert load_config(path).bank == config.bank
    given = _args(config=str(path))
    given.set = ["bank.epochs=10", "bank.batched=true", "salun.lr=0.5"]
    config = config_from_args(given)
    assert config.bank == {"epochs": "10", "lr": 0.2, "batched": "true"}  # strings: the bank's plugin converts
    assert "bank" not in config.method_params and config.method_params["salun"] == {"lr": "0.5"}
    with pytest.raises(ConfigError, match=r"\[bank\] must be a table"):
        config_from_dict({"bank": 3})


def test_an_error_with_newlines_is_still_one_line(monkeypatch, capsys, tmp_path):
    from mubench.commands import run as run_cmd

    def bad(config):
        raise ConfigError("first part\n  second part")

    monkeypatch.setattr("mubench.validate.validate_config", bad)
    monkeypatch.setattr(run_cmd, "config_from_args", lambda args: ExperimentConfig())
    assert _fails(capsys, tmp_path) == "mubench: error: first part second part"


def test_list_resources(capsys):
    resources = pytest.importorskip("mubench.resources")
    assert main(["list", "resources"]) == 0
    out = capsys.readouterr().out
    for e in resources.RESOURCES.entries():
        assert f"\n  {e.name} " in out
