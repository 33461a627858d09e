"""Each run stamps itself: the resolved config of every `mubench run` (and paper pass) under
`<root>/runs/<date>-<hash>.json`, never overwritten (benchopt's `save_results(uniquify=True)`).

Two runs into one root are the resume workflow, and a root may hold several grids (a paper's
passes, a second scenario list). Analyses plan every config of a root again (`run_configs`)
and load what they read through those plans' jobs, so none of them depends on which run came
last. Roots written before this file existed keep their one `<root>/config.json`, which is
read as their only run.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from .config import (
    MOVED_EVALUATION_FIELDS,
    EvaluationConfig,
    ExecutionConfig,
    ExperimentConfig,
    TuneConfig,
)
from .store import stable_hash, write_json_atomic

RUNS = "runs"
LEGACY_CONFIG = "config.json"  # the one file of roots written before runs/
TUPLES = ("datasets", "models", "scenarios", "seeds", "methods", "calibration", "plugins")


def write_run(root: str | Path, config: ExperimentConfig, command: str = "run") -> Path:
    """Write this run's resolved config beside its results; returns the new file."""
    data = config.to_dict()
    digest = stable_hash(data, length=8)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / RUNS / f"{stamp}-{digest}.json"
    n = 1
    while path.exists():  # the same config twice in one second: still two runs
        path = path.with_name(f"{stamp}-{digest}-{n}.json")
        n += 1
    write_json_atomic(path, {"command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                             "config_hash": digest, "config": data})
    return path


def config_from_dict(d: dict, root: str | Path) -> ExperimentConfig:
    """The `ExperimentConfig.to_dict()` form back to a config whose results stay in `root`."""
    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    d = {k: v for k, v in d.items() if k in fields}
    d.update({k: tuple(d[k]) for k in TUPLES if k in d})
    d["evaluation"] = _evaluation(d.get("evaluation", {}))
    d["execution"] = ExecutionConfig(**d.get("execution", {}))
    tune = d.get("tune", {})
    d["tune"] = TuneConfig(**{**tune, "seeds": tuple(tune.get("seeds", TuneConfig().seeds)),
                              "scenarios": tuple(tune.get("scenarios", ()))})
    return ExperimentConfig(**{**d, "out": str(root)})


def _evaluation(d: dict) -> EvaluationConfig:
    """[evaluation] as written, the flat attack fields of older runs moved into attack tables
    (`attacks = None` then meant the dataset preset's attacks)."""
    d = dict(d)
    attacks = d.pop("attacks", None)
    tables = {} if attacks is None else {name: {} for name in attacks} if isinstance(attacks, list) else dict(attacks)
    for flat, moved in MOVED_EVALUATION_FIELDS.items():
        if flat in d:
            value = d.pop(flat)
            attack, _, setting = moved[len("attacks."):].partition(".")
            if attack in tables:
                tables[attack][setting] = value
    return EvaluationConfig(attacks=tables, **d)


def run_configs(root: str | Path) -> list[ExperimentConfig]:
    """The distinct configs run into `root`, oldest first (a legacy config.json alone else)."""
    root = Path(root)
    files = sorted((root / RUNS).glob("*.json"))
    docs = [json.loads(p.read_text())["config"] for p in files]
    if not docs and (root / LEGACY_CONFIG).is_file():
        docs = [json.loads((root / LEGACY_CONFIG).read_text())]
    seen, out = set(), []
    for doc in docs:
        digest = stable_hash({**doc, "out": None})  # a root that was moved holds the same runs
        if digest not in seen:
            seen.add(digest)
            out.append(config_from_dict(doc, root))
    return out
