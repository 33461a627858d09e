"""Execution backends: how many workers, which device each uses, and the parallel map.

The job function (`jobs.run_job`) never knows its backend. Locally, loky processes, each CPU
job with the fixed `threads_per_worker` torch threads (1 by default: two 1-thread workers beat
one 2-thread process on a 2-core machine, and a job's numbers must not depend on how many
others were ready beside it), or one worker per GPU, each pinned to its own device. Loky
workers watch their parent and exit when it dies. `--backend dask` sends the same jobs to a
Dask cluster; the results root must be on a filesystem every worker sees.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import BACKENDS, ExecutionConfig
from .errors import ConfigError, MubenchError

ParallelMap = Callable[[Callable, Iterable], Iterator]


@dataclass(frozen=True)
class WorkerLayout:
    jobs: int  # parallel workers
    threads: int  # torch threads per worker
    gpus: int  # visible GPUs (0 on CPU)


def _wants_cuda(device: str) -> bool:
    return device in ("auto", "cuda") and torch.cuda.is_available()


def worker_layout(execution: ExecutionConfig, ready: int | None = None) -> WorkerLayout:
    """Workers and torch threads for a stage of `ready` jobs (None: as many as there are workers).

    On a CPU every job runs with `threads_per_worker` threads whatever the stage (its numbers
    depend on the count, which is in its key), so the cores are shared by running more
    workers, never by giving a lone job more threads; never more workers than ready jobs. On
    GPUs one worker per GPU, its CPU threads a share of the cores (not in the key: the GPU's
    numbers do not depend on them).
    """
    cores = os.cpu_count() or 1
    gpus = torch.cuda.device_count() if _wants_cuda(execution.device) else 0
    if execution.jobs < 0:
        raise ConfigError(f"--jobs must be >= 0 (0 = automatic); got {execution.jobs}")
    if execution.threads_per_worker < 1:
        raise ConfigError(f"--threads must be >= 1; got {execution.threads_per_worker}")
    threads = execution.threads_per_worker
    automatic = gpus or max(1, cores // threads)
    jobs = 1 if execution.backend == "sequential" else execution.jobs or automatic
    if ready is not None:
        jobs = max(1, min(jobs, ready))
    if gpus:
        threads = max(1, cores // jobs)
    return WorkerLayout(jobs=jobs, threads=threads, gpus=gpus)


_claimed_gpu: list[int] = []  # this worker process's GPU slot (held for the process's life)


def _claim_gpu(count: int) -> int:
    """Give each worker process its own GPU: the first slot whose lock file nobody holds."""
    if _claimed_gpu:
        return _claimed_gpu[0]
    folder = Path(tempfile.gettempdir()) / f"mubench-gpu-slots-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    for slot in range(count):
        handle = open(folder / f"{slot}.lock", "w")  # noqa: SIM115 - kept open to hold the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _claimed_gpu.append(slot)
        _claimed_gpu.append(handle)  # type: ignore[arg-type]  # keep the handle alive
        return slot
    return os.getpid() % count  # more workers than GPUs: share


def configure_worker(device: str, threads: int) -> torch.device:
    """Set this process's torch threads and choose its device (one GPU per worker)."""
    if threads > 0:
        torch.set_num_threads(threads)
    if _wants_cuda(device) and device in ("auto", "cuda"):
        count = torch.cuda.device_count()
        return torch.device(f"cuda:{_claim_gpu(count)}" if count > 1 else "cuda:0")
    if device == "auto":
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r} is not a torch device (auto, cpu, cuda, cuda:N)") from None


def _sequential_map(fn: Callable, items: Iterable) -> Iterator:
    for item in items:
        yield fn(item)


PARENT_POLL_S = 0.5  # how often a loky worker checks that the process that started it lives


