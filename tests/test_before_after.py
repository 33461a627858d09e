"""benchmarks/before_after.py, the table of issue 13's before/after runs: one row per cell and
version from the newest record, mean ± std over seeds (a root re-evaluated with other settings
holds a cell twice; counting both shrank the std and doubled the seeds)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "before_after.py"


def _module():
    spec = importlib.util.spec_from_file_location("before_after", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(root: Path, key: str, seed: int, gap: float, finished: str, method: str = "forget_vector") -> None:
    folder = root / "records" / "method"
    folder.mkdir(parents=True, exist_ok=True)
    record = {"status": "ok", "scenario": "class:0", "method": method, "seed": seed, "finished": finished,
              "ua": 99.0, "ra": 95.0, "ta": 94.0, "mia_efficacy": 100.0, "avg_gap": gap}
    (folder / f"{key}.json").write_text(json.dumps(record))


def test_the_newest_record_of_a_cell_counts_and_a_changed_duplicate_is_reported(tmp_path, capsys):
    ba = _module()
    before, after = tmp_path / "before", tmp_path / "after"
    _write(before, "b0", 0, 2.0, "2026-01-01T00:00:00")
    _write(before, "b1", 1, 4.0, "2026-01-01T00:00:00")
    _write(after, "a0", 0, 1.0, "2026-01-01T00:00:00")
    _write(after, "a1", 1, 3.0, "2026-01-01T00:00:00")
    _write(after, "a1new", 1, 5.0, "2026-01-02T00:00:00")  # the same cell, re-evaluated later
    frame = pd.DataFrame(ba.method_rows(before, "before") + ba.method_rows(after, "after"))
    assert "holds ('class:0', 'forget_vector', 1) twice" in capsys.readouterr().err
    lines = ba.table(frame, ["forget_vector"]).splitlines()
    assert lines[2].startswith("| class:0 forget_vector before | 0,1 |") and lines[2].endswith("| 3.00 ± 1.41 |")
    assert lines[3].startswith("| class:0 forget_vector after | 0,1 |") and lines[3].endswith("| 3.00 ± 2.83 |")
    assert len(lines) == 4
