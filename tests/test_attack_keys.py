"""Attacks became plugins without changing a key: the plans of four configurations, as written
today (`[evaluation.attacks.NAME]` tables, `--set evaluation.attacks.NAME.FIELD`), have exactly
the job keys that mubench 1333eb9 gave them with its flat [evaluation] fields (the table in
tests/data/plan_keys_1333eb9.json was written by that version). A record made before the move
is therefore still found by every rerun.

Issue 24 added jobs without re-keying any: the calibration rows (`calibration = ()` leaves them
out) and U-LiRA's null band (`null_models = 0` leaves it out); the second test checks that turning
them on adds their own jobs and re-keys nothing else but U-LiRA's Evaluates.

Issue 28 keyed the device class and CPU thread count (`Original.compute`), which re-keys every
job but the splits. The table predates that field, so these tests leave it out of the hash
(`without_compute`): every other field hashes as before, so the new field is the only change
(tests/test_key_generation.py checks that it is keyed).

Issues 27 and 25 re-keyed on purpose: the forget vector's new learning knobs (optimizer, augment,
frozen_precision) re-key forget_vector, fv_arithmetic and the fv_bank, and SSD's version 3 (its
I_D order by scenario kind) re-keys ssd. The table was re-pinned then, after checking that every
job whose key moved was one of those (its `made_by` says so); every other job keeps 1333eb9's key.
It was re-pinned once more when the forget-vector learners moved to the CPU schedule and the
digits settings were re-tuned (issue 27): only forget_vector, fv_arithmetic, the fv_bank and the
tuned methods' Unlearn and Evaluate jobs moved; originals, splits and Retrains kept their keys.
Issue 25 re-pinned it again (pilot-sized spaces, augmentation and SCRUB's batch sizes searched, the
digits file re-tuned on class:sample:5): again only the tuned methods' Unlearn and Evaluate jobs
and the fv_bank (which now learns with augmentation, the paper's default) moved.

This table is a pin, not a spec: a change that means to re-key jobs (a method's version, a
tuned file) updates it on purpose and says so in its commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mubench.config import ExperimentConfig, parse_set_options, with_set_options
from mubench.jobs import Original
from mubench.planner import build_plan
from mubench.store import Store

PINNED = json.loads((Path(__file__).parent / "data" / "plan_keys_1333eb9.json").read_text())["configs"]
SMALL = {"seeds": (0, 1), "methods": ("retrain", "finetune", "forget_vector", "fv_arithmetic", "ssd")}
# `--methods all` of 1333eb9, named: a plugin another test registered must not join the grid
BUILTIN = ("retrain", "finetune", "grad_ascent", "random_label", "l1_sparse", "salun", "scrub", "ssd",
           "forget_vector", "fv_arithmetic")


@pytest.fixture(autouse=True)
def without_compute(monkeypatch):
    """Hash keys as before issue 28 added `Original.compute` (the pinned table's keys)."""
    monkeypatch.setattr(Original, "IGNORE", (*Original.IGNORE, "compute"))


@pytest.mark.parametrize("name", sorted(PINNED))
def test_every_job_key_of_todays_configs_is_the_one_before_attacks_were_plugins(name, tmp_path):
    pinned = PINNED[name]
    plan = build_plan(_config(name, calibration=(), null_band=False), Store(tmp_path))
    keys = sorted([type(j).__name__, j.key] for j in plan.jobs)
    assert len(keys) == len(pinned["keys"])
    assert keys == pinned["keys"]


def _config(name: str, calibration=("original", "retrain_seed"), null_band: bool = True) -> ExperimentConfig:
    base = {"methods": BUILTIN} if name == "default" else SMALL
    sets = PINNED[name]["sets"]
    if not null_band and any("ulira" in s for s in sets):
        sets = [*sets, "evaluation.attacks.ulira.null_models=0"]
    # precision bf16: what `auto` resolved to on the Xeon with AMX that wrote the table (a key holds
    # the resolved precision; on a CPU without AMX `auto` is fp32 and every key differs, issue 28)
    return with_set_options(ExperimentConfig(**base, calibration=calibration, precision="bf16"), parse_set_options(sets))


@pytest.mark.parametrize("name", sorted(PINNED))
def test_calibration_rows_and_the_ulira_null_band_add_jobs_and_rekey_nothing_else(name, tmp_path):
    pinned = {tuple(k) for k in PINNED[name]["keys"]}
    plan = build_plan(_config(name), Store(tmp_path))
    new = [j for j in plan.jobs if (type(j).__name__, j.key) not in pinned]
    ulira = any("ulira" in s for s in PINNED[name]["sets"])
    for job in new:
        calibration = getattr(job, "method", None) in ("original", "retrain_seed")
        null_model = type(job).__name__ == "ReferenceOriginal" and ulira
        rekeyed = type(job).__name__ == "Evaluate" and ulira
        assert calibration or null_model or rekeyed, job.label
    assert {j.method for j in new if hasattr(j, "method")} >= {"original", "retrain_seed"}
    kept = {(type(j).__name__, j.key) for j in plan.jobs} & pinned
    if not ulira:  # nothing of the pinned plan was re-keyed
        assert kept == pinned
