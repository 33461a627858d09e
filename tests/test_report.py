"""Reports on hand-made records: every expected number below is worked out in the comments.

The grid (digits / small_cnn / class:0, seeds 0-2):

    retrain   s0 (100, 98, 95, 100)  s1 (100, 96, 93, 98)  s2 (100, 97, 94, 99)   (ua, ra, ta, mia)
    finetune  s0 ( 90, 97, 94,  96)  s1 ( 94, 98, 92, 98)  s2 ( 92, 95, 93, 95)
              gaps to that seed's Retrain: (10+1+1+4)/4 = 4.0, (6+2+1+0)/4 = 2.25,
              (8+2+1+4)/4 = 3.75 → mean 10/3 = 3.333, std (ddof 1) 0.9465.
              (Pooling seeds first would give 3.0; using seed 0's Retrain for all, 3.667.)
              UA 90, 94, 92 → 92.00 ± 2.00. Stored avg_gap of s2 is wrong on purpose (9.99).
    grad_ascent  s0 ok (99, 90, 88, 100) → (1+8+7+0)/4 = 4.0; s1 failed; s2 ok (97, 91, 89, 99)
              → (3+6+5+0)/4 = 3.5
    random_label s0, s1 only (seed 2 has no record → missing)
    l1_sparse    all three seeds failed
    forget_vector s0 (99, 95, 92, 99) → 2.0, s1 (100, 94, 91, 97) → 1.25, s2 (98, 95, 92, 99) → 1.5
    fv_arithmetic  same metrics as forget_vector, with K = 3 learned weights in `info` and a
                   class-wise bank of 300, 310, 320 s (bank_s) → 310 ± 10
    my_method    one unknown plugin name, all seeds ok
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess

import numpy as np
import pytest

from mubench import report
from mubench.cli import main
from mubench.errors import ConfigError, MubenchError
from mubench.plots import pareto_front
from mubench.store import Store

METRICS = {
    "retrain": [(100, 98, 95, 100), (100, 96, 93, 98), (100, 97, 94, 99)],
    "finetune": [(90, 97, 94, 96), (94, 98, 92, 98), (92, 95, 93, 95)],
    "grad_ascent": [(99, 90, 88, 100), None, (97, 91, 89, 99)],
    "random_label": [(100, 97, 94, 100), (100, 95, 92, 98)],
    "l1_sparse": [None, None, None],
    "forget_vector": [(99, 95, 92, 99), (100, 94, 91, 97), (98, 95, 92, 99)],
    "fv_arithmetic": [(99, 95, 92, 99), (100, 94, 91, 97), (98, 95, 92, 99)],
    "my_method": [(100, 98, 95, 100), (100, 96, 93, 98), (100, 97, 94, 99)],
}
WEIGHTS = [[1.0, 0.0, -0.1], [1.0, 0.2, -0.1], [1.0, 0.4, -0.1]]  # fv_arithmetic info, per seed
RTE = {"retrain": (100, 110, 120), "forget_vector": (5, 6, 7)}
STORED_GAP = {("finetune", 0): 4.0, ("finetune", 1): 2.25, ("finetune", 2): 9.99}


def _record(method, seed, values, **extra):
    rec = {"key": f"{method}-{seed}", "dataset": "digits", "model": "small_cnn",
           "scenario": "class:0", "scenario_kind": "class", "seed": seed, "method": method,
           "method_version": 1, "display_name": method, "params": {}, "split_hash": f"split{seed}",
           "retrain_key": f"retrain-{seed}", "device": "cpu", "versions": {"torch": "2.x"},
           "finished": "2025-01-01T00:00:00"}
    if values is None:
        rec.update(status="failed", error="RuntimeError: boom", traceback_file=f"logs/{method}-{seed}.txt")
    else:
        ua, ra, ta, mia = values
        rec.update(status="ok", ua=ua, ra=ra, ta=ta, mia_efficacy=mia,
                   rte_s=RTE.get(method, (10, 10, 10))[seed],
                   params_changed=64 if method == "forget_vector" else 1000, info={})
        if (method, seed) in STORED_GAP:  # the others carry no stored gap: nothing to compare
            rec["avg_gap"] = STORED_GAP[method, seed]
    rec.update(extra)
    return rec


def _write_grid(root):
    store = Store(root)
    for method, per_seed in METRICS.items():
        for seed, values in enumerate(per_seed):
            arith = {"info": {"weights": WEIGHTS[seed]}, "bank_s": 300.0 + 10 * seed}
            rec = _record(method, seed, values, **(arith if method == "fv_arithmetic" else {}))
            store.write_record("method", rec["key"], rec)
    return root


@pytest.fixture
def results(tmp_path):
    return _write_grid(tmp_path / "results")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One full report of the grid (figures are the slow part, so it is written once)."""
    root = _write_grid(tmp_path_factory.mktemp("report") / "results")
    out = root.parent / "out"
    return out, report.write_report(root, out, formats=("md", "latex", "csv", "html"))


