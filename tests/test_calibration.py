"""Calibration rows, null bands and flags (issue 24) on hand-made records: every number below is
written by the test, so each flag and each non-discriminating mark is checked against a case
computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mubench.attacks import lira_stats as ls
from mubench.report.calibration import (
    calibration_check,
    calibration_flags,
    non_discriminating,
    null_bands,
)
from mubench.report.html import render_html
from mubench.report.records import records_frame, tidy
from mubench.report.tables import NULL_BAND_ROW, summary_table

CELL = ("digits", "small_cnn", "class:0")


def _record(method: str, seed: int, ua: float, ra: float = 99.0, ta: float = 98.0, mia: float = 100.0,
            **extra) -> dict:
    return {"key": f"{method}-{seed}", "dataset": CELL[0], "model": CELL[1], "scenario": CELL[2],
            "seed": seed, "method": method, "display_name": method, "status": "ok",
            "finished": "2026-12-07T00:00:00", "ua": ua, "ra": ra, "ta": ta, "mia_efficacy": mia,
            "rte_s": 1.0, "params_changed": 10, **extra}


def _cell(**method_extra) -> pd.DataFrame:
    """Two seeds of Retrain, its independent-seed twin, the Original, and methods given as
    name → (ua, extra fields) per seed."""
    records = []
    for s in (0, 1):
        records += [_record("retrain", s, 100.0, refmia_null_lo=40.0 + s, refmia_null_hi=70.0 + s),
                    _record("retrain_seed", s, 100.0, ta=98.2, refmia_auc=55.0),
                    _record("original", s, 0.0, ra=99.5, mia=0.0, params_changed=0, refmia_auc=100.0)]
        for method, (ua, extra) in method_extra.items():
            records.append(_record(method, s, ua, **(extra[s] if isinstance(extra, list) else extra)))
    return records_frame(records)


def test_the_original_row_appears_with_its_metrics_in_the_summary_and_html_tables():
    df = _cell(finetune=(90.0, {}))
    table = summary_table(df)
    original = table.loc[(*CELL, "Original (no unlearning)")]
    assert original["UA"] == "0.00 ± 0.00" and original["MIA-Efficacy"] == "0.00 ± 0.00"
    assert original["Avg. Gap"] == "50.12 ± 0.00"  # (|0 − 100| + |99.5 − 99| + 0 + |0 − 100|) / 4 per seed
    assert "calibration: no unlearning" in original["flags"]
    methods = list(table.loc[CELL].index)
    assert methods[:3] == ["Retrain", "Retrain (independent seed)", "Original (no unlearning)"]
    assert methods[-1] == NULL_BAND_ROW and table.loc[(*CELL, NULL_BAND_ROW)].iloc[-3] == "[40.0, 71.0]"
    html = render_html(table, [], [], [], "")
    assert "<td>Original (no unlearning)</td>" in html and "<td>Retrain (independent seed)</td>" in html


def test_null_band_spans_the_records_null_fields_and_the_independent_retrain():
    df = _cell()
    assert null_bands(df)[CELL]["refmia_auc"] == (40.0, 71.0)
    twin_high = records_frame([_record("retrain_seed", 0, 100.0, refmia_auc=80.0),
                               _record("retrain", 0, 100.0, refmia_null_lo=40.0, refmia_null_hi=70.0)])
    assert null_bands(twin_high)[CELL]["refmia_auc"] == (40.0, 80.0)  # widened to the twin's 80


def test_an_extrapolating_mia_is_flagged_with_its_seed_count():
    df = _cell(finetune=(95.0, [{"mia_extrapolates": True}, {"mia_extrapolates": False}]))
    flags = calibration_flags(df)[(*CELL, "finetune")]
    assert "MIA-Efficacy extrapolates (1/2 seeds)" in flags
    table = summary_table(df)
    assert "Avg. Gap w/o MIA" in table.columns  # shown because a row's MIA term is flagged
    clean = summary_table(_cell(finetune=(95.0, {"mia_extrapolates": False})))
    assert "Avg. Gap w/o MIA" not in clean.columns


def test_a_saturated_ulira_cell_is_flagged_degenerate():
    phis = np.full((4, 30), ls.PHI_MAX)  # every shadow saturates on every forget example
    g = ls.fit_gaussians(phis, ls.balanced_assignment(30, 4, seed=0), "tied")
    assert ls.unseparated_share(g) == 100.0 and ls.saturated_share(phis) == 100.0
    # ... and its AUC reads the ideal 50 whatever the target does: the artifact the flag names
    assert ls.auc(ls.lira_scores(g, np.full(30, ls.PHI_MAX)), ls.lira_scores(g, np.zeros(30))) == 50.0
    df = _cell(forget_vector=(99.0, {"ulira_auc": 50.0, "ulira_unseparated": 100.0}),
               finetune=(99.0, {"ulira_auc": 70.0, "ulira_unseparated": 3.0}))
    flags = calibration_flags(df)
    assert any("U-LiRA degenerate" in f for f in flags[(*CELL, "forget_vector")])
    assert not any("degenerate" in f for f in flags[(*CELL, "finetune")])


def test_an_auc_below_the_null_band_is_flagged_as_identifiable_not_success():
    df = _cell(scrub=(100.0, {"refmia_auc": 0.5}), salun=(100.0, {"refmia_auc": 60.0}),
               finetune=(50.0, {"refmia_auc": 99.0}))
    flags = calibration_flags(df)
    assert "Ref-MIA AUC below null band (identifiable: over-forgetting)" in flags[(*CELL, "scrub")]
    assert "Ref-MIA AUC above null band (identifiable)" in flags[(*CELL, "finetune")]
    assert not any("null band" in f for f in flags[(*CELL, "salun")])  # 60 inside [40, 71]
    assert "inside null band" in summary_table(df).columns[-3]  # the header states the two-sided ideal


def test_no_op_methods_are_flagged():
    same = {"ra": 99.5, "mia": 0.0}
    df = _cell(ssd=(0.0, {"params_changed": 0}),
               fv_arithmetic=(12.0, {"info": {"delta_norm": 1e-6}}),
               lazy=(0.0, {**same, "params_changed": 5}),
               finetune=(90.0, {}))
    flags = calibration_flags(df)
    assert "no-op: 0 parameters changed" in flags[(*CELL, "ssd")]
    assert "no-op: ‖δ‖₂ < 0.001" in flags[(*CELL, "fv_arithmetic")]
    assert "no-op: reads as the Original on 2/2 seeds" in flags[(*CELL, "lazy")]
    assert not any("no-op" in f for f in flags[(*CELL, "finetune")])


def test_a_column_whose_original_and_retrain_lie_within_noise_is_non_discriminating():
    """TA: Original 98.0, Retrain 98.0, the twin 98.2 → separation 0 ≤ noise 0.2: non-discriminating.
    UA: separation 100 > noise 0: discriminating. Ref-MIA: the Original's 100 is outside [40, 71]."""
    df = _cell()
    check = calibration_check(df).set_index("column")
    assert check.loc["ta", "separation"] == pytest.approx(0.0) and check.loc["ta", "noise"] == pytest.approx(0.2)
    assert not check.loc["ta", "discriminating"] and check.loc["ua", "discriminating"]
    assert check.loc["refmia_auc", "discriminating"]
    assert non_discriminating(df)[CELL] == ["TA"]
    from mubench.report.markdown import render_markdown
    page = render_markdown(summary_table(df))
    under = page.split("## digits / small_cnn / class:0", 1)[1]
    assert under.index("| null band |") < under.index("Non-discriminating here: TA.")  # printed under its table
    inside = records_frame([_record("retrain", 0, 100.0, refmia_null_lo=40.0, refmia_null_hi=70.0),
                            _record("retrain_seed", 0, 100.0, refmia_auc=50.0),
                            _record("original", 0, 0.0, refmia_auc=65.0)])
    assert "Ref-MIA AUC" in non_discriminating(inside)[CELL]


