"""Content-addressed artifacts (checkpoints, splits, vectors) and one JSON record per job.

Layout under a results root:

    artifacts/<kind>/<key>.pt      torch.save'd state (loaded with weights_only=True)
    records/<kind>/<key>.json      one flat JSON record per finished job
    logs/<key>.txt                 tracebacks of failed jobs

Every write goes to a temp file in the same folder and is renamed into place (atomic on POSIX),
so a killed run never leaves a half-written file under a final name, and two workers finishing
the same job just replace one complete file with an identical one. Artifacts are written before
the record: a record's presence means the job is complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .errors import MubenchError


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def stable_hash(obj: Any, length: int = 20) -> str:
    """sha256 of canonical JSON (sorted keys) of `obj`: the key of an artifact or job."""
    blob = json.dumps(_jsonable(obj), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are 0600 whatever the umask, so a shared results folder would
    # hold artifacts and records that only their writer can read.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    data = json.dumps(obj, indent=1, sort_keys=True, default=str).encode()
    _atomic_write(path, lambda f: f.write(data))


class Store:
    """Artifacts and records under one results root (shared by every worker of a run)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def check_writable(self) -> None:
        """Fail early, in one sentence, if the results root cannot be written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-probe-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as err:
            raise MubenchError(
                f"results directory {str(self.root)!r} is not writable ({err.strerror or err}); "
                "choose another with --out DIR"
            ) from None

    # -- artifacts ---------------------------------------------------------------------------
    def artifact_path(self, kind: str, key: str) -> Path:
        return self.root / "artifacts" / kind / f"{key}.pt"

    def save_artifact(self, kind: str, key: str, obj: Any) -> Path:
        path = self.artifact_path(kind, key)
        _atomic_write(path, lambda f: torch.save(obj, f))
        return path

    def load_artifact(self, kind: str, key: str, map_location: str | torch.device = "cpu") -> Any | None:
        """The stored object, or None if absent. A corrupt file is reported in one line,
        moved aside (`*.corrupt`) and treated as absent so the caller recomputes it."""
        path = self.artifact_path(kind, key)
        if not path.is_file():
            return None
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # truncated zip, bad pickle, wrong magic…: all mean "recompute"
            reason = (str(err).strip().splitlines() or [""])[0][:200]  # torch's messages run to pages
            warnings.warn(f"artifact {path} is corrupt ({type(err).__name__}: {reason}); recomputing it",
                          stacklevel=2)
            with contextlib.suppress(OSError):
                os.replace(path, path.with_suffix(".pt.corrupt"))
            return None

    def has_artifact(self, kind: str, key: str) -> bool:
        return self.artifact_path(kind, key).is_file()

    # -- records -----------------------------------------------------------------------------
    def record_path(self, kind: str, key: str) -> Path:
        return self.root / "records" / kind / f"{key}.json"

    def write_record(self, kind: str, key: str, record: dict) -> Path:
        path = self.record_path(kind, key)
        write_json_atomic(path, record)
        return path

    def read_record(self, kind: str, key: str) -> dict | None:
        path = self.record_path(kind, key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
            warnings.warn(f"record {path} is unreadable ({err}); the job will run again", stacklevel=2)
            return None

    def iter_records(self, kind: str | None = None) -> Iterator[dict]:
        base = self.root / "records"
        pattern = f"{kind}/*.json" if kind else "*/*.json"
        for path in sorted(base.glob(pattern)):
            try:
                yield json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                warnings.warn(f"skipping unreadable record {path}", stacklevel=2)

    def log_path(self, key: str) -> Path:
        return self.root / "logs" / f"{key}.txt"

    def write_log(self, key: str, text: str) -> Path:
        path = self.log_path(key)
        _atomic_write(path, lambda f: f.write(text.encode()))
        return path
