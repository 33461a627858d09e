"""Scenario families (issue 25 item 1): `class:all`, `class:sample:K[:S]` and `random:P1+P2+...`
are grid entries that expand, with the dataset's class count, into ordinary member scenarios,
each naming its family; a member shares every job with the same scenario listed alone but its
Evaluate, whose record names the family."""

from __future__ import annotations

import pytest
from _cli import run_cli

from mubench.config import ExperimentConfig, split_scenarios
from mubench.errors import ConfigError
from mubench.scenarios import Family, expand_scenarios, parse_entry, parse_scenario, sample_classes


def _specs(scenarios):
    return [sc.spec for sc in scenarios]


def test_each_spelling_parses_to_its_canonical_family():
    assert parse_entry("class:all") == Family("class")
    assert parse_entry(" class:sample:3 ") == Family("class", sample=3)
    assert parse_entry("class:sample:3:7") == Family("class", sample=3, sample_seed=7)
    assert parse_entry("random:1+10.0+50") == Family("random", percents=(1.0, 10.0, 50.0))
    for text, spec in [("class:all", "class:all"), ("class:sample:3", "class:sample:3"),
                       ("class:sample:3:0", "class:sample:3"), ("class:sample:3:7", "class:sample:3:7"),
                       ("random:1+10.0+50", "random:1+10+50"), ("random:0.5+2", "random:0.5+2")]:
        assert parse_entry(text).spec == spec
        assert parse_entry(spec).spec == spec  # canonical text parses to itself
    assert parse_entry("class:3") == parse_scenario("class:3")  # not a family: one scenario
    # The comma still separates scenarios; a family's own separator is '+'.
    assert split_scenarios("class:0,class:sample:3:1,random:1+10+50,classes:1,2") == (
        "class:0", "class:sample:3:1", "random:1+10+50", "classes:1,2")


def test_class_all_and_random_fractions_expand_to_their_members():
    members = parse_entry("class:all").members(10)
    assert _specs(members) == [f"class:{c}" for c in range(10)]
    assert {sc.family for sc in members} == {"class:all"} and {sc.kind for sc in members} == {"class"}
    members = parse_entry("random:1+10+50").members(10)
    assert _specs(members) == ["random:1", "random:10", "random:50"]
    assert all(sc.family == "random:1+10+50" for sc in members)
    # A member is the scenario listed alone but for its family tag (same spec: same split key).
    assert members[1].spec == parse_scenario("random:10").spec and parse_scenario("random:10").family == ""


def test_class_sample_is_deterministic_under_its_seed_and_not_the_run_seed():
    first = _specs(parse_entry("class:sample:3").members(10))
    assert first == _specs(parse_entry("class:sample:3").members(10)) == _specs(parse_entry("class:sample:3:0").members(10))
    classes = sample_classes(10, 3, 0)
    assert first == [f"class:{c}" for c in classes] and len(set(classes)) == 3 and all(0 <= c < 10 for c in classes)
    assert list(classes) == sorted(classes)
    # Nested: a smaller sample of one seed is part of a larger one; the rest is disjoint from it.
    assert set(sample_classes(10, 2, 0)) <= set(classes) <= set(sample_classes(10, 5, 0))
    # Another sampling seed draws another set (some seed of the first few does).
    assert any(sample_classes(10, 3, s) != classes for s in range(1, 5))
    assert sample_classes(10, 10, 4) == tuple(range(10))


def test_expansion_keeps_entry_order_and_one_scenario_per_entry():
    scenarios = expand_scenarios(["class:0", "class:sample:2", "random:1+10", "random:10", "class:0"], 10)
    sampled = [f"class:{c}" for c in sample_classes(10, 2, 0)]
    assert [(sc.spec, sc.family) for sc in scenarios] == [
        ("class:0", ""), *[(s, "class:sample:2") for s in sampled],
        ("random:1", "random:1+10"), ("random:10", "random:1+10"), ("random:10", "")]


@pytest.mark.parametrize("text, words", [
    ("class:sample:0", "samples no class"), ("class:sample:x", "malformed scenario family"),
    ("class:sample:3:", "malformed scenario family"), ("random:1+1", "repeats a percentage"),
    ("random:1+100", "'random:100': percentage must be in (0, 100)"), ("random:1+", "got ''"), ("random:1+x", "got 'x'"),
    ("class:all:3", "malformed scenario"),
])
def test_bad_family_specs_are_one_sentence_errors(text, words):
    with pytest.raises(ConfigError, match="^[^\n]*$") as err:
        parse_entry(text)
    assert words in str(err.value)