@pytest.fixture
def df(results):
    return report.load_records(results)


def _stat(stats, method, metric):
    row = stats[stats["variant"].eq(method) & stats["metric"].eq(metric)]
    assert len(row) == 1, (method, metric)
    return row.iloc[0]


def test_load_records_one_row_per_job_with_failed_kept(df):
    assert len(df) == 3 + 3 + 3 + 2 + 3 + 3 + 3 + 3
    assert set(df.loc[df["method"].eq("l1_sparse"), "status"]) == {"failed"}
    assert df.loc[df["key"].eq("finetune-1"), "ua"].item() == 94
    assert df.loc[df["key"].eq("finetune-1"), "version_torch"].item() == "2.x"


def test_mean_and_std_over_seeds(df):
    stats = report.summary_stats(df)
    ua = _stat(stats, "finetune", "ua")
    assert ua["mean"] == pytest.approx(92.0) and ua["std"] == pytest.approx(2.0)  # 90, 94, 92
    rte = _stat(stats, "retrain", "rte_s")
    assert rte["mean"] == pytest.approx(110.0) and rte["std"] == pytest.approx(10.0)
    table = report.summary_table(df).loc[("digits", "small_cnn", "class:0")]
    assert table.loc["FT", "UA"] == "92.00 ± 2.00"
    assert table.loc["Retrain", "RTE (s)"] == "110 ± 10"
    assert table.loc["FV", "RTE (s)"] == "6.00 ± 1.00"
    assert table.loc["FV", "params changed"] == "64"


def test_gap_is_computed_per_seed_against_that_seeds_retrain(df):
    gaps = report.with_gaps(df).set_index("key")["avg_gap"]
    assert [gaps[f"finetune-{s}"] for s in range(3)] == pytest.approx([4.0, 2.25, 3.75])
    assert [gaps[f"forget_vector-{s}"] for s in range(3)] == pytest.approx([2.0, 1.25, 1.5])
    assert [gaps[f"retrain-{s}"] for s in range(3)] == [0.0, 0.0, 0.0]
    ft = _stat(report.summary_stats(df), "finetune", "avg_gap")
    assert ft["mean"] == pytest.approx(10 / 3)  # not 3.0 (pooled) nor 3.667 (seed 0's Retrain)
    assert ft["std"] == pytest.approx(np.std([4.0, 2.25, 3.75], ddof=1))
    table = report.summary_table(df).loc[("digits", "small_cnn", "class:0")]
    assert table.loc["FT", "Avg. Gap"] == "3.33 ± 0.95"
    assert table.loc["Retrain", "Avg. Gap"] == "0.00 ± 0.00"


def test_a_wrong_stored_gap_is_noted_and_not_used(df, results):
    notes = report.report_notes(df, results)
    wrong = [n for n in notes if "record says 9.99" in n]
    assert len(wrong) == 1 and "finetune" in wrong[0] and "seed 2" in wrong[0] and "3.75" in wrong[0]
    assert not any("seed 0" in n and "record says" in n for n in notes)  # 4.0 was right


def test_failed_jobs_are_shown_not_dropped(df, results):
    table = report.summary_table(df).loc[("digits", "small_cnn", "class:0")]
    assert table.loc["GA", "seeds"] == "2/3 (1 failed)"
    assert table.loc["GA", "Avg. Gap"] == "3.75 ± 0.35"  # seeds 0 and 2: 4.0, 3.5
    assert table.loc["l1-sparse", "seeds"] == "0/3 (3 failed)"
    assert set(table.loc["l1-sparse"].drop(["seeds", "flags"])) == {"failed"}
    notes = report.report_notes(df, results)
    assert sum(n.startswith("failed:") for n in notes) == 4
    assert any("grad_ascent seed 1: RuntimeError: boom" in n and "logs/grad_ascent-1.txt" in n
               for n in notes)


