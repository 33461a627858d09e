"""Devices and precision: which device a run uses, whether it trains in bf16, how evaluation
stays exact fp32, and the inference batch size. Split off the training loop so the Predictor
(the API's floor) and the loop both import it at module level (../shared/HOUSE-REVIEW.md §3).
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import torch

from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` runs bf16 natively. CUDA: compute capability 8.0 (Ampere) or newer;
    torch's default check also counts pre-Ampere GPUs that only emulate bf16 (slowly)."""
    if device.type == "cuda":
        if torch.cuda.get_device_capability(device) < (8, 0):
            return False
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch before 2.3 has no emulation flag and answers for native bf16
            return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU exposes AMX tiles, which oneDNN uses for bf16 convolutions and matmuls.

    Asked of torch (its cpuinfo also checks that the OS enabled the tile state), not of
    /proc/cpuinfo: a guest can list the flag without the kernel granting the registers.
    """
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' → bf16 where the hardware runs it fast, else fp32.

    GPUs: bf16 only where supported natively (compute capability ≥ 8.0; never emulated). CPUs: bf16 only with AMX. On a 2-core guest with AMX
    (BENCHMARKS.md §1) bf16 autocast trains small_cnn 1.8x, ResNet-20 1.7x and ResNet-18 2.6x
    faster than fp32 channels-last, runs the default grid 2.07x faster, and keeps the digits
    originals' test accuracy; without AMX, oneDNN's avx512_bf16 kernels are slower than fp32 for
    every model (ResNet-20 0.85-0.98x, ResNet-18 0.7x), so there it stays fp32. Evaluation
    always runs in fp32 (predictor.py), whatever the training precision.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if bf16_supported(device) else "fp32"
    if device.type == "cpu":
        return "bf16" if bf16_supported(device) and cpu_has_amx_bf16() else "fp32"
    return "fp32"


def compute_signature(device: torch.device, threads: int) -> dict:
    """What a job's numbers depend on besides its inputs, as its key holds it: the device class
    and, on a CPU, the intra-op thread count (CPU kernels split their reductions by thread, so
    one and two threads give different bits, and a chaotic method different tables; measured
    in docs/reproducibility.md). A CUDA job's numbers do not depend on the CPU threads."""
    if device.type == "cpu":
        return {"device": "cpu", "threads": int(threads)}
    return {"device": device.type}


@functools.cache
def _cpuinfo(field: str) -> str | None:
    """The value of the first `field` line of /proc/cpuinfo (None where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name (what `lscpu` prints), or the platform's word for it."""
    import platform

    return _cpuinfo("model name") or platform.processor() or platform.machine()


@functools.cache
def cpu_flags() -> dict:
    """The ISA features that change which CPU kernels run (and so the last bits of a result)."""
    flags = set((_cpuinfo("flags") or "").split())
    return {"amx": cpu_has_amx_bf16(), "avx512_bf16": "avx512_bf16" in flags,
            "avx512f": "avx512f" in flags, "avx2": "avx2" in flags}


def threads_phrase(threads: int) -> str:
    """`1 torch thread`, `2 torch threads`: how reports and messages name a thread count."""
    return f"{threads} torch thread{'s' if threads != 1 else ''}"


def machine(device: torch.device, threads: int | None = None) -> dict:
    """Provenance of a result: the device class and name, the CPU and its ISA flags, and the
    torch threads (this process's unless given). Records and tuned files carry it, so a reader
    can tell two tables' machines apart."""
    out = {"device": device.type, "cpu": cpu_name(), **cpu_flags(),
           "threads": torch.get_num_threads() if threads is None else threads}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def autocast(device: torch.device, precision: str):
    """The autocast context of a resolved precision (a no-op for fp32).

    Models keep their input path (normalisation and first layer) in fp32 inside it
    (`models.Classifier`), so an input perturbation is learned and applied unrounded.
    """
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# cuBLAS is deterministic only with a fixed workspace, chosen when its handle is created (the
# first CUDA matmul of the process), so the default is set on import, before any CUDA work.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def exact_fp32(device: torch.device | str):
    """Evaluation math (SPEC §5): on CUDA, fp32 matmuls and convolutions without TF32 and
    deterministic kernels where torch has them (others warn instead of failing); elsewhere a
    no-op. The global flags are restored on exit, so training keeps TF32 where it is on."""
    if torch.device(device).type != "cuda":
        yield
        return
    cuda, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (cuda.allow_tf32, cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cuda.allow_tf32, cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = False, False, True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        cuda.allow_tf32, cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = saved[:4]
        torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])


# Images per inference batch. On a CPU small batches win: an activation working set that stays
# in cache runs 1.5-2x faster than batch 2048 (small CNN 28 px: 4100 vs 2070 images/s; ResNet-20
# 32 px: 810 vs 366; one core, benchmarks/evaluation.py). GPUs want large batches.
EVAL_BATCH = {"cpu": 128}
EVAL_BATCH_DEFAULT = 2048


def eval_batch_size(device: torch.device | str) -> int:
    """The inference batch size for a device kind (see EVAL_BATCH)."""
    return EVAL_BATCH.get(torch.device(device).type, EVAL_BATCH_DEFAULT)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
