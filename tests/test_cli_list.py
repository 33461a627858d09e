"""The CLI's foundation commands: list, train, fetch, --help, and one-line errors with exit 2."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from test_data import write_cifar10

from mubench import data as data_mod
from mubench.cli import COMMANDS, main
from mubench.errors import UnknownNameError
from mubench.models import MODELS

DATASET_NAMES = ["digits", "fashion-mnist", "cifar10", "cifar100", "svhn", "imagenet10", "imagefolder:PATH"]
AVAILABLE_COMMANDS = [c for c in COMMANDS if importlib.util.find_spec(f"mubench.commands.{c}") is not None]


def _mubench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mubench", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(autouse=True)
def no_system_dirs(monkeypatch, tmp_path):
    monkeypatch.setattr(data_mod, "SYSTEM_DATA_DIRS", (tmp_path / "system",))


def test_list_datasets_subprocess():
    out = _mubench("list", "datasets")
    assert out.returncode == 0, out.stderr
    listed = [line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ")]
    assert sorted(listed) == sorted(DATASET_NAMES)


def test_unknown_dataset_exits_2_with_one_line_subprocess(tmp_path):
    out = _mubench("train", "--dataset", "nope", "--out", str(tmp_path / "results"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("mubench: error: unknown dataset 'nope'")
    for name in ("digits", "fashion-mnist", "cifar10", "cifar100", "svhn", "imagenet10"):
        assert name in lines[0]
    assert "Traceback" not in out.stderr


def test_list_models(capsys):
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == [*MODELS.names(), "vit_*"]
    assert "mubench[timm]" in out


def test_list_scenarios(capsys):
    assert main(["list", "scenarios"]) == 0
    out = capsys.readouterr().out
    for form in ("class:c", "classes:c1,c2", "random:p", "subset:c1,c2"):
        assert form in out


def test_list_rejects_unknown_kind(capsys):
    with pytest.raises(SystemExit) as info:
        main(["list", "widgets"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("command", AVAILABLE_COMMANDS)
def test_help_of_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: mubench {command}")


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in AVAILABLE_COMMANDS:
        assert command in out


def test_missing_data_exits_2_with_the_fetch_hint(tmp_path, capsys):
    empty = tmp_path / "empty"
    assert main(["train", "--dataset", "cifar10", "--data-root", str(empty), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "dataset 'cifar10' not found" in err and str(empty) in err
    assert "python -m mubench fetch cifar10" in err


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(UnknownNameError):
        main(["--debug", "train", "--dataset", "nope", "--out", str(tmp_path)])


@pytest.mark.filterwarnings("ignore:original .* under-fits")
def test_train_then_load_from_the_store(tmp_path, capsys):
    argv = ["train", "--dataset", "digits", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("original digits/small_cnn/seed 0: train accuracy") and "trained in" in first
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert "loaded from the store" in second
    key = first.rsplit("key ", 1)[1]
    assert key == second.rsplit("key ", 1)[1]


def test_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = ["train", "--dataset", "digits", "--epochs", "1", "--out", str(blocker / "r")]
    assert main(argv) == 2
    assert "is not writable" in capsys.readouterr().err


def test_fetch_finds_existing_data_offline(tmp_path, capsys):
    write_cifar10(tmp_path)
    assert main(["fetch", "cifar10", "--data-root", str(tmp_path)]) == 0
    assert "cifar10: 10 train / 4 test images ready" in capsys.readouterr().out
