"""Run a plan: its jobs level by level (a level's jobs depend only on earlier levels), through
joblib (loky processes locally, Dask on a cluster) or in this process, one record per job.

Workers write their own artifacts and records (atomically, record last), so a killed run
loses at most the jobs in flight and a rerun skips every key that is done. A job that raises
is recorded as failed with its traceback and never cached; jobs downstream of it are recorded
as failed with the same reason (unless it is one of their `optional()` dependencies: an
Evaluate then records its metrics without the attack it fed), and the rest of the grid goes on. Splits are index arithmetic
and run in this process; everything else goes to the workers.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

import torch

from .config import ExperimentConfig
from .device import compute_signature, resolve_device, threads_phrase
from .errors import MubenchError
from .jobs import Job, RunContext, Split, iso
from .method_jobs import Evaluate, Unlearn, display_name
from .planner import Plan, build_plan, describe_plan, merge_plans, recipe_for, resolve_params
from .store import Store

__all__ = ["Plan", "RunResult", "WorkerSettings", "build_plan", "describe_plan", "display_name", "execute",
           "merge_plans", "recipe_for", "resolve_params", "run_job", "settings_line"]


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs its jobs: plain data, sent with every job (never part of a key)."""

    root: str
    device: str = "auto"
    threads: int = 0
    n_jobs: int = 1
    progress: bool | None = False
    plugins: tuple[str, ...] = ()


def run_job(job: Job, settings: WorkerSettings) -> dict:
    """Run one job in this process and return its record (also written to the store).

    Ordinary exceptions become a failed record with a traceback log; KeyboardInterrupt passes."""
    from .plugins import load_plugins
    from .workers import configure_worker

    store = Store(settings.root)
    started = time.time()
    try:
        device = configure_worker(settings.device, settings.threads)
        check_compute(job, device)
        load_plugins(settings.plugins)  # plugins register in every worker process
        return job.run(RunContext(store, device, settings.n_jobs, settings.progress))
    except Exception as err:  # one bad cell must not stop the grid
        log = store.write_log(job.key, f"{job.label}\n\n{traceback.format_exc()}")
        error = f"{type(err).__name__}: {err}".splitlines()[0]
        return _failed(store, job, error, str(log.relative_to(store.root)), started)


def check_compute(job: Job, device) -> None:
    """Refuse to compute a job on another device class or CPU thread count than its key says
    (a Dask worker with a GPU the planner did not see, say): the cache would mix them."""
    expected = job.computes_with()
    actual = compute_signature(device, torch.get_num_threads())
    if expected is not None and expected != actual:
        raise MubenchError(f"{job.label} is keyed for {_words(expected)} but this worker computes with "
                           f"{_words(actual)}; run with --device and --threads matching the planner's")


def _words(compute: dict) -> str:
    threads = compute.get("threads")
    return compute["device"] + (f" with {threads_phrase(threads)}" if threads else "")


def _failed(store: Store, job: Job, error: str, traceback_file: str | None, started: float) -> dict:
    """A failed record for `job`; Evaluate's goes where reports look (records/method)."""
    identity = job.identity() if isinstance(job, Evaluate) else {"key": job.key, "kind": job.kind}
    record = {**identity, "status": "failed", "error": error, "started": iso(started), "finished": iso(time.time())}
    if traceback_file:
        record["traceback_file"] = traceback_file
    if isinstance(job, (Evaluate, Unlearn)):
        store.write_record(job.kind, job.key, record)
    return record


@dataclass
class RunResult:
    records: list[dict]  # the Evaluate records of the plan (ok ones)
    failed: list[dict]
    ran: int
    cached: int
    seconds: float


