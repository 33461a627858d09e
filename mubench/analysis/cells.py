"""What analyses read: the stored cells of a finished grid, loaded through the jobs of the
plans its runs made (never retrained), and a cache of analysis results keyed by what
determines them.

A `StoredCell` is one (dataset, model, scenario, seed): its data, split, original model and
every method's stored predictor (Retrain's included), each loaded by its own job (`Original.load`,
`Split.load`, `Unlearn.load_predictor`), planned again from the configs the root's runs wrote
(mubench/runs.py). So the analyses read exactly the artifacts the records name, whichever run came
last, and sweep points (not in any run config) are not mistaken for the grid's rows. An analysis
result is cached as JSON under DIR/analysis/cache/<analysis>/<key>.json, the key hashing the
analysis name, its version, the predictor keys it read and its settings, so a rerun reads it
and a new grid recomputes it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import ExperimentConfig
from ..data import ImageData, eval_view
from ..errors import MubenchError
from ..jobs import RunContext
from ..method_jobs import Evaluate, Unlearn
from ..planner import build_plan
from ..predictor import Predictor
from ..runs import run_configs
from ..scenarios import Split
from ..store import Store, stable_hash, write_json_atomic


@dataclass
class StoredCell:
    """One cell of a finished grid: data, split, original model and stored predictors."""

    dataset: str  # as records name it (a `[n]` suffix for a training subset)
    model: str
    scenario: str
    seed: int
    data: ImageData
    split: Split
    original: torch.nn.Module
    original_key: str
    records: dict[str, dict]  # method → its Evaluate record
    store: Store
    unlearns: dict[str, Unlearn] = field(default_factory=dict)  # method → the job that stored its predictor
    config: ExperimentConfig | None = None  # the run that planned this cell
    _predictors: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.model}/{self.scenario}/seed {self.seed}"

    def predictor(self, method: str) -> Predictor:
        """The stored predictor of `method` ("original": the untouched model)."""
        if method == "original":
            return Predictor(self.original)
        if method not in self._predictors:
            self._predictors[method] = self.unlearns[method].load_predictor(self.store, self.original)[0]
        return self._predictors[method]

    def part(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(un-augmented float images, labels) of 'forget', 'retain' or 'test'."""
        x, y = (self.data.train_x, self.data.train_y) if name in ("forget", "retain") else (self.data.test_x,
                                                                                         self.data.test_y)
        idx = torch.from_numpy(getattr(self.split, name))
        return eval_view(self.data, x[idx]), y[idx]


def _finished(store: Store, config: ExperimentConfig) -> dict[tuple, dict[str, tuple[Evaluate, dict]]]:
    """(dataset, model, scenario, seed) → method → (Evaluate job, its ok record), for one run's plan."""
    out: dict[tuple, dict] = {}
    absent: set[str] = set()
    for ev in build_plan(config, store).evaluations():
        record = store.read_record("method", ev.key)
        if record is not None and record.get("status") == "ok":
            out.setdefault((ev.dataset, ev.model, ev.scenario, ev.seed), {})[ev.method] = (ev, record)
        else:
            absent.add(ev.method)
    if absent:  # a method re-keyed since the run (new version or parameters) must not vanish silently
        print(f"note: no finished record under today's keys for {', '.join(sorted(absent))} in {store.root} "
              "(failed, not run, or re-keyed by a newer mubench): analyses leave them out; rerun the grid "
              "to include them", file=sys.stderr)
    return out


def load_cells(root: str | Path) -> list[StoredCell]:
    """Every cell of the grids run into `root` whose Retrain finished ok."""
    store = Store(root)
    configs = run_configs(store.root)
    if not configs:
        raise MubenchError(f"no run config under {str(store.root / 'runs')!r}: analyses re-plan the grids that "
                           f"`python -m mubench run --out {store.root}` wrote there; run the grid first")
    found: dict[tuple, tuple[ExperimentConfig, dict]] = {}
    for config in configs:
        for cell, rows in _finished(store, config).items():
            found.setdefault(cell, (config, {}))[1].update(rows)
    ctx = RunContext(store, torch.device("cpu"))
    cells = []
    for (_, model, scenario, seed), (config, rows) in sorted(found.items()):
        if "retrain" not in rows:
            continue
        unlearn = rows["retrain"][0].unlearn
        if not unlearn.original.done(store):
            raise MubenchError(f"the original of {unlearn.label} is not in {store.root}; rerun the grid")
        original = unlearn.original.load(ctx)
        records = {method: record for method, (_, record) in rows.items()}
        cells.append(StoredCell(records["retrain"]["dataset"], model, scenario, seed, unlearn.original.ref.load(),
                                unlearn.split.load(store), original.model.eval(), original.key, records, store,
                                {method: ev.unlearn for method, (ev, _) in rows.items()}, config))
    if not cells:
        raise MubenchError(f"no finished cell (with Retrain) under {store.root}; run the grid first")
    return cells


def cached(root: str | Path, analysis: str, version: str, inputs: dict, compute: Callable[[], dict]) -> dict:
    """`compute()`'s JSON result, read from the analysis cache when `inputs` were seen before."""
    key = stable_hash({"analysis": analysis, "v": version, **inputs})
    path = Path(root) / "analysis" / "cache" / analysis / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    write_json_atomic(path, result)
    return result


def accuracy(predictor: Predictor, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor | None = None) -> float:
    """Top-1 accuracy in % of `predictor` (with `delta` in place of its own δ, if given)."""
    if len(y) == 0:
        return float("nan")
    p = predictor if delta is None else predictor.with_delta(delta)
    logits = p.logits(x, torch.device("cpu"))
    return 100.0 * float((logits.argmax(1) == y).double().mean())
