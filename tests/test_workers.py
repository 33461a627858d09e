"""Worker layout (a fixed thread count per CPU job, workers capped by the ready jobs), loky executor reuse, and workers that die
with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mubench import workers
from mubench.config import ExecutionConfig
from mubench.errors import ConfigError
from mubench.workers import backend_context, worker_layout

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cores(monkeypatch):
    """Pretend the machine has `n` cores and no GPU."""
    def set_cores(n: int) -> int:
        monkeypatch.setattr(workers.os, "cpu_count", lambda: n)
        monkeypatch.setattr(workers.torch.cuda, "is_available", lambda: False)
        return n
    return set_cores


def test_a_lone_ready_job_keeps_the_fixed_thread_count(cores):
    """A job's numbers depend on its thread count, so a stage with one ready job does not give
    it more threads than a stage with many (the old layout did: 2 threads alone, 1 beside others)."""
    cores(2)
    alone = worker_layout(ExecutionConfig(), ready=1)
    beside = worker_layout(ExecutionConfig(), ready=10)
    assert (alone.jobs, alone.threads) == (1, 1)
    assert (beside.jobs, beside.threads) == (2, 1)


def test_ready_jobs_cap_the_workers_and_threads_divide_the_cores(cores):
    cores(16)
    assert worker_layout(ExecutionConfig(), ready=3) == workers.WorkerLayout(jobs=3, threads=1, gpus=0)
    assert worker_layout(ExecutionConfig(), ready=40) == workers.WorkerLayout(jobs=16, threads=1, gpus=0)
    assert worker_layout(ExecutionConfig(threads_per_worker=4), ready=40) == workers.WorkerLayout(4, 4, 0)
    assert worker_layout(ExecutionConfig(threads_per_worker=4), ready=1) == workers.WorkerLayout(1, 4, 0)
    assert worker_layout(ExecutionConfig(jobs=4), ready=2) == workers.WorkerLayout(jobs=2, threads=1, gpus=0)


def test_without_ready_the_layout_is_the_requested_one(cores):
    cores(2)
    assert (worker_layout(ExecutionConfig()).jobs, worker_layout(ExecutionConfig()).threads) == (2, 1)
    assert worker_layout(ExecutionConfig(jobs=1)).threads == 1
    assert worker_layout(ExecutionConfig(threads_per_worker=2)).jobs == 1


def test_zero_ready_and_bad_thread_counts(cores):
    cores(8)
    assert worker_layout(ExecutionConfig(), ready=0).jobs == 1
    with pytest.raises(ConfigError, match="--threads must be >= 1"):
        worker_layout(ExecutionConfig(threads_per_worker=0))


def test_sequential_runs_one_job_with_the_fixed_threads(cores):
    cores(4)
    layout = worker_layout(ExecutionConfig(backend="sequential", threads_per_worker=2), ready=4)
    assert (layout.jobs, layout.threads) == (1, 2)


def test_gpu_workers_share_the_cores_for_their_cpu_side(monkeypatch):
    """On GPUs the CPU thread count is not in the key, so the cores are shared as before."""
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(workers.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(workers.torch.cuda, "device_count", lambda: 2)
    assert worker_layout(ExecutionConfig(), ready=10) == workers.WorkerLayout(jobs=2, threads=8, gpus=2)


def _pid(_item) -> int:
    return os.getpid()


def test_loky_executor_is_reused_across_stages(cores):
    """Opening the backend once per stage must not respawn the workers (each spawn imports
    torch again), even when the stages' layouts differ in workers and threads."""
    from joblib.externals.loky import reusable_executor

    cores(4)
    execution = ExecutionConfig()
    executors, processes = [], []
    for ready in (2, 3, 2):  # 2 workers, then 3, then 2
        layout = worker_layout(execution, ready=ready)
        with backend_context(execution, layout, ".") as parallel_map:
            assert os.getpid() not in set(parallel_map(_pid, range(2 * ready)))
        executors.append(reusable_executor._executor)
        processes.append(set(reusable_executor._executor._processes))
    assert executors[0] is executors[1] is executors[2]
    assert processes[0] <= processes[1] and len(processes[1]) == 3


def _proc_children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`, read from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie computes nothing; in a container nobody may reap it


def _is_loky_worker(pid: int) -> bool:
    """A loky worker process (not loky's resource tracker, which exits on its own)."""
    try:
        return b"popen_loky_posix" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _in_a_job(pid: int) -> bool:
    """The worker runs a job: it has loaded scikit-learn, which only a job imports (digits)."""
    try:
        return "/sklearn/" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_killed_run_leaves_no_worker_computing(tmp_path):
    """SIGKILL `mubench run --jobs 2` while two originals train: its loky workers must exit."""
    cmd = [sys.executable, "-m", "mubench", "run", "--methods", "finetune", "--scenarios", "class:0",
           "--seeds", "0,1", "--jobs", "2", "--out", str(tmp_path / "out"), "--quiet",
           "--set", "recipe.epochs=400"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    found: list[int] = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline and parent.poll() is None:
            found = [p for p in _proc_children(parent.pid) if _is_loky_worker(p)]
            if len(found) >= 2 and all(_in_a_job(p) for p in found):
                break
            time.sleep(0.2)
        assert len(found) >= 2, f"no two loky workers appeared (rc {parent.poll()}): {parent.stderr.read()[-2000:]}"
        assert all(os.getpgid(p) == os.getpgid(parent.pid) for p in found)  # killpg reaches them too
        time.sleep(2.0)  # past loading the data: they are training now
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 30  # < 1 s on an idle machine; imports finish slowly under load
        while time.time() < deadline and any(_alive(p) for p in found):
            time.sleep(0.2)
        left = [p for p in found if _alive(p)]
        assert not left, f"loky workers {left} still run after their parent was killed"
    finally:
        if parent.poll() is None:
            parent.kill()
        for p in _proc_children(parent.pid) + [p for p in found if _alive(p)]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