def execute(plan: Plan, config: ExperimentConfig, progress: bool | None = None) -> RunResult:
    """Run the pending jobs of each level in order with the configured backend."""
    from .workers import backend_context, worker_layout

    start = time.time()
    store = Store(config.out)
    failed: list[dict] = []
    broken: dict[str, tuple[str, str | None]] = {}  # failed job's key → (error, traceback file)
    ran = 0
    for level in plan.levels():
        pending = []
        for job in level:
            if job.key in plan.cached:
                continue
            optional = {d.key for d in job.optional()}
            cause = next((broken[d.key] for d in job.deps() if d.key in broken and d.key not in optional), None)
            if cause is not None:
                broken[job.key] = cause
                error = cause[0] if cause[0].startswith("upstream") else f"upstream job failed: {cause[0]}"
                record = _failed(store, job, error, cause[1], time.time())
                if isinstance(job, Evaluate):
                    failed.append(record)
                continue
            pending.append(job)
        inline = [j for j in pending if isinstance(j, Split) and j.scorer is None]  # index arithmetic
        for job in inline:
            job.load(store)
        ran += len(inline)
        pending = [j for j in pending if j not in inline]  # a hardness split reads its model: a worker's job
        if not pending:
            continue
        layout = worker_layout(config.execution, ready=len(pending))  # a lone ready job gets every core
        settings = WorkerSettings(root=str(store.root), device=config.execution.device, threads=layout.threads,
                                  n_jobs=layout.jobs, progress=(progress if layout.jobs == 1 else False),
                                  plugins=tuple(config.plugins))
        ran += _run_level(backend_context, layout, config, pending, settings, progress, broken, failed)
    records = [r for r in (store.read_record("method", j.key) for j in plan.evaluations())
               if r is not None and r.get("status") == "ok"]
    return RunResult(records, failed, ran, len(plan.cached), time.time() - start)


def _run_level(backend_context, layout, config, pending, settings, progress, broken, failed) -> int:
    from functools import partial

    from tqdm.auto import tqdm

    kinds = sorted({type(j).__name__ for j in pending})
    bar = tqdm(total=len(pending), desc=" + ".join(kinds), unit="job",
               disable=(None if progress is None else not progress))
    ran = 0
    by_key = {j.key: j for j in pending}
    with backend_context(config.execution, layout, config.out) as parallel_map:
        for record in parallel_map(partial(run_job, settings=settings), pending):
            ran += 1
            bar.update(1)
            if record.get("status") == "failed":
                broken[record["key"]] = (record.get("error", "failed"), record.get("traceback_file"))
                job = by_key.get(record["key"])
                if isinstance(job, Evaluate):
                    failed.append(record)
                bar.write(f"failed: {job.label if job else record['key']}: {record.get('error')}")
    bar.close()
    return ran


def settings_line(config: ExperimentConfig) -> str:
    """What the numbers of this run are computed with: the device (and a CPU job's torch
    threads, which its numbers depend on), each dataset's training precision ('auto' resolved:
    a preset's fixed choice, else bf16 on GPUs and AMX CPUs, else fp32), evaluation being fp32."""
    from .presets import preset_for, run_precision

    device = resolve_device(config.execution.device)
    threads = config.execution.threads_per_worker
    where = f"device {device}" + (f" ({threads_phrase(threads)} per job)" if device.type == "cpu" else "")
    precisions = []
    for dataset in config.datasets:
        precision = run_precision(config.precision, dataset, device)
        if config.precision != "auto":
            how = "as asked"
        elif preset_for(dataset).precision != "auto":
            how = f"auto: fixed by the {dataset} preset"
        else:
            how = f"auto on this {device.type}"
        precisions.append(f"{precision} ({how})" + (f" for {dataset}" if len(config.datasets) > 1 else ""))
    return f"{where}, training precision {', '.join(precisions)}, evaluation fp32"


def job_counts(plan: Plan) -> dict[str, int]:
    """{job type: number of jobs} (tests count what a rerun trains)."""
    out: dict[str, int] = {}
    for job in plan.jobs:
        out[type(job).__name__] = out.get(type(job).__name__, 0) + 1
    return out