def test_missing_seeds_are_shown_with_the_command_that_fills_them(df, results):
    missing = report.missing_jobs(df)
    assert missing[["variant", "seed"]].values.tolist() == [["random_label", 2]]
    table = report.summary_table(df).loc[("digits", "small_cnn", "class:0")]
    assert table.loc["RL", "seeds"] == "2/3 (1 missing)"
    assert table.loc["RL", "UA"] == "100.00 ± 0.00"
    note = [n for n in report.report_notes(df, results) if n.startswith("missing:")]
    assert len(note) == 1 and "python -m mubench run" in note[0] and "--methods random_label" in note[0]


def test_missing_retrain_leaves_gaps_unknown_and_says_so(results):
    (results / "records" / "method" / "retrain-1.json").unlink()
    df = report.load_records(results)
    table = report.summary_table(df).loc[("digits", "small_cnn", "class:0")]
    assert table.loc["Retrain", "seeds"] == "2/3 (1 missing)"
    assert table.loc["FT", "Avg. Gap"] == "3.88 ± 0.18"  # seeds 0 and 2 only: 4.0, 3.75
    assert any(n.startswith("no Retrain for digits/small_cnn/class:0 seed 1") for n in
               report.report_notes(df, results))


def test_rows_start_with_retrain_and_use_report_labels(df):
    labels = list(report.summary_table(df).index.get_level_values("method"))
    assert labels == ["Retrain", "FT", "GA", "RL", "l1-sparse", "FV", "FV-arith", "my_method"]
    assert report.method_label("salun[sparsity=0.3]") == "SalUn[sparsity=0.3]"


def test_a_rerun_supersedes_the_failed_record_of_the_same_job(results):
    rec = _record("grad_ascent", 1, (98, 92, 90, 99), key="grad_ascent-1-retry",
                  finished="2025-01-02T00:00:00")
    Store(results).write_record("method", rec["key"], rec)
    df = report.load_records(results)
    table = report.summary_table(df).loc[("digits", "small_cnn", "class:0")]
    assert table.loc["GA", "seeds"] == "3/3"
    assert df.loc[df["key"].eq("grad_ascent-1"), "superseded"].item()
    assert not any(n.startswith("failed: digits/small_cnn/class:0 grad_ascent")
                   for n in report.report_notes(df, results))


def test_old_column_names_are_mapped_on_read(tmp_path):
    store = Store(tmp_path)
    for method in ("retrain", "finetune"):
        rec = _record(method, 0, METRICS[method][0])
        rec["mia"] = rec.pop("mia_efficacy")
        store.write_record("method", rec["key"], rec)
    df = report.load_records(tmp_path)
    assert df["mia_efficacy"].tolist() == [100, 96]
    assert report.with_gaps(df).set_index("key").loc["finetune-0", "avg_gap"] == 4.0


def test_tidy_is_long_form_with_provenance(df):
    long = report.tidy(df)
    assert long.duplicated(["variant", "seed", "metric"]).sum() == 0
    ua = long[long["variant"].eq("finetune") & long["metric"].eq("ua")]
    assert ua.sort_values("seed")["value"].tolist() == [90, 94, 92]
    gap = long[long["variant"].eq("finetune") & long["metric"].eq("avg_gap") & long["seed"].eq(2)]
    assert gap["value"].item() == pytest.approx(3.75)  # the recomputed gap, not the stored 9.99
    failed = long[long["variant"].eq("l1_sparse")]
    assert len(failed) == 3 * len(report.TABLE_METRICS) and failed["value"].isna().all()
    assert set(failed["status"]) == {"failed"}
    assert {"key", "split_hash", "device", "version_torch", "superseded"} <= set(long.columns)


def test_latex_uses_booktabs_and_escapes(df):
    tex = report.render_latex(report.summary_table(df))
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1  # one cell → one table
    assert r"my\_method" in tex and r"92.00 $\pm$ 2.00" in tex
    assert tex.index("Retrain &") < tex.index("FT &")


def test_markdown_has_one_table_per_cell_and_the_stats(written):
    out, paths = written
    md = (out / "report.md").read_text()
    assert "## digits / small_cnn / class:0" in md
    assert "| FT | 92.00 ± 2.00 |" in md
    assert "## Avg. Gap per seed" in md and "4.00, 2.25, 3.75" in md
    assert "FV-arith on digits/small_cnn/class:0: RTE excludes the one-time class-wise bank, 310 ± 10 s" in md
    assert re.search(r"\| FT \| 3 \| 1\.75 \| \[", md)  # paired FT − FV: 2.0, 1.0, 2.25
    assert {out / "report.md", out / "report.tex", out / "records.csv", out / "report.html"} <= set(paths)


