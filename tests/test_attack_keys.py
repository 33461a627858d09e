"""Attacks became plugins without changing a key: the plans of four configurations, as written
today (`[evaluation.attacks.NAME]` tables, `--set evaluation.attacks.NAME.FIELD`), have exactly
the job keys that mubench 1333eb9 gave them with its flat [evaluation] fields (the table in
tests/data/plan_keys_1333eb9.json was written by that version). A record made before the move
is therefore still found by every rerun.

This table is a pin, not a spec: a change that means to re-key jobs (a method's version, a
tuned file) updates it on purpose and says so in its commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mubench.config import ExperimentConfig, parse_set_options, with_set_options
from mubench.planner import build_plan
from mubench.store import Store

PINNED = json.loads((Path(__file__).parent / "data" / "plan_keys_1333eb9.json").read_text())["configs"]
SMALL = {"seeds": (0, 1), "methods": ("retrain", "finetune", "forget_vector", "fv_arithmetic", "ssd")}
# `--methods all` of 1333eb9, named: a plugin another test registered must not join the grid
BUILTIN = ("retrain", "finetune", "grad_ascent", "random_label", "l1_sparse", "salun", "scrub", "ssd",
           "forget_vector", "fv_arithmetic")


@pytest.mark.parametrize("name", sorted(PINNED))
def test_every_job_key_of_todays_configs_is_the_one_before_attacks_were_plugins(name, tmp_path):
    pinned = PINNED[name]
    config = ExperimentConfig(methods=BUILTIN) if name == "default" else ExperimentConfig(**SMALL)
    config = with_set_options(config, parse_set_options(pinned["sets"]))
    plan = build_plan(config, Store(tmp_path))
    keys = sorted([type(j).__name__, j.key] for j in plan.jobs)
    assert len(keys) == len(pinned["keys"])
    assert keys == pinned["keys"]
