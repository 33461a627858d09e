"""Paper tables: spec loading and validation, spec → config per preset, the class-averaged
layout on hand-made records, references beside ours, and one real quick run end to end."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from test_data import write_cifar10

from mubench import paper
from mubench.cli import main
from mubench.errors import ConfigError
from mubench.store import Store

SHIPPED = ("cifar10-classwise", "cifar10-random", "imagenet10-classwise", "imagenet10-random",
           "fv-arithmetic", "runtime")

# A digits grid small enough to plan in a moment: two classes x two seeds, Retrain, FT and FV.
TINY = """
name    = "{name}"
title   = "Tiny test table"
mirrors = "nothing: a unit-test spec"
columns = ["ua", "ra", "ta", "mia_efficacy", "avg_gap", "rte_s", "rte_rel"]

[grid.experiment]
datasets  = ["digits"]
models    = ["small_cnn"]
scenarios = ["class:0", "class:1"]
seeds     = [0, 1]

[[rows]]
label = "Retrain"
method = "retrain"
[[rows]]
label = "FT"
method = "finetune"
[[rows]]
label = "FV"
method = "forget_vector"

[[blocks]]
id = "classwise"
title = "Class-wise"
scenarios = ["class:*"]

[presets.quick]
note = "test stand-in"
[presets.quick.experiment]
seeds = [0]
scenarios = ["class:0"]
[presets.quick.recipe]
epochs = 2
[presets.quick.methods.forget_vector]
epochs = 2
[presets.quick.methods.finetune]
epochs = 1
"""


def write_spec(tmp_path: Path, name: str = "tiny", text: str = TINY, extra: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(text).format(name=name) + extra)
    return path


def dry_run_settings(text: str) -> dict[str, dict[str, str]]:
    """`--dry-run`'s settings lines → {"METHOD DATASET/MODEL/SCENARIO": {field: value}}."""
    lines = text.split("settings (resolved; every seed of a scenario shares them):\n", 1)[1].splitlines()
    return {where: dict(kv.split("=", 1) for kv in values.split(", "))
            for where, values in (line.strip().split(": ", 1) for line in lines if line.startswith("    "))}


