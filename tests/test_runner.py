"""The runner end to end, through the real CLI in subprocesses: caching, kill -9 + resume,
loky vs Dask, failing jobs, and one-line errors for bad input. Grids are tiny (digits, one
seed, a 3-epoch recipe) so each run takes seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _cli import run_cli

# One torch thread in every run (the default, said here because the tests compare records
# across runs and two of them run side by side). The SVC attack only: digits' default screen
# trains 4 reference models per run (a third of each run's time), and nothing here reads them;
# its rows and null band are checked in test_calibration, test_attack_plugin and
# test_reference_mia.
GRID = ["--datasets", "digits", "--scenarios", "class:0", "--seeds", "0",
        "--methods", "retrain,finetune,grad_ascent", "--set", "recipe.epochs=3", "--set", "evaluation.attacks=svc",
        "--quiet", "--threads", "1"]
# The runs compared with the reference leave FT (the grid's longest job) out: a job's key does not
# depend on the other methods of its grid, so their records are a subset of the reference's.
SMALL_GRID = [a if a != "retrain,finetune,grad_ascent" else "retrain,grad_ascent" for a in GRID]
METRICS = ("ua", "ra", "ta", "mia_efficacy", "avg_gap")
DIGITS_AUTO = "fp32"  # the digits preset fixes what --precision auto means on every device


def mubench(*args, check=True, timeout=600, **kw):
    proc = subprocess.run([sys.executable, "-m", "mubench", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"mubench {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def method_records(root: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (root / "records" / "method").glob("*.json")}


def numbers(records: dict[str, dict]) -> dict:
    return {k: tuple(round(r[m], 6) for m in METRICS) for k, r in records.items() if r["status"] == "ok"}


def numbers_of_small_grid(reference: dict[str, dict]) -> dict:
    """The reference run's numbers of the records SMALL_GRID makes (all but FT's)."""
    return numbers({k: r for k, r in reference.items() if r["method"] != "finetune"})


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted sequential run of GRID, and its timing."""
    root = tmp_path_factory.mktemp("reference")
    start = time.perf_counter()
    proc = mubench("run", *GRID, "--backend", "sequential", "--out", str(root))
    return root, proc, time.perf_counter() - start


def test_run_writes_records_and_prints_the_summary(reference_run):
    root, proc, _ = reference_run
    records = method_records(root)
    assert {r["method"] for r in records.values()} == {"retrain", "finetune", "grad_ascent", "original", "retrain_seed"}
    assert all(r["status"] == "ok" for r in records.values())
    retrain = next(r for r in records.values() if r["method"] == "retrain")
    assert retrain["ua"] == 100.0 and retrain["avg_gap"] == 0.0
    assert "| Retrain |" in proc.stdout and "| FT |" in proc.stdout and "| GA |" in proc.stdout
    # the calibration rows and Retrain's attack numbers (the independent Retrain's)
    assert "| Original (no unlearning) |" in proc.stdout and "| Retrain (independent seed) |" in proc.stdout
    assert "calibration: no unlearning" in proc.stdout
    # original, split, 3 Unlearn and 3 Evaluate + the calibration rows' Unlearn and Evaluate (4)
    assert "12 jobs run, 0 cached, 0 failed" in proc.stdout
    assert len(list((root / "runs").glob("*.json"))) == 1  # this run stamped itself (mubench/runs.py)
    # What the numbers were trained with, resolved, in the first line and in every record.
    assert proc.stdout.splitlines()[0] == ("device cpu (1 torch thread per job), training precision "
                                           "fp32 (auto: fixed by the digits preset), evaluation fp32")
    assert {r["precision"] for r in records.values()} == {DIGITS_AUTO}
    assert {r["torch_threads"] for r in records.values()} == {1}


def test_second_run_is_all_cached_and_fast(reference_run):
    root, _, first_seconds = reference_run
    start = time.perf_counter()
    proc = mubench("run", *GRID, "--backend", "sequential", "--out", str(root))
    assert "0 jobs run, 12 cached" in proc.stdout
    assert time.perf_counter() - start < first_seconds
    dry = run_cli("run", *GRID, "--out", str(root), "--dry-run", "--precision", "fp32")
    assert dry.stdout.startswith("device cpu (1 torch thread per job), training precision fp32 (as asked), evaluation fp32\n")
    assert "total: 0 jobs to run" in dry.stdout  # keys hold the resolved precision: auto is fp32 here
    bf16 = run_cli("run", *GRID, "--out", str(root), "--dry-run", "--precision", "bf16")
    assert "total: 11 jobs to run" in bf16.stdout  # all but the split