def test_figures_in_png_and_pdf_with_arithmetic_weights(written):
    out, paths = written
    names = {p.name for p in paths if p.parent == out / "figures"}
    stems = ["digits_small_cnn_class-0_metrics", "digits_small_cnn_class-0_efficacy_cost",
             "digits_small_cnn_class-0_fv_arithmetic_weights"]
    assert names == {f"{s}.{ext}" for s in stems for ext in ("png", "pdf")}
    assert all(p.stat().st_size > 1000 for p in paths)


def test_unknown_format_and_empty_results_are_one_line_errors(results, tmp_path):
    with pytest.raises(ConfigError, match="unknown report format 'xls'"):
        report.write_report(results, tmp_path / "o", formats=("md", "xls"))
    empty = tmp_path / "empty"
    with pytest.raises(MubenchError, match=r"no method records under .*empty.*python -m mubench run"):
        report.load_records(empty)


def test_report_command(tmp_path, capsys):
    results = tmp_path / "results"
    for method in ("retrain", "finetune"):  # a one-seed grid keeps the figures cheap
        rec = _record(method, 0, METRICS[method][0])
        Store(results).write_record("method", rec["key"], rec)
    out = tmp_path / "cli"
    assert main(["report", "--results", str(results), "--format", "md,csv", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert str(out / "report.md") in printed and str(out / "records.csv") in printed
    assert not (out / "report.html").exists()
    assert main(["report", "--results", str(tmp_path / "nothing")]) == 2
    assert "python -m mubench run" in capsys.readouterr().err


def test_pareto_front_by_hand():
    # (1, 5) fastest; (10, 1) best gap; (5, 3) between; (6, 4) is beaten by (5, 3).
    assert pareto_front([1, 10, 5, 6], [5, 1, 3, 4]).tolist() == [True, True, True, False]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_html_report_opens_in_headless_chromium(written, tmp_path):
    page = written[0] / "report.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}", "--dump-dom", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    # the cell's table, the per-seed gaps, the paired comparison with FV, the ties with the best,
    # rank stability and the smallest resolvable difference
    assert dom.count("<table>") == 6
    for cell in ("<td>Retrain</td>", "<td>92.00 ± 2.00</td>", "<td>3.33 ± 0.95</td>",
                 '<td class="bad">2/3 (1 failed)</td>', '<td class="bad">2/3 (1 missing)</td>'):
        assert cell in dom, cell
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', dom)
    assert len(images) == 3  # metric bars, efficacy–cost scatter, arithmetic weights
    import base64

    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)


def test_std_is_blank_for_a_single_seed(tmp_path):
    store = Store(tmp_path)
    for method in ("retrain", "finetune"):
        rec = _record(method, 0, METRICS[method][0])
        store.write_record("method", rec["key"], rec)
    table = report.summary_table(report.load_records(tmp_path))
    assert table.iloc[1]["Avg. Gap"] == "4.00" and table.iloc[1]["seeds"] == "1/1"
    assert not math.isnan(report.summary_stats(report.load_records(tmp_path))["mean"].iloc[0])


def test_summary_markdown_from_record_dicts_as_run_prints_it():
    records = [_record(m, s, METRICS[m][s]) for m in ("retrain", "finetune") for s in range(3)]
    records.append(_record("grad_ascent", 0, None))
    records.append({"key": "orig", "kind": "original", "dataset": "digits"})  # ignored: no method
    text = report.summary_markdown(report.records_frame(records))
    assert text.startswith("## digits / small_cnn / class:0")
    assert "| FT | 92.00 ± 2.00 |" in text and "| GA | failed |" in text
    assert report.summary_markdown(report.records_frame([])) == "(no finished method jobs)"


def test_null_metric_in_a_record_gives_nan_not_a_crash(tmp_path):
    store = Store(tmp_path)
    for method, seed in (("retrain", 0), ("retrain", 1), ("finetune", 0)):
        rec = _record(method, seed, METRICS[method][seed])
        store.write_record("method", rec["key"], rec)
    rec = _record("finetune", 1, METRICS["finetune"][1], mia_efficacy=None)
    store.write_record("method", rec["key"], rec)
    gaps = report.with_gaps(report.load_records(tmp_path)).set_index("key")["avg_gap"]
    assert gaps["finetune-0"] == 4.0 and math.isnan(gaps["finetune-1"])


def test_unstable_and_tuned_rows_are_flagged(tmp_path):
    store = Store(tmp_path)
    stamp = {"file": "gone/digits.toml", "protocol": "heldout", "criterion": "mean+std",  # not readable now
             "budget": 8, "seeds": [100, 101, 102]}
    rows = {"retrain": [(100, 99, 98, 100)] * 3,
            "ssd": [(0, 99, 98, 0), (100, 98, 97, 100), (50, 98, 97, 50)],  # UA range 100: flips
            "finetune": [(90, 97, 94, 96), (94, 98, 92, 98), (92, 95, 93, 95)]}  # range 4: steady
    for method, per_seed in rows.items():
        for seed, values in enumerate(per_seed):
            extra = {"tuned": True, "tuned_from": stamp} if method == "ssd" else {}
            rec = _record(method, seed, values, **extra)
            store.write_record("method", rec["key"], rec)
    df = report.load_records(tmp_path)
    table = report.summary_table(df).loc[("digits", "small_cnn", "class:0")]
    assert table.loc["SSD", "flags"] == "tuned (heldout); unstable (UA range 100.0)"
    assert table.loc["FT", "flags"] == ""
    notes = report.report_notes(df)
    assert any(n.startswith("unstable: SSD on digits/small_cnn/class:0 has per-seed UA from 0.0 to 100.0") for n in notes)
    assert any(n.startswith("tuned (heldout): SSD use hyper-parameters from gone/digits.toml") for n in notes)
    assert any(n.startswith("not tuned: FT") for n in notes)


def test_the_forget_vectors_figure_is_drawn_by_the_report_from_its_stored_predictor(tmp_path):
    """Figures belong to what they show (mubench/methods/forget_vector.py registers "delta") and
    the report draws them from the stored predictor: the Unlearn job draws nothing."""
    from _grids import run_tiny_forget_vector_grid

    from mubench.store import Store

    run_tiny_forget_vector_grid(tmp_path)
    assert not (tmp_path / "figures").exists()  # no job drew a figure
    assert not any("delta_figure" in r for r in Store(tmp_path).iter_records("unlearn"))
    paths = report.write_report(tmp_path, tmp_path / "report", formats=("md",))
    delta = [p for p in paths if p.name.endswith("_delta.png")]  # digits_small_cnn_class-0_forget_vector-epochs-2_delta
    assert len(delta) == 1 and delta[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_machine_and_precision_travel_through_the_csv_and_head_the_report(tmp_path):
    """Every table names its machine and precision (issue 28): a record's `machine` dict is
    flattened to provenance columns, kept by the tidy CSV, read back, and named in the line
    that heads the report; none of it is mistaken for a metric."""
    from mubench.report.notes import provenance_line

    amd = {"device": "cpu", "cpu": "AMD EPYC", "amx": False, "avx512_bf16": True, "threads": 1}
    xeon = {**amd, "cpu": "Intel(R) Xeon(R) Processor", "amx": True, "threads": 2}
    records = [_record("retrain", s, (100, 98, 95, 100), machine=amd, precision="fp32", torch_threads=1)
               for s in range(3)] + [_record("finetune", 0, (90, 96, 94, 98), machine=xeon, precision="bf16")]
    frame = report.records_frame(records)
    assert {"machine_cpu", "machine_amx", "machine_threads"} <= set(frame.columns)
    assert not {"machine_amx", "machine_threads", "torch_threads"} & set(report.metric_columns(frame))
    path = tmp_path / "records.csv"
    report.tidy(frame).to_csv(path, index=False)
    back = report.load_records(path)
    line = provenance_line(back, path)
    assert "AMD EPYC (no AMX), 1 torch thread per job" in line
    assert "Intel(R) Xeon(R) Processor (AMX), 2 torch threads per job" in line
    assert "training precision: bf16, fp32" in line
    older = report.records_frame([_record("retrain", 0, (100, 98, 95, 100))])  # written before the field
    assert "machines: not recorded" in provenance_line(older, "r")


def _tuned_file(path, tuned_on: str, selected_on: str = "avg_gap") -> dict:
    """A tuned settings file in the format `mubench tune` writes, searched on `tuned_on`, whose
    chosen finetune candidate scored Avg. Gap 2.0 ± 0.5 (and 3.0 ± 1.0 without the MIA term)."""
    path.write_text(f"""[tuned]
dataset = "digits"
train_subset = 0
model = "small_cnn"
protocol = "heldout"
criterion = "mean+std"
budget = 2
seeds = [100, 101]
command = "python -m mubench tune"
scenarios = {{class = ["{tuned_on}"]}}

[methods.finetune.class]
lr = 0.01

[[candidates]]
method = "finetune"
kind = "class"
values = {{lr = 0.01}}
chosen = true
selected_on = "{selected_on}"
avg_gap_mean = 2.0
avg_gap_std = 0.5
score_mean = {2.0 if selected_on == "avg_gap" else 3.0}
score_mean_std = {2.5 if selected_on == "avg_gap" else 4.0}

[[candidates]]
method = "finetune"
kind = "class"
values = {{lr = 0.1}}
chosen = false
avg_gap_mean = 9.0
avg_gap_std = 0.5
""")
    return {"file": str(path), "protocol": "heldout", "criterion": "mean+std", "budget": 2, "seeds": [100, 101]}


def test_transfer_table_puts_the_tuning_score_beside_the_reported_one(tmp_path):
    """Issue 25's transfer column: the chosen candidate's tuning Avg. Gap beside the reported
    mean over seeds, on the gap it was selected on, and the flag where the search selected on the
    reported forget set (class:0 here), not where it searched another class."""
    from mubench.report.transfer import SELECTED_HERE, transfer_table

    for tuned_on, flagged in (("class:0", True), ("class:5", False)):
        root = tmp_path / tuned_on.replace(":", "")
        stamp = _tuned_file(tmp_path / f"{tuned_on.replace(':', '')}.toml", tuned_on)
        store = Store(root)
        for seed in range(3):
            for method, values in (("retrain", (100, 99, 98, 100)), ("finetune", (96 - 2 * seed, 99, 98, 100))):
                extra = {"tuned": True, "tuned_from": stamp} if method == "finetune" else {}
                rec = _record(method, seed, values, **extra)
                rec.pop("avg_gap", None)
                store.write_record("method", rec["key"], rec)
        df = report.load_records(root)
        (row,) = transfer_table(df).to_dict("records")
        # per seed the gap is |UA − 100| / 4 = 1.0, 1.5, 2.0 (RA, TA, MIA equal Retrain's)
        assert row["tuning_mean"] == 2.0 and row["tuning_std"] == 0.5 and row["tuned_on"] == tuned_on
        assert math.isclose(row["reported_mean"], 1.5) and math.isclose(row["reported_std"], 0.5)
        assert math.isclose(row["difference"], -0.5) and row["selected_here"] is flagged
        flags = report.summary_table(df).loc[("digits", "small_cnn", "class:0")].loc["FT", "flags"]
        assert (SELECTED_HERE in flags) is flagged and flags.startswith("tuned (heldout)")
    # Selected without the MIA term (the SVC extrapolated in tuning): compared on that term.
    stamp = _tuned_file(tmp_path / "no-mia.toml", "class:5", selected_on="avg_gap_no_mia")
    store = Store(tmp_path / "no-mia")
    for seed in range(2):
        for method, values in (("retrain", (100, 99, 98, 100)), ("finetune", (96, 99, 98, 0))):
            rec = _record(method, seed, values, **({"tuned": True, "tuned_from": stamp} if method == "finetune" else {}))
            rec.pop("avg_gap", None)
            store.write_record("method", rec["key"], rec)
    (row,) = transfer_table(report.load_records(tmp_path / "no-mia")).to_dict("records")
    assert row["gap"] == "Avg. Gap w/o MIA" and row["tuning_mean"] == 3.0 and row["tuning_std"] == 1.0
    assert math.isclose(row["reported_mean"], 4 / 3)  # |96 − 100| over UA, RA, TA; the MIA's 100 left out
    # A file rewritten since the run (other seeds) gives no score, and says why.
    text = (tmp_path / "no-mia.toml").read_text().replace("seeds = [100, 101]", "seeds = [200]")
    (tmp_path / "no-mia.toml").write_text(text)
    (row,) = transfer_table(report.load_records(tmp_path / "no-mia")).to_dict("records")
    assert row["note"] == "the file was rewritten since this run" and row.get("tuning_mean") is None