def watch_parent(parent: int, poll: float = PARENT_POLL_S) -> threading.Thread:
    """Kill this process as soon as `parent` is no longer its parent (the parent died and the
    process was re-parented), so a killed `mubench run` leaves no worker computing.

    Run in every loky worker (the executor's initializer). A thread polling `os.getppid()`
    rather than `prctl(PR_SET_PDEATHSIG)`: the death signal fires when the *thread* that forked
    the worker exits, and loky forks replacement workers from its manager thread; polling also
    works on macOS. SIGKILL, not an exception: the main thread may be deep in a torch kernel.
    """
    def watch():
        while os.getppid() == parent:
            time.sleep(poll)
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="mubench-parent-watch", daemon=True)
    thread.start()
    return thread


def _loky_initializer(parent: int) -> None:
    """Watch the process that opened the backend; if loky started this worker from another
    process, watch that one, unless `parent` is already gone (then exit at once)."""
    if os.getppid() != parent:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os.kill(os.getpid(), signal.SIGKILL)
        except PermissionError:
            pass
        parent = os.getppid()
    watch_parent(parent)


@contextlib.contextmanager
def backend_context(execution: ExecutionConfig, layout: WorkerLayout, results_root: str):
    """Yield a `parallel_map(fn, items)` that yields results as jobs finish.

    Cheap to open once per stage: a one-worker layout runs in this process, and loky keeps one
    executor for the whole run (resized to `layout.jobs`) because nothing else it is given
    changes between stages; its workers' thread variables are pinned to 1 and each job sets its
    own torch threads (`configure_worker(device, spec.threads)`).
    """
    if execution.backend not in BACKENDS:
        raise ConfigError(f"--backend {execution.backend!r} is not one of {', '.join(BACKENDS)}")
    if execution.backend == "sequential" or (execution.backend == "loky" and layout.jobs == 1):
        yield _sequential_map
        return
    from joblib import Parallel, delayed, parallel_config

    if execution.backend == "loky":
        with parallel_config(backend="loky", n_jobs=layout.jobs, inner_max_num_threads=1,
                             initializer=_loky_initializer, initargs=(os.getpid(),)):
            yield lambda fn, items: Parallel(return_as="generator_unordered")(delayed(fn)(i) for i in items)
        return
    with _dask_client(execution, results_root) as client:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        with parallel_config(backend="dask", n_jobs=n_workers):
            yield lambda fn, items: Parallel(return_as="generator_unordered")(delayed(fn)(i) for i in items)


def _check_reachable(address: str, timeout: float = 2.0) -> None:
    """Fail at once when nothing listens at a tcp://HOST:PORT scheduler address (a refused
    connection), instead of after the Dask client's 10 s of retries; other forms go to Dask."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address)
    if parts.scheme != "tcp" or not parts.hostname or not parts.port:
        return
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
        pass


@contextlib.contextmanager
def _dask_client(execution: ExecutionConfig, results_root: str):
    try:
        from dask.distributed import Client
    except ImportError:
        raise MubenchError("--backend dask needs dask.distributed; install it with: pip install 'mubench[dask]'") from None
    cluster = None
    if execution.slurm:
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise MubenchError("[execution.slurm] needs dask-jobqueue; install it with: pip install 'mubench[dask]'") from None
        cluster = SLURMCluster(**execution.slurm)
        cluster.scale(jobs=execution.jobs or 1)
        address = cluster
    elif execution.scheduler:
        address = execution.scheduler
    else:
        raise ConfigError("--backend dask needs --scheduler tcp://HOST:PORT or an [execution.slurm] table in the config")
    try:
        if isinstance(address, str):
            _check_reachable(address)
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as err:
        raise MubenchError(f"dask scheduler {execution.scheduler or 'of the SLURM cluster'} is unreachable ({err}); "
                           "check the address and that the scheduler is running") from None
    try:
        root = str(Path(results_root).resolve())
        seen = client.run(os.path.isdir, root)
        blind = [w for w, ok in seen.items() if not ok]
        if blind:
            raise MubenchError(f"results directory {root} is not visible to dask worker(s) {', '.join(blind)}; "
                               "it must be on a filesystem every worker shares (use --out on a shared path)")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