def test_a_sample_larger_than_the_class_count_is_an_error():
    with pytest.raises(ConfigError, match="samples 11 classes, but the dataset has 10"):
        parse_entry("class:sample:11").members(10)
    with pytest.raises(ConfigError, match="samples 11 classes"):
        parse_entry("class:sample:11", num_classes=10)
    parse_entry("class:sample:10", num_classes=10)  # every class: allowed
    # On the command line: one line, exit 2, no traceback, before anything runs.
    result = run_cli("run", "--scenarios", "class:0,class:sample:11", "--dry-run", "--out", "unused")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "class:sample:11" in result.stderr and "digits" in result.stderr


def test_a_family_is_a_grid_entry_not_a_single_scenario():
    with pytest.raises(ConfigError, match="is a scenario family"):
        parse_scenario("class:all")  # e.g. a [methods.NAME."class:all"] table: tables name one scenario


def test_dry_run_of_a_family_lists_its_members_jobs(tmp_path):
    result = run_cli("run", "--methods", "finetune", "--scenarios", "class:sample:2,random:1+10", "--seeds", "0",
                     "--set", "evaluation.attacks=svc", "--out", str(tmp_path), "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    sampled = [f"class:{c}" for c in sample_classes(10, 2, 0)]
    for member, family in [*((s, "class:sample:2") for s in sampled), ("random:1", "random:1+10"),
                           ("random:10", "random:1+10")]:
        assert f"evaluate finetune digits/small_cnn/{member}/seed 0 (family {family})" in out
        assert f"finetune digits/small_cnn/{member}/seed 0  [" in out  # its Unlearn
        assert f"finetune digits/small_cnn/{member}: " in out  # its resolved settings
    assert f"family class:sample:2 on digits: 2 forget sets: {', '.join(sampled)}" in out
    assert "family random:1+10 on digits: 2 forget sets: random:1, random:10" in out
    assert "Split: 4 jobs" in out


def test_members_share_every_job_with_the_scenario_alone_but_the_evaluate(tmp_path):
    from mubench.method_jobs import Evaluate
    from mubench.planner import build_plan
    from mubench.store import Store

    def plan(*scenarios):
        config = ExperimentConfig(scenarios=scenarios, seeds=(0,), methods=("finetune",), out=str(tmp_path),
                                  calibration=())
        return build_plan(config, Store(tmp_path))

    alone, both = plan("random:10"), plan("random:10", "random:1+10")
    assert both.families == {"digits": {"random:1+10": ("random:1", "random:10")}}
    assert alone.families == {}
    alone_keys = {j.key for j in alone.jobs}
    assert alone_keys <= {j.key for j in both.jobs}  # the plain scenario's keys are as before
    evaluations = [j for j in both.jobs if isinstance(j, Evaluate) and j.scenario == "random:10"]
    assert sorted(j.family for j in evaluations) == ["", "", "random:1+10", "random:1+10"]  # Retrain, finetune
    member = next(j for j in evaluations if j.family and j.method == "finetune")
    plain = next(j for j in evaluations if not j.family and j.method == "finetune")
    assert member.unlearn.key == plain.unlearn.key and member.key != plain.key
    assert member.reference.family == "random:1+10"  # the member's Retrain row names the family too
    assert member.identity()["family"] == "random:1+10" and plain.identity()["family"] is None


def test_tune_plans_a_family_by_its_members(tmp_path):
    """`mubench tune` takes family entries too: the cell of the kind searches every member."""
    from mubench.config import TuneConfig
    from mubench.tuning import plan_tune

    config = ExperimentConfig(scenarios=("random:1+10",), methods=("finetune",), out=str(tmp_path))
    tune = plan_tune(config, TuneConfig(budget=2), {}, {})
    (cell,) = tune.cells
    assert (cell.kind, cell.scenarios) == ("random", ["random:1", "random:10"])
    assert {scenario for keys in cell.keys for scenario, _seed in keys} == {"random:1", "random:10"}


def test_class_rest_is_the_complement_of_the_sample_of_the_same_seed():
    assert parse_entry("class:rest:4:2") == Family("class", sample=4, sample_seed=2, rest=True)
    assert parse_entry("class:rest:4:0").spec == "class:rest:4" and parse_entry("class:rest:4:2").spec == "class:rest:4:2"
    for seed in (0, 2):
        sample = {sc.classes[0] for sc in parse_entry(f"class:sample:4:{seed}").members(10)}
        rest = {sc.classes[0] for sc in parse_entry(f"class:rest:4:{seed}").members(10)}
        assert sample.isdisjoint(rest) and sample | rest == set(range(10)) and len(rest) == 6
        assert {sc.family for sc in parse_entry(f"class:rest:4:{seed}").members(10)} == {parse_entry(f"class:rest:4:{seed}").spec}
    with pytest.raises(ConfigError, match="the rest must keep a class"):
        parse_entry("class:rest:10").members(10)
    with pytest.raises(ConfigError, match="expected class:rest:K"):
        parse_entry("class:rest:")


def _tuning_specs(reported, given=()):
    from mubench.tuning import tuning_scenarios

    return [sc.spec for sc in tuning_scenarios(reported, given, 10)]


def test_tuning_forget_sets_default_to_classes_no_reported_scenario_forgets():
    """Issue 25: selection on forget sets disjoint from the reported ones. Each reported forget
    set gets one of its kind and size, from the classes none of them forgets; random forget sets
    keep their spec (the tuning seeds draw them)."""
    tuned = _tuning_specs(["class:0", "classes:1,2", "random:10"])
    assert tuned[2] == "random:10" and tuned[0].startswith("class:") and tuned[1].startswith("classes:")
    classes = [int(c) for spec in tuned[:2] for c in spec.split(":")[1].split(",")]
    assert len(classes) == 3 and len(set(classes)) == 3 and not set(classes) & {0, 1, 2}
    # Reported class:rest:K tunes on exactly class:sample:K, the classes it leaves out.
    assert sorted(_tuning_specs(["class:rest:4"])) == sorted(sc.spec for sc in parse_entry("class:sample:4").members(10))
    assert _tuning_specs(["class:0"]) == _tuning_specs(["class:0"])  # deterministic
    with pytest.raises(ConfigError, match="no class is left to tune"):
        _tuning_specs(["class:all"])
    with pytest.raises(ConfigError, match="is a chain"):
        _tuning_specs(["sequential:class:0+1"])


def test_tuning_refuses_to_select_on_a_reported_forget_set():
    with pytest.raises(ConfigError, match="'class:0' forgets class 0, which a reported scenario forgets"):
        _tuning_specs(["class:0"], ["class:0"])
    reported = sorted(sc.classes[0] for sc in parse_entry("class:rest:5").members(10))
    with pytest.raises(ConfigError, match=f"forgets class {reported[0]}"):
        _tuning_specs(["class:rest:5"], ["class:all"])
    with pytest.raises(ConfigError, match="forgets class 2"):
        _tuning_specs(["sequential:class:0+2"], ["classes:2,7"])  # a chain's classes are reported too
    assert _tuning_specs(["class:rest:5", "random:10"], ["class:sample:5", "random:10"]) == [
        *(sc.spec for sc in parse_entry("class:sample:5").members(10)), "random:10"]
    # On the command line: one sentence, exit 2, before anything runs.
    result = run_cli("tune", "--scenarios", "class:0", "--tune-scenarios", "class:0,class:1", "--dry-run",
                     "--out", "unused")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "forgets class 0" in result.stderr


def test_tune_runs_its_cells_on_the_tuning_forget_sets(tmp_path):
    from mubench.config import TuneConfig
    from mubench.tuning import plan_tune

    config = ExperimentConfig(scenarios=("class:0", "random:10"), methods=("finetune",), out=str(tmp_path))
    tune = plan_tune(config, TuneConfig(budget=2), {}, {})
    scenarios = {cell.kind: cell.scenarios for cell in tune.cells}
    assert scenarios == {"class": _tuning_specs(["class:0"])[:1], "random": ["random:10"]}
    assert "class:0" not in {s for keys in tune.cells[0].keys + tune.cells[1].keys for s, _seed in keys}


def _family_record(method, scenario, seed, ua, family="class:sample:2"):
    return {"key": f"{method}-{scenario}-{seed}", "dataset": "digits", "model": "small_cnn", "scenario": scenario,
            "scenario_kind": "class", "family": family, "seed": seed, "method": method, "method_version": 1,
            "display_name": method, "params": {}, "split_hash": f"{scenario}-{seed}",
            "retrain_key": f"retrain-{scenario}-{seed}", "device": "cpu", "finished": "2026-01-01T00:00:00",
            "status": "ok", "ua": ua, "ra": 99.0, "ta": 98.0, "mia_efficacy": 100.0, "rte_s": 1.0, "info": {}}


def test_family_aggregate_averages_forget_sets_within_a_seed_then_seeds(tmp_path):
    """Hand-computed: Retrain's UA is 100; FT's UA on class:1 / class:3 is 96 / 92 (seed 0),
    92 / 88 (seed 1), 88 / 84 (seed 2), so its per-seed gaps (UA term only, / 4) are 1, 2 on seed 0,
    2, 3 on seed 1, 3, 4 on seed 2: family means 1.5, 2.5, 3.5 → 2.50 ± 1.00 over seeds; the
    per-set means are 2 and 3 → 0.71 across sets. A seed missing a member is left out."""
    from mubench import report
    from mubench.report.families import family_comparison, family_table
    from mubench.store import Store

    store = Store(tmp_path)
    for seed in range(3):
        for scenario, ua in (("class:1", 96 - 4 * seed), ("class:3", 92 - 4 * seed)):
            for rec in (_family_record("retrain", scenario, seed, 100.0), _family_record("finetune", scenario, seed, ua),
                        _family_record("grad_ascent", scenario, seed, 100.0 - 0.4 * (seed + 1))):
                store.write_record("method", rec["key"], rec)
    rec = _family_record("grad_ascent", "class:1", 3, 50.0)  # seed 3: one member only
    store.write_record("method", rec["key"], rec)
    rec = _family_record("retrain", "class:1", 3, 100.0)
    store.write_record("method", rec["key"], rec)
    df = report.load_records(tmp_path)
    table = family_table(df).set_index("method")
    assert table.loc["FT", "Avg. Gap"] == "2.50 ± 1.00" and table.loc["FT", "UA"] == "90.00 ± 4.00"
    assert table.loc["FT", "Avg. Gap across sets"] == "0.71" and table.loc["FT", "forget sets"] == 2
    assert table.loc["FT", "seeds"] == "3/3" and table.loc["GA", "seeds"] == "3/4"  # seed 3 incomplete
    assert table.loc["GA", "Avg. Gap"] == "0.20 ± 0.10"  # 50.0 on seed 3 would move it
    assert set(table["family"]) == {"class:sample:2"}
    compared = family_comparison(df).set_index("variant")
    assert compared.loc["grad_ascent", "note"] == "best" and compared.loc["finetune", "mean_diff"] > 2
    # A grid without families has no family table (the report leaves the section out).
    assert family_table(df.assign(family=None)).empty


def test_a_forget_set_run_alone_and_in_a_family_keeps_both_records(tmp_path, monkeypatch):
    """class:1 run alone after the family class:sample:2 (same predictor, its own Evaluate): the
    per-cell table counts class:1 once per seed, and the family keeps both its members (the
    plain record used to supersede the member's, and the family lost a forget set)."""
    from mubench import report
    from mubench.report.families import family_table
    from mubench.store import Store

    store = Store(tmp_path)
    for seed in range(2):
        for scenario in ("class:1", "class:3"):
            for method, ua in (("retrain", 100.0), ("finetune", 90.0)):
                store.write_record("method", f"{method}-{scenario}-{seed}", _family_record(method, scenario, seed, ua))
        for method, ua in (("retrain", 100.0), ("finetune", 90.0)):  # later, alone
            rec = {**_family_record(method, "class:1", seed, ua), "family": None, "key": f"{method}-alone-{seed}",
                   "finished": "2026-02-01T00:00:00"}
            store.write_record("method", rec["key"], rec)
    df = report.load_records(tmp_path)
    assert not df["superseded"].any()  # no record is a re-run of another
    table = family_table(df).set_index("method")
    assert table.loc["FT", "forget sets"] == 2 and table.loc["FT", "seeds"] == "2/2"
    summary = report.summary_table(df).loc[("digits", "small_cnn", "class:1")]
    assert summary.loc["FT", "seeds"] == "2/2"  # not 4/2
    cur = report.records.current(df)
    assert len(cur[cur["scenario"].eq("class:1") & cur["method"].eq("finetune")]) == 2
    assert cur.loc[cur["scenario"].eq("class:1"), "family"].isna().all()  # the one listed alone
    # The figures get one record per (cell, variant, seed) too (FigureInput's contract; two made
    # the forget vector's δ figure of such a cell vanish).
    from mubench import plots

    seen = {}

    def no_figures(frame, *args, **kwargs):  # keeps what the report hands the figures, draws none
        seen["rows"] = frame
        return []

    monkeypatch.setattr(plots, "report_figures", no_figures)
    report.write_report(tmp_path, tmp_path / "report", formats=("md",))
    rows = seen["rows"][seen["rows"]["status"].eq("ok") & ~seen["rows"]["superseded"]]
    assert len(rows) == 8 and not rows.duplicated(["dataset", "model", "scenario", "variant", "seed"]).any()

    # A committed records.csv keeps both records and the family (it held neither column before).
    report.records.tidy(df).to_csv(tmp_path / "records.csv", index=False)
    again = report.load_records(tmp_path / "records.csv")
    assert len(again) == len(df) and family_table(again).set_index("method").loc["FT", "forget sets"] == 2
