"""Original (no unlearning): the trained original model, unchanged — a calibration row.

Every table shows it beside Retrain so a reader sees what doing nothing scores: a method whose
numbers sit near this row has not forgotten, and a metric or attack that reads the same here as
for Retrain cannot tell forgetting from not forgetting in that cell (the report's calibration
check, SPEC §5's sanity check). It runs through the same Evaluate path and every attack as any
method (its shadow runs are the shadow originals themselves), costs no training, and is never
selected by `--methods` or tuned: the planner adds it to every cell (`calibration_methods`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mubench.predictor import Predictor
from mubench.unlearning import Method, UnlearnTask, register_method


@dataclass(frozen=True)
class OriginalParams:
    """Nothing to set: the row is the original model itself."""


@register_method("original")
class NoUnlearning(Method):
    """The original model, unchanged (calibration: what doing nothing scores)."""

    Params = OriginalParams
    label, color, rank = "Original (no unlearning)", "#b3b3b3", 2
    calibration = True

    def unlearn(self, task: UnlearnTask) -> Predictor:
        return Predictor(task.original, info={"calibration": "no unlearning"})  # evaluation counts 0 changed