def test_changed_hyper_parameter_reruns_only_that_method(reference_run, tmp_path):
    root, _, _ = reference_run
    dry = mubench("run", *GRID, "--out", str(root), "--dry-run", "--set", "finetune.lr=0.02")
    assert "Unlearn: 5 jobs, 4 cached, 1 to run" in dry.stdout  # with the 2 calibration rows
    assert "Evaluate: 5 jobs, 4 cached, 1 to run" in dry.stdout
    to_run = dry.stdout.split("settings (resolved")[0]  # the settings lines name every method
    assert "finetune digits" in to_run and "grad_ascent digits" not in to_run


def test_kill_9_then_resume_gives_the_same_records(reference_run, tmp_path):
    reference, _, _ = reference_run
    root = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "mubench", "run", *GRID, "--backend", "sequential",
                             "--out", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not method_records(root) and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-way: retrain is done, the methods are not
    proc.wait()
    assert 0 < len(method_records(root)) < 3
    mubench("run", *GRID, "--backend", "sequential", "--out", str(root))
    assert numbers(method_records(root)) == numbers(method_records(reference))
    for path in root.rglob("*.json"):
        json.loads(path.read_text())  # no corrupt record
    for path in (root / "artifacts").rglob("*.pt"):
        torch.load(path, weights_only=True)  # no corrupt artifact


def test_every_backend_and_layout_gives_the_same_records_and_a_thread_count_its_own_keys(reference_run, tmp_path):
    """The numbers a job produces do not depend on the backend or the layout: loky with its
    default layout (two workers, and a stage with one ready job run in this process, which
    before got both cores and other bits under the same key) and Dask give the sequential
    one-thread run's records, key for key. A thread count the user asks for is another
    computation: other keys, so it never mixes into a cache."""
    distributed = pytest.importorskip("distributed")
    reference = method_records(reference_run[0])
    default_threads = [a for a in SMALL_GRID if a not in ("--threads", "1")]
    assert len(default_threads) == len(GRID) - 2 and len(reference) == 5  # Retrain, FT, GA, 2 calibration rows
    expected = numbers_of_small_grid(reference)
    assert len(expected) == 4  # Retrain, GA and the calibration rows
    loky_root, dask_root = tmp_path / "loky", tmp_path / "dask"
    mubench("run", *default_threads, "--backend", "loky", "--out", str(loky_root))
    assert method_records(loky_root).keys() == expected.keys()
    assert numbers(method_records(loky_root)) == expected
    assert {r["machine"]["threads"] for r in method_records(loky_root).values()} == {1}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        mubench("run", *default_threads, "--backend", "dask", "--scheduler", cluster.scheduler_address,
                "--out", str(dask_root))
    assert numbers(method_records(dask_root)) == expected
    two = run_cli("run", *default_threads, "--threads", "2", "--out", str(loky_root), "--dry-run")
    assert "total: 9 jobs to run" in two.stdout  # only the split (index arithmetic) is shared


FAILING_PLUGIN = '''
from dataclasses import dataclass
from mubench.unlearning import Method, register_method

@register_method("always_fails")
class AlwaysFails(Method):
    """A method whose unlearn raises (to test that one failure does not stop the run)."""
    @dataclass(frozen=True)
    class Params:
        pass
    def unlearn(self, task):
        raise RuntimeError("boom on purpose")
'''


def test_a_failing_method_does_not_stop_the_others(tmp_path, isolated_registries, capsys):
    """Through the CLI in this process (the plugin's registration is undone after the test); the
    screen's reference models are off, since nothing here reads them."""
    from mubench.cli import main

    plugin = tmp_path / "fails.py"
    plugin.write_text(FAILING_PLUGIN)
    root = tmp_path / "out"
    args = ["run", "--datasets", "digits", "--scenarios", "class:0", "--seeds", "0",
            "--methods", "retrain,always_fails,finetune", "--set", "recipe.epochs=3", "--set", "evaluation.attacks=svc",
            "--backend", "sequential", "--plugin", str(plugin), "--out", str(root)]
    assert main([*args, "--quiet"]) == 1
    assert "1 failed" in capsys.readouterr().out
    records = method_records(root)
    status = {r["method"]: r["status"] for r in records.values()}
    assert status == {"retrain": "ok", "finetune": "ok", "always_fails": "failed", "original": "ok", "retrain_seed": "ok"}
    failed = next(r for r in records.values() if r["status"] == "failed")
    assert "boom on purpose" in failed["error"]
    assert "boom on purpose" in (root / failed["traceback_file"]).read_text()
    # the failure is not cached: a rerun tries it again (and only it)
    assert main([*args, "--dry-run"]) == 0
    assert "total: 2 jobs to run" in capsys.readouterr().out  # its Unlearn and Evaluate


