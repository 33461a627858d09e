"""What analyses read: the stored cells of a finished grid, rebuilt from records and artifacts
(never retrained), and a cache of analysis results keyed by what determines them.

A `StoredCell` is one (dataset, model, scenario, seed): its data, split, original model and
every method's stored predictor (Retrain's included). An analysis result is cached as JSON
under DIR/analysis/cache/<analysis>/<key>.json, the key hashing the analysis name, its version,
the predictor keys it read and its settings, so a rerun reads it and a new grid recomputes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import ImageData, LoadOptions, eval_view
from ..errors import MubenchError
from ..predictor import Predictor, predictor_from_state
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
    _predictors: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.model}/{self.scenario}/seed {self.seed}"

    def predictor(self, method: str) -> Predictor:
        """The stored predictor of `method` ("original": the untouched model)."""
        if method == "original":
            return Predictor(self.original)
        if method not in self._predictors:
            rec = self.records[method]
            state = self.store.load_artifact("predictor", rec["unlearn_key"])
            unlearn = self.store.read_record("unlearn", rec["unlearn_key"]) or {}
            if state is None:
                raise MubenchError(f"the predictor of {method} in {self.label} is not in {self.store.root}; "
                                   "rerun the grid (python -m mubench run ...)")
            self._predictors[method] = predictor_from_state(state, self.original, unlearn.get("clamp", False),
                                                            unlearn.get("params_changed_stated"), unlearn.get("info"))
        return self._predictors[method]

    def part(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(un-augmented float images, labels) of 'forget', 'retain' or 'test'."""
        x, y = (self.data.train_x, self.data.train_y) if name in ("forget", "retain") else (self.data.test_x,
                                                                                         self.data.test_y)
        idx = torch.from_numpy(getattr(self.split, name))
        return eval_view(self.data, x[idx]), y[idx]


def data_options(root: Path, dataset: str) -> tuple[str, LoadOptions]:
    """(registry name, load options) of a record's dataset name, with the run's data root."""
    m = re.fullmatch(r"(.+)\[(\d+)\]", dataset)
    name, subset = (m.group(1), int(m.group(2))) if m else (dataset, 0)
    config = root / "config.json"
    data_root = json.loads(config.read_text()).get("data_root") or None if config.is_file() else None
    return name, LoadOptions(data_root=data_root, train_subset=subset)


def _grid_variants(root: Path, df) -> list[bool]:
    """Which rows are the grid's own runs: each method's variant under the overrides of the
    run's config.json (plain method names without one); sweep points are left out."""
    from ..config import method_overrides
    from ..method_jobs import display_name

    config = None
    if (root / "config.json").is_file():
        from .sensitivity import grid_config

        config = grid_config(root)
    out = []
    for _, row in df.iterrows():
        user = method_overrides(config, row["method"], row["scenario"]) if config is not None else {}
        out.append(row["variant"] == display_name(row["method"], user))
    return out


def load_cells(root: str | Path) -> list[StoredCell]:
    """Every cell of the grid under `root` whose Retrain finished ok."""
    from ..models import build_model, spec_for
    from ..pipeline import cached_dataset, get_split
    from ..report.records import current_ok, load_records

    store = Store(root)
    df = current_ok(load_records(root))
    df = df[_grid_variants(store.root, df)]
    cells = []
    for (dataset, model, scenario, seed), rows in df.groupby(["dataset", "model", "scenario", "seed"], sort=True):
        if "retrain" not in set(rows["method"]):
            continue
        records = {r["method"]: store.read_record("method", r["key"]) for _, r in rows.iterrows()}
        original_key = records["retrain"]["original_key"]
        data = cached_dataset(*data_options(store.root, dataset))
        split = get_split(None, data, scenario, int(seed))
        if split.hash != records["retrain"]["split_hash"]:
            raise MubenchError(f"the split of {dataset}/{scenario}/seed {seed} rebuilt here differs from the "
                               "stored one (another data version?); rerun the grid")
        state = store.load_artifact("original", original_key)
        original = build_model(model, spec_for(data))
        original.load_state_dict(state)
        cells.append(StoredCell(dataset, model, scenario, int(seed), data, split, original.eval(), original_key,
                                records, store))
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
