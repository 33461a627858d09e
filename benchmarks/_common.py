"""Shared helpers of the benchmark scripts: the machine, repeated timings, the results file.

Every script compares two (or more) ways inside one process, interleaving the ways repeat by
repeat, and reports medians: on a shared machine the load changes from minute to minute, so
only ratios measured side by side mean anything. Each comparison appends one JSON line to
benchmarks/results.jsonl with the machine, the torch version, the device, the figures and a
`speedup` field.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.jsonl"
sys.path.insert(0, str(HERE.parent))  # run as `python benchmarks/<name>.py` from a checkout


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    # One thread by default: mubench's CPU workers run one thread each, and on a machine shared
    # with other processes a two-thread OpenMP process can run 3-6x slower than one thread
    # (its threads spin waiting for each other), which would measure the neighbours, not us.
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as mubench's CPU workers)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per way; medians are reported")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--no-save", action="store_true", help="print only; do not append to results.jsonl")
    return p


def setup(args) -> torch.device:
    torch.set_num_threads(args.threads)
    from mubench.device import resolve_device

    return resolve_device(args.device)


def machine(device: torch.device, threads: int) -> dict:
    """What the figures were measured on: mubench's own provenance (`device.machine`: CPU, ISA
    flags, threads, GPU) plus the cores, platform, versions and load of this measurement."""
    from mubench.device import machine as provenance
    from mubench.device import resolve_precision

    info = {**provenance(device, threads), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "device": str(device),
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if device.type == "cpu":  # AMX decides the default precision, and CPUs of one name differ in it
        info["auto_precision"] = resolve_precision("auto", device)
    return info


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    from mubench.device import synchronize

    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved(ways: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                warmup: bool = True) -> dict[str, float]:
    """Median seconds of each way, the ways run in turn within each repeat (same load for all)."""
    if warmup:
        for fn in ways.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, fn in ways.items():
            times[name].append(time_call(fn, device))
    return {name: statistics.median(t) for name, t in times.items()}


def record(bench: str, args, device: torch.device, figures: dict, speedup: float | None, **extra) -> dict:
    """Append one comparison to results.jsonl (unless --no-save) and return it."""
    row = {"bench": bench, "date": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra, "figures": figures,
           "speedup": None if speedup is None else round(speedup, 3),
           "repeats": args.repeats, "machine": machine(device, args.threads)}
    if not args.no_save:
        with RESULTS.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
    return row


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table (what BENCHMARKS.md shows)."""
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) and abs(v) < 100 else (f"{v:.0f}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def run_mubench(run_args: list[str], root: Path) -> tuple[float, dict]:
    """Wall seconds of `python -m mubench run RUN_ARGS --out ROOT --quiet` from start to exit,
    and how many method records it wrote (failed ones counted apart); stops if the run fails."""
    cmd = [sys.executable, "-m", "mubench", "run", *run_args, "--out", str(root), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=HERE.parent, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    methods = [json.loads(p.read_text()) for p in (root / "records" / "method").glob("*.json")]
    return seconds, {"records": len(methods), "failed": sum(r.get("status") == "failed" for r in methods)}
