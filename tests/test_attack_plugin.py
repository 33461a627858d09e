"""Adding an attack is one file: the example plugin (examples/attack_example.py) needs one model
per cell, runs in loky workers, is cached, shows its column and null band in the report, and
added to a finished run it retrains nothing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mubench.attacks import CellModel
from mubench.config import EvaluationConfig, ExecutionConfig, ExperimentConfig
from mubench.runner import build_plan, execute
from mubench.store import Store

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "attack_example.py")


def _config(out, **evaluation) -> ExperimentConfig:
    return ExperimentConfig(datasets=("digits",), scenarios=("class:0", "random:10"), seeds=(0,),
                            methods=("retrain", "finetune"), calibration=(), out=str(out), precision="fp32", train_subset=400,
                            recipe={"epochs": 8}, method_params={"finetune": {"epochs": 1}}, plugins=(EXAMPLE,),
                            evaluation=EvaluationConfig(**evaluation),
                            execution=ExecutionConfig(backend="loky", jobs=2, threads_per_worker=1))


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """A finished run with the SVC alone, then the same run with the plugin's attack added."""
    out = tmp_path_factory.mktemp("conf_gap")
    plain = _config(out, attacks=("svc",))
    assert not execute(build_plan(plain, Store(out)), plain, progress=False).failed
    config = _config(out, attacks={"conf_gap": {"seed": 7000}})
    plan = build_plan(config, Store(out))
    pending = plan.pending()
    result = execute(plan, config, progress=False)
    assert not result.failed, result.failed
    return out, config, plan, pending, result


def test_adding_the_attack_trains_only_its_models_and_evaluates(attacked):
    _, _, _, pending, _ = attacked
    # one model per cell (two cells), then every Evaluate again: Retrain's too, whose key lists the attacks
    assert Counter(type(job).__name__ for job in pending) == {"CellModel": 2, "Evaluate": 4}
    assert all(job.owner == "conf_gap" and job.part == "retain" for job in pending if isinstance(job, CellModel))


def test_the_attack_is_cached_and_its_model_shared_by_the_cell(attacked):
    out, config, plan, _, _ = attacked
    again = build_plan(config, Store(out))
    assert again.pending() == []
    evaluations = [e for e in plan.evaluations() if e.reference is not None]
    models = {e.scenario: e.models_of("conf_gap") for e in evaluations}
    assert all(len(m) == 1 for m in models.values()) and models["class:0"] != models["random:10"]


def test_records_carry_the_attack_and_its_null_band(attacked):
    _, _, _, _, result = attacked
    ft = [r for r in result.records if r["method"] == "finetune"]
    assert len(ft) == 2
    for r in ft:
        assert 0 <= r["conf_gap_auc"] <= 100
        assert 0 <= r["conf_gap_null_lo"] <= r["conf_gap_null_hi"] <= 100
    retrain = [r for r in result.records if r["method"] == "retrain"]
    assert retrain and not any("conf_gap_auc" in r for r in retrain)  # Retrain is the reference, not audited


def test_the_report_shows_its_column_and_null_band(attacked, tmp_path):
    out = attacked[0]
    cmd = [sys.executable, "-m", "mubench", "report", "--results", str(out), "--out", str(tmp_path),
           "--format", "md", "--plugin", EXAMPLE]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    report = (tmp_path / "report.md").read_text()
    # the summary table's column, its two-sided ideal in the header, and its band in the null-band row
    assert "Conf-gap AUC (ideal: inside null band)" in report and "| null band |" in report
    assert "Conf-gap null low" in report and "Conf-gap null high" in report  # the side-by-side's band


def test_an_attack_whose_plugin_is_not_loaded_is_one_sentence(tmp_path):
    from mubench.errors import ConfigError

    config = dataclasses.replace(_config(tmp_path, attacks={"conf_gapp": {}}), plugins=())
    with pytest.raises(ConfigError, match="unknown attack 'conf_gapp'"):
        build_plan(config, Store(tmp_path))