def test_paper_grids_resolve_to_the_corrected_defaults(tmp_path, monkeypatch, capsys):
    """Issue 13: the paper's CIFAR-10 grid, as experiments/cifar10-paper.toml and as the
    cifar10-random table, plans β 0.2 for random forgetting (not the class-wise 5 that GPU
    datasets fell back to), a class-wise bank of its own, SCRUB's reference loaders (forget 512,
    retain 256, no augmentation) and SSD's I_D order by kind (class-sorted for class:0, mixed for
    random:10, issue 25), and --dry-run says so. CIFAR-10 is a
    tiny set written in its on-disk format."""
    write_cifar10(tmp_path / "data")
    monkeypatch.setenv("MUBENCH_DATA", str(tmp_path / "data"))
    config = Path(__file__).parents[1] / "experiments" / "cifar10-paper.toml"
    assert main(["run", "--config", str(config), "--scenarios", "class:0,random:10", "--seeds", "0",
                 "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    run = dry_run_settings(capsys.readouterr().out)
    assert main(["paper", "cifar10-random", "--results", str(tmp_path / "out"), "--dry-run"]) == 0
    table = dry_run_settings(capsys.readouterr().out)
    for method in ("forget_vector", "fv_arithmetic"):
        assert run[f"{method} cifar10/resnet18/random:10"]["beta"] == "0.2"
        assert run[f"{method} cifar10/resnet18/class:0"]["beta"] == "5.0"
    assert run["fv_bank cifar10/resnet18"]["beta"] == "5.0"
    assert table["forget_vector cifar10/resnet18/random:10"] == run["forget_vector cifar10/resnet18/random:10"]
    for scenario in ("class:0", "random:10"):
        scrub = run[f"scrub cifar10/resnet18/{scenario}"]
        assert (scrub["forget_batch_size"], scrub["batch_size"], scrub["augment"]) == ("512", "256", "False")
    assert run["ssd cifar10/resnet18/class:0"]["full_order"] == "sorted"  # by kind, as the reference's scripts
    assert run["ssd cifar10/resnet18/random:10"]["full_order"] == "mixed"


# -- loading and validation -------------------------------------------------------------------
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_specs_load_and_resolve_both_presets(name):
    spec = paper.load_spec(paper.find_spec(name))
    quick = paper.preset_config(spec, "quick")
    full = paper.preset_config(spec, "full")
    assert spec.reference == {}  # no verified reference numbers offline: none may be shipped
    assert full.datasets[0] in ("cifar10", "imagenet10")
    assert quick.datasets[0] in ("digits", "fashion-mnist")
    assert len(quick.seeds) <= len(full.seeds) and len(quick.scenarios) <= len(full.scenarios)
    assert quick.out == "results/paper-quick" and full.out != quick.out


def test_list_prints_every_table(capsys):
    assert main(["paper", "--list"]) == 0
    out = capsys.readouterr().out
    for name in SHIPPED:
        assert re.search(rf"^{name}\s", out, re.M), name


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.replace('title   = "Tiny test table"', 'title = "x"\ncolour = "red"'), "unknown key 'colour'"),
    (lambda t: t.replace('name    = "{name}"', 'name = "other"'), "'name' is 'other' but the file is"),
    (lambda t: t.replace('seeds     = [0, 1]', 'seeds = [0, 1]\nmethods = ["all"]'),
     "[grid.experiment]: 'methods' is not allowed"),
    (lambda t: t.replace('"rte_rel"]', '"speed"]'), "unknown column 'speed'"),
    (lambda t: t.replace('note = "test stand-in"', ''), "[presets.quick]: 'note' must say"),
    (lambda t: t.replace('method = "finetune"', 'method = "finetune"\nparams = 3'), "'params' must be a table"),
    (lambda t: t.replace('label = "FT"', 'label = "FV"'), "duplicate label 'FV'"),
    (lambda t: t + '\n[presets.huge]\n', "unknown preset [presets.huge]"),
    (lambda t: t + '\n[reference.values.classwise.FV]\nua = 1.0\n', "'source' must say"),
    (lambda t: t + '\n[reference]\nsource = "s"\n[reference.values.classwise.FV]\nua = "high"\n', "'ua' must be a number"),
    (lambda t: t + '\n[reference]\nsource = "s"\n[reference.values.nope.FV]\nua = 1\n', "no block with that id"),
    (lambda t: t + '\n[reference]\nsource = "s"\n[reference.values.classwise.GA]\nua = 1\n', "no row labelled 'GA'"),
    (lambda t: t.replace("[[blocks]]", "[[blockz]]"), "unknown key 'blockz'"),
])
def test_bad_specs_fail_with_one_line_naming_file_and_key(tmp_path, mutate, message):
    path = write_spec(tmp_path, text=mutate(TINY))
    with pytest.raises(ConfigError) as err:
        paper.load_spec(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_preset_errors_name_the_preset(tmp_path):
    spec = paper.load_spec(write_spec(tmp_path, text=TINY.replace('scenarios = ["class:0"]', 'scenarios = ["random:10"]')))
    with pytest.raises(ConfigError, match=r"\[presets.quick\]: scenario 'random:10' belongs to no \[\[blocks\]\]"):
        paper.preset_config(spec, "quick")
    with pytest.raises(ConfigError, match="unknown paper table 'cifar11'"):
        paper.find_spec("cifar11")
    assert main(["paper", "cifar11"]) == 2


# -- spec → config --------------------------------------------------------------------------
def test_spec_to_config_per_preset():
    spec = paper.load_spec(paper.find_spec("cifar10-classwise"))
    full = paper.preset_config(spec, "full")
    assert (full.datasets, full.models, full.seeds) == (("cifar10",), ("resnet18",), (0, 1, 2))
    assert full.scenarios == tuple(f"class:{c}" for c in range(10))
    assert full.recipe == {"epochs": 182, "batch_size": 256, "lr": 0.1}
    quick = paper.preset_config(spec, "quick")
    assert (quick.datasets, quick.models, quick.seeds) == (("digits",), ("small_cnn",), (0,))
    assert quick.recipe == {"epochs": 30, "batch_size": 64, "lr": 0.05}  # the digits preset's
    assert quick.method_params == {}  # methods keep the digits presets
    assert paper.preset_config(spec, "quick", out="/tmp/x").out == "/tmp/x"
    (config, chosen), = paper.passes(spec, quick)
    assert set(config.methods) == {"retrain", "finetune", "grad_ascent", "random_label", "l1_sparse",
                                   "salun", "forget_vector", "original", "retrain_seed"}  # + calibration rows
    assert chosen["forget_vector"].label == "FV"


def test_one_method_in_several_rows_runs_in_passes_with_the_same_bank_params():
    spec = paper.load_spec(paper.find_spec("fv-arithmetic"))
    quick = paper.preset_config(spec, "quick")
    runs = paper.passes(spec, quick)
    assert [c.method_params["fv_arithmetic"]["weights"] for c, _ in runs] == ["learned", "sum", "mean"]
    assert all("forget_vector" not in c.method_params for c, _ in runs)  # same bank params
    assert [chosen["fv_arithmetic"].label for _, chosen in runs] == [
        "FV-arith (learned w)", "FV-arith (zero-shot sum)", "FV-arith (zero-shot mean)"]


def test_merged_plan_maps_every_method_job_to_one_row(tmp_path):
    spec = paper.load_spec(paper.find_spec("fv-arithmetic"))
    pplan = paper.plan_table(spec, "quick", out=str(tmp_path))
    jobs = pplan.jobs
    # 2 scenarios x 1 seed x (Retrain, the 2 calibration rows, FV, 3 arithmetic rows); one bank
    # shared by all passes
    assert len(jobs) == 14 and jobs["key"].is_unique
    assert jobs.groupby("block").size().to_dict() == {"random10": 7, "subset": 7}
    assert sum(type(j).__name__ == "Resource" and j.name == "fv_bank" for j in pplan.plan.jobs) == 1


# -- layout and aggregation on hand-made records --------------------------------------------
def _fake_records(spec, pplan, drop=(), fail=()):
    """Hand-made numbers per (row, class c, seed s) written under the planned keys:
    Retrain: UA 100, RA 98+s, TA 97, MIA 100, RTE 10(1+c);
    FT:      UA 50,  RA 98+s, TA 97, MIA 60,  RTE 2;
    FV:      UA 90+2c+s, RA 96, TA 97, MIA 100, RTE 1+c."""
    store = Store(pplan.config.out)
    by_key = {j.key: j for j in pplan.plan.evaluations()}
    for job in pplan.jobs.itertuples():
        spec_job = by_key[job.key]
        c, s = int(job.scenario.split(":")[1]), job.seed
        values = {"Retrain": (100, 98 + s, 97, 100, 10 * (1 + c)), "FT": (50, 98 + s, 97, 60, 2),
                  "FV": (90 + 2 * c + s, 96, 97, 100, 1 + c), "Original (no unlearning)": (0, 100, 97, 0, 0.1),
                  "Retrain (independent seed)": (100, 98 + s, 97, 100, 10 * (1 + c))}[job.row]
        if (job.row, c, s) in drop:
            continue
        record = {"key": job.key, "kind": spec_job.identity()["kind"], "method": spec_job.method, "dataset": job.dataset,
                  "model": job.model, "scenario": job.scenario, "seed": s, "status": "ok",
                  "display_name": spec_job.method, "retrain_key": spec_job.retrain_key,
                  "finished": "2025-01-01T00:00:00",
                  **dict(zip(("ua", "ra", "ta", "mia_efficacy", "rte_s"), values, strict=True))}
        if (job.row, c, s) in fail:
            record = {**{k: record[k] for k in ("key", "kind", "method", "dataset", "model", "scenario",
                                                "seed", "display_name")},
                      "status": "failed", "error": "RuntimeError: made-up failure"}
        store.write_record("method", job.key, record)


def _row(table, label):
    return table.set_index("method").loc[label]


def test_class_wise_cells_pool_classes_and_seeds(tmp_path):
    spec = paper.load_spec(write_spec(tmp_path))
    pplan = paper.plan_table(spec, "full", out=str(tmp_path / "res"))
    assert len(pplan.jobs) == 5 * 2 * 2  # Retrain, the 2 calibration rows, FT, FV
    _fake_records(spec, pplan)
    rendered = paper.render(spec, "full", pplan)
    (caption, table), = rendered.tables
    assert caption == "Class-wise — digits / small_cnn"
    assert list(table["method"]) == ["Retrain", "Retrain (independent seed)", "Original (no unlearning)", "FT", "FV"]
    assert _row(table, "Original (no unlearning)")["UA"] == "0.00 ± 0.00"  # the calibration row, with its metrics
    fv = _row(table, "FV")
    # UA over (c, s) = 90, 91, 92, 93: mean 91.5, std (ddof 1) sqrt(5/3) = 1.29
    assert fv["UA"] == "91.50 ± 1.29"
    assert fv["RA"] == "96.00 ± 0.00"
    # gap = (|UA−100| + |96−(98+s)| + 0 + 0)/4 = (10−2c−s + 2+s)/4 = 3 − c/2 → 3, 3, 2.5, 2.5
    assert fv["Avg. Gap"] == "2.75 ± 0.29"
    assert fv["RTE (× Retrain)"] == "0.100 ± 0.000"  # (1+c) / (10(1+c)) on every job
    assert fv["jobs"] == "4/4"
    ft = _row(table, "FT")
    # FT gap = (50 + 0 + 0 + 40)/4 = 22.5 everywhere; RTE 2 s vs Retrain 10 and 20 → 0.2, 0.1
    assert ft["Avg. Gap"] == "22.50 ± 0.00" and ft["RTE (× Retrain)"] == "0.150 ± 0.058"
    retrain = _row(table, "Retrain")
    assert retrain["Avg. Gap"] == "0.00 ± 0.00" and retrain["RTE (s)"] == "15.0 ± 5.8"  # 10, 10, 20, 20 s (report: 1 decimal ≥ 10 s)
    assert "| FV | 91.50 ± 1.29 |" in rendered.markdown
    assert "\\begin{tabular}" in rendered.latex and "FV & 91.50 $\\pm$ 1.29" in rendered.latex
    assert "Preset full" in rendered.markdown and "QUICK" not in rendered.markdown


def test_missing_and_failed_jobs_are_counted_not_hidden(tmp_path):
    spec = paper.load_spec(write_spec(tmp_path))
    pplan = paper.plan_table(spec, "full", out=str(tmp_path / "res"))
    _fake_records(spec, pplan, drop={("FV", 1, 1)}, fail={("FT", 0, 0), ("FT", 0, 1), ("FT", 1, 0), ("FT", 1, 1)})
    rendered = paper.render(spec, "full", pplan)
    (_, table), = rendered.tables
    fv = _row(table, "FV")
    assert fv["jobs"] == "3/4 (1 missing)" and fv["UA"] == "91.00 ± 1.00"  # 90, 91, 92
    ft = _row(table, "FT")
    assert ft["UA"] == "failed" and ft["jobs"] == "0/4 (4 failed)"
    assert "made-up failure" in rendered.markdown
    assert f"python -m mubench paper {spec.name} --preset full" in rendered.markdown


def test_references_are_shown_with_the_difference(tmp_path):
    extra = """
[reference]
source = "TEST DATA: made-up numbers for this unit test, not from the paper"
[reference.values.classwise.FV]
ua = 90.0
avg_gap = 3.0
"""
    spec = paper.load_spec(write_spec(tmp_path, extra=extra))
    pplan = paper.plan_table(spec, "full", out=str(tmp_path / "res"))
    _fake_records(spec, pplan)
    rendered = paper.render(spec, "full", pplan)
    (_, table), = rendered.tables
    cols = list(table.columns)
    assert cols[cols.index("UA"):cols.index("UA") + 3] == ["UA", "UA (ref)", "Δ UA"]
    fv = _row(table, "FV")
    assert (fv["UA (ref)"], fv["Δ UA"]) == ("90.00", "+1.50")
    assert (fv["Avg. Gap (ref)"], fv["Δ Avg. Gap"]) == ("3.00", "-0.25")
    assert _row(table, "FT")["UA (ref)"] == ""  # no reference for that row: left empty
    assert "TEST DATA: made-up numbers" in rendered.markdown
    # a quick stand-in is not comparable, so it never shows the paper's numbers
    quick = paper.render(spec, "quick", paper.plan_table(spec, "quick", out=str(tmp_path / "res")))
    assert "UA (ref)" not in quick.markdown and "full preset only" in quick.markdown


# -- end to end -------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:original .* under-fits")  # 2 epochs on purpose: speed
def test_paper_quick_runs_the_grid_and_renders(tmp_path, capsys):
    """The real CLI path on a one-cell grid (2 training epochs): jobs run, the table renders
    with the quick label, and a second call finds everything cached."""
    path = write_spec(tmp_path)
    results, out = tmp_path / "res", tmp_path / "tables"
    argv = ["paper", str(path), "--preset", "quick", "--results", str(results), "--out", str(out),
            "--backend", "sequential", "--quiet"]
    assert main(argv + ["--dry-run"]) == 0
    assert "total: 12 jobs to run" in capsys.readouterr().out  # original, split, Retrain, the 2 calibration rows, FT, FV (Unlearn + Evaluate each)
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "12 jobs run, 0 cached, 0 failed" in captured.err
    md = (out / "tiny-quick.md").read_text()
    assert md in captured.out
    assert "QUICK PRESET — digits/small_cnn stand-in for digits/small_cnn" in md
    assert "not comparable to the paper" in md and "QUICK PRESET" in (out / "tiny-quick.tex").read_text()
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert rows["Retrain"].split("|")[6].strip() == "0.00"  # Avg. Gap of Retrain to itself
    for label in ("Retrain", "Retrain (independent seed)", "Original (no unlearning)", "FT", "FV"):
        assert rows[label].rstrip(" |").endswith("1/1"), rows[label]
        ua = float(rows[label].split("|")[2])
        assert 0 <= ua <= 100
    assert float(rows["Retrain"].split("|")[2]) == 100.0  # Retrain never saw class 0
    assert main(argv) == 0
    assert "0 jobs run, 12 cached" in capsys.readouterr().err