@pytest.mark.parametrize("args, words", [
    (["--methods", "sal_un"], ["unknown method 'sal_un'", "did you mean 'salun'"]),
    (["--datasets", "cifar11"], ["unknown dataset 'cifar11'", "cifar10"]),
    (["--models", "resnet19"], ["unknown model 'resnet19'"]),
    (["--scenarios", "class:x"], ["malformed scenario 'class:x'"]),
    (["--scenarios", "class:12"], ["out of range"]),
    (["--set", "finetune.lrr=0.1"], ["finetune", "'lrr'", "valid:"]),
    (["--set", "finetune.lr=fast"], ["finetune", "'lr'"]),
    (["--backend", "dask", "--scheduler", "tcp://127.0.0.1:9"], ["unreachable"]),
])
def test_bad_input_exits_2_with_one_line(args, words, tmp_path):
    """In this process (`run_cli`: an uncaught exception would fail the test, as a traceback
    would); test_unwritable_output_dir_is_one_line checks the same through a real process."""
    proc = run_cli("run", *args, "--out", str(tmp_path / "r"), "--seeds", "0", "--quiet")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mubench: error:"), proc.stderr
    for w in words:
        assert w in lines[0]


def test_unwritable_output_dir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = mubench("run", "--out", str(blocker / "sub"), "--quiet", check=False)
    assert proc.returncode == 2
    assert "not writable" in proc.stderr and "--out" in proc.stderr


def test_two_runs_on_one_results_root_at_once(reference_run, tmp_path):
    """Two processes finishing the same jobs: atomic renames of identical records, no temp files
    left, no corrupt or duplicate record, and the numbers of an undisturbed run.

    Each run gets one torch thread, as two runs sharing a 2-core machine should: two 2-thread
    processes there oversubscribe the cores and ran many times slower than one (README, "Two runs
    on one machine"), past this test's timeout in CI."""
    root = tmp_path / "shared"
    cmd = [sys.executable, "-m", "mubench", "run", *SMALL_GRID, "--backend", "sequential", "--out", str(root)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    records = method_records(root)
    assert len(records) == 4 and all(k == r["key"] for k, r in records.items())
    # The same thread count as the reference run: bf16 training on a CPU moves with the thread
    # count (the reduction order changes), and records say which count ran.
    assert {r["torch_threads"] for r in records.values()} == {1}
    originals = [json.loads(p.read_text()) for p in (root / "records" / "original").glob("*.json")]
    assert originals and {r["torch_threads"] for r in originals} == {1}
    assert numbers(records) == numbers_of_small_grid(method_records(reference_run[0]))
    assert not [p for p in root.rglob("*.tmp")]


@pytest.mark.parametrize("flags, threads", [([], None), (["--threads", "1"], 1), (["--jobs", "1", "--threads", "3"], 3)])
def test_threads_flag_sets_the_torch_threads_of_each_worker(tmp_path, flags, threads):
    from mubench.cli import build_parser
    from mubench.commands.run import config_from_args
    from mubench.workers import worker_layout

    args = build_parser().parse_args(["run", "--out", str(tmp_path), *flags])
    layout = worker_layout(config_from_args(args).execution, ready=1)
    assert layout.threads == (threads or 1)  # fixed, whatever is ready: the count is in the keys


@pytest.mark.parametrize("flags, expected", [(["--precision", "fp32"], "fp32"), (["--precision", "bf16"], "bf16"),
                                             (["--precision", "bf16", "--set", "recipe.precision=fp32"], "fp32"),
                                             (["--precision", "auto"], "resolved")])
def test_run_precision_reaches_originals_and_retrain(tmp_path, flags, expected):
    """--precision is the whole run's: originals and Retrain train with it unless [recipe] sets its own."""
    from mubench.cli import build_parser
    from mubench.commands.run import config_from_args
    from mubench.runner import build_plan
    from mubench.store import Store

    args = build_parser().parse_args(["run", "--datasets", "digits", "--scenarios", "class:0", "--seeds", "0",
                                      "--methods", "retrain", "--out", str(tmp_path), *flags])
    plan = build_plan(config_from_args(args), Store(tmp_path))
    originals = [job for job in plan.jobs if type(job).__name__ == "Original"]
    retrains = [job for job in plan.jobs if type(job).__name__ == "Unlearn" and job.method == "retrain"]
    if expected == "resolved":  # recorded as what 'auto' means here, so both spellings share one original
        expected = DIGITS_AUTO
    assert len(originals) == len(retrains) == 1
    assert {job.recipe["precision"] for job in originals} | {job.precision for job in retrains} == {expected}