def test_the_tidy_csv_value_column_is_numeric(tmp_path):
    df = _cell(finetune=(95.0, [{"mia_extrapolates": True}, {"mia_extrapolates": False}]))
    path = tmp_path / "records.csv"
    tidy(df).to_csv(path, index=False)
    read = pd.read_csv(path)
    assert pd.api.types.is_float_dtype(read["value"])
    flag = read[read["metric"].eq("mia_extrapolates") & read["method"].eq("finetune")]
    assert sorted(flag["value"]) == [0.0, 1.0]
    read.pivot_table(values="value", index="method", columns="metric")  # raised in pandas 3 on bools


def test_a_tidy_csv_reads_back_to_the_same_summary_table(tmp_path):
    """`mubench report --results records.csv` re-renders a committed report from its CSV alone."""
    from mubench.report.records import load_records

    df = _cell(finetune=(95.0, [{"mia_extrapolates": True}, {"mia_extrapolates": False}]))
    path = tmp_path / "records.csv"
    tidy(df).to_csv(path, index=False)
    back = load_records(path)
    assert summary_table(back).equals(summary_table(df))
    legacy = pd.read_csv(path).astype({"value": object})
    legacy.loc[legacy["metric"].eq("mia_extrapolates"), "value"] = ["True", "False"]  # as CSVs before the fix held
    legacy.to_csv(path, index=False)
    assert "MIA-Efficacy extrapolates (1/2 seeds)" in summary_table(load_records(path)).loc[(*CELL, "FT"), "flags"]


def test_every_cell_plans_the_calibration_rows_with_retrains_settings(tmp_path):
    from mubench.config import ExperimentConfig
    from mubench.errors import ConfigError
    from mubench.planner import build_plan
    from mubench.store import Store

    config = ExperimentConfig(methods=("finetune",), seeds=(0, 1), scenarios=("class:0",),
                              method_params={"retrain": {"epochs": 2}})
    unlearns = [j for j in build_plan(config, Store(tmp_path)).jobs if type(j).__name__ == "Unlearn"]
    assert sorted(j.method for j in unlearns) == sorted(["retrain", "finetune", "original", "retrain_seed"] * 2)
    assert all(j.params == {"epochs": 2} for j in unlearns if j.method == "retrain_seed")  # Retrain's settings
    off = ExperimentConfig(methods=("all",), seeds=(0,), scenarios=("class:0",), calibration=())
    assert not {"original", "retrain_seed"} & {getattr(j, "method", "") for j in build_plan(off, Store(tmp_path)).jobs}
    with pytest.raises(ConfigError, match="'finetune' is not a calibration row"):
        build_plan(ExperimentConfig(calibration=("finetune",)), Store(tmp_path))
