"""Live candidates in `mubench tune` (issue 25, "fair search spaces in practice"): the rule on
hand-made metrics, and a small real search on digits whose tune.md prints the count, whose
tune.json and settings file mark each candidate and agree with the rule, and whose count the
report's tuned note prints."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from _cli import run_cli

from mubench.report.notes import tuning_notes
from mubench.tuned import read_tuned
from mubench.tuning import (
    LIVE_MIN_UA_DISTANCE,
    LIVE_RA_DROP,
    Candidate,
    Cell,
    Outcome,
    live_candidate,
)

NAN = (math.nan, math.nan)


def m(ua: float, ra: float) -> dict:
    """A group's stats as tuning._cell_stats gives them: metric → (mean, std)."""
    return {"ua": (ua, 0.0), "ra": (ra, 0.0)}


ORIGINAL, RETRAIN = m(0.5, 99.8), m(100.0, 99.7)  # class-wise: the original remembers D_f, Retrain never saw it


def test_a_candidate_that_does_nothing_is_not_live():
    assert live_candidate(ORIGINAL, ORIGINAL, RETRAIN) is False
    assert live_candidate(m(10.0, 99.8), ORIGINAL, RETRAIN) is False  # moved, but not past the midpoint


def test_a_candidate_that_forgets_by_collapsing_ra_is_not_live():
    assert live_candidate(m(100.0, 30.0), ORIGINAL, RETRAIN) is False
    assert live_candidate(m(100.0, 99.8 - LIVE_RA_DROP - 0.1), ORIGINAL, RETRAIN) is False


def test_a_candidate_that_forgets_and_keeps_ra_is_live():
    assert live_candidate(m(97.0, 98.5), ORIGINAL, RETRAIN) is True
    assert live_candidate(m(50.25, 99.8 - LIVE_RA_DROP), ORIGINAL, RETRAIN) is True  # both edges count


def test_over_forgetting_is_not_live_and_an_undecidable_cell_is_na():
    original, retrain = m(0.0, 100.0), m(10.0, 99.0)  # random forgetting: Retrain's UA is its test error
    assert live_candidate(m(8.0, 99.0), original, retrain) is True
    assert live_candidate(m(40.0, 95.0), original, retrain) is False  # forgets far more than Retrain
    near = m(10.0 - LIVE_MIN_UA_DISTANCE / 2, 100.0)  # the original already reads as Retrain on UA
    assert live_candidate(m(10.0, 99.0), near, retrain) is None
    assert live_candidate(m(10.0, 99.0), {"ua": NAN, "ra": NAN}, retrain) is None  # no original: cannot tell
    assert live_candidate({"ua": NAN, "ra": NAN}, original, retrain) is False  # no finished run: not live
    cell = Cell("digits", "small_cnn", "random", "finetune", [Candidate({"lr": 0.1}), Candidate({"lr": 0.2})])
    assert Outcome(cell, [], {}, None, live=[True, False]).live_count == 1
    assert Outcome(cell, [], {}, None, live=[None, None]).live_count is None


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """Grad ascent on digits class:0, one tuning seed, 3-epoch originals: lr 0.2 destroys RA, and
    the count is made of real records (about 10 s here)."""
    root = tmp_path_factory.mktemp("live")
    proc = run_cli("tune", "--datasets", "digits", "--scenarios", "class:0", "--seeds", "100",
                   "--methods", "grad_ascent", "--grid", "grad_ascent.lr=0.001,0.003,0.2",
                   "--set", "grad_ascent.epochs=5", "--set", "recipe.epochs=3",
                   "--backend", "sequential", "--quiet", "--out", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root / "tune", proc


def test_tune_outputs_count_the_live_candidates(search):
    tune, proc = search
    (cell,) = json.loads((tune / "tune.json").read_text())["cells"]
    marked = [c["live"] for c in cell["candidates"]]
    assert all(isinstance(v, bool) for v in marked) and cell["live_count"] == sum(marked)
    assert marked[-1] is False  # lr 0.2 forgets by destroying the model
    line = f"live candidates: {cell['live_count']} of 3"
    assert line in (tune / "tune.md").read_text() and line in proc.stdout
    assert "| Original (no unlearning) |" in proc.stdout
    # the flags are the rule applied to the cell's own numbers (the original is an ordinary record)
    (key,) = cell["original_keys"].values()
    record = json.loads((tune / "records" / "method" / f"{key}.json").read_text())
    assert record["method"] == "original" and record["dataset"] == "digits{val0.1}"
    def stats(row):
        return {k: (row[k]["mean"], row[k]["std"]) for k in ("ua", "ra")}

    assert marked == [live_candidate(stats(c), stats(cell["original"]), stats(cell["retrain"]))
                      for c in cell["candidates"]]
    # the settings file carries the flag per candidate, and the report's tuned note the count
    (path,) = tune.glob("tuned-*.toml")
    assert [c["live"] for c in read_tuned(path).candidates] == marked
    ok = pd.DataFrame([{"dataset": "digits", "model": "small_cnn", "scenario": "class:0", "method": "grad_ascent",
                        "variant": "grad_ascent", "tuned_file": str(path), "tuning_protocol": "heldout", "ua": 99.0}])
    (note,) = [n for n in tuning_notes(ok) if n.startswith("tuned (heldout)")]
    assert note.endswith(f"live candidates in its search (they change UA and keep RA): GA class {sum(marked)} of 3")

