"""Keys that cannot go stale (issue 28, item 5): a job's key changes with everything that changes
its output and with nothing else, checked field by field over every job type of a real plan.

The cases are generated, not listed: one digits plan with forget vectors (a Resource), both
per-example attacks (shadow splits and originals, reference models), the example plugin's
`CellModel` and the calibration rows gives one representative per concrete job type, and every
declared field of each (and its type's code `version`) is perturbed alone. A keyed field must
re-key the job and everything downstream of it and leave its dependencies alone; a display-only
field (`DISPLAY_ONLY`) must re-key nothing. A field added to a job or to `IGNORE` without
saying which it is therefore fails here, naming the job type and the field.

Derived models copy the fields of the cell's Original instead of holding it, so the graph does
not see that they depend on it: they are checked through their builders (`derived_jobs`), which
catches a field forgotten in a copy. The planner-level part builds plans from configs differing
in one setting and checks exactly which jobs re-key. Evaluation settings re-keying Evaluates
only is tests/test_job_graph.py::test_evaluation_settings_change_evaluate_keys_only, an attack
setting re-keying evaluation only is tests/test_ulira.py::test_the_sigma_rule_reruns_evaluation_only,
and class-wise references being shared by seeds is tests/test_reference_mia.py; not repeated here.
Nothing is trained: every check builds plans and hashes keys.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from mubench import method_jobs, plugins
from mubench.attacks import base as attacks_base
from mubench.attacks.base import AttackInput, AttackRun, CellJobs, cell_model
from mubench.attacks.refmia import ReferenceOriginal, reference_models
from mubench.attacks.ulira import ShadowSplit, shadow_cell
from mubench.config import EvaluationConfig, ExecutionConfig, ExperimentConfig
from mubench.jobs import Job, Original, Resource, RunContext, Split
from mubench.method_jobs import Evaluate, Unlearn, outputs_key
from mubench.planner import Plan, build_plan
from mubench.resources import RESOURCES
from mubench.store import Store
from mubench.unlearning import METHODS

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "attack_example.py")

# The plan the cases come from: every job type, two cells of each kind of scenario, two seeds.
CONFIG = ExperimentConfig(
    datasets=("digits",), scenarios=("class:0", "random:10+20"), seeds=(0, 1),
    methods=("retrain", "finetune", "forget_vector", "fv_arithmetic"), precision="fp32", plugins=(EXAMPLE,),
    evaluation=EvaluationConfig(attacks={"ulira": {"shadows": 2, "null_models": 2}, "refmia": {"models": 2},
                                         "conf_gap": {"seed": 7000}}),
    execution=ExecutionConfig(threads_per_worker=1))

# Fields that do not change a job's output (how it is displayed or where its data is read from;
# the data's content is the `data` hash). Everything else a job declares must be in its key.
DISPLAY_ONLY = {Original: {"data_options"}, Split: {"data_options"}, Unlearn: {"user_params"}}
# In IGNORE only so that Job.key_fields skips them: Evaluate.key_fields adds them back its own
# way (a tuned row is its own record; each attack's models under the attack's field; a family
# member's row is its own record, tests/test_families.py).
KEYED_BACK = {Evaluate: {"tuned", "attacks", "family"}}


def plan_of(config: ExperimentConfig) -> Plan:
    """The plan of `config` against an empty store (nothing cached, nothing run)."""
    with plugins.restored_registries(), tempfile.TemporaryDirectory() as root:
        return build_plan(config, Store(root))


def nested_jobs(value):
    """Every job inside `value`: itself, its fields, tuples and attack runs, recursively."""
    if isinstance(value, Job):
        yield value
        for f in dataclasses.fields(value):
            yield from nested_jobs(getattr(value, f.name))
    elif isinstance(value, AttackRun):
        yield from nested_jobs(value.models)
    elif isinstance(value, tuple):
        for v in value:
            yield from nested_jobs(v)


@functools.cache
def base_plan() -> Plan:
    """CONFIG's plan, every key (nested copies' too) computed now, before a test patches a version."""
    plan = plan_of(CONFIG)
    for job in plan.jobs:
        for nested in nested_jobs(job):
            assert nested.key
    return plan


@functools.cache
def dependants_index() -> dict[str, list[Job]]:
    """key → the plan's jobs that list it in deps() (Evaluate's include its attacks' models)."""
    index: dict[str, list[Job]] = {}
    for job in base_plan().jobs:
        for dep in job.deps():
            index.setdefault(dep.key, []).append(job)
    return index


def dependants(job: Job) -> list[Job]:
    """Every job of the plan that transitively depends on `job`."""
    seen: dict[str, Job] = {}
    todo = [job.key]
    while todo:
        for user in dependants_index().get(todo.pop(), []):
            if user.key not in seen:
                seen[user.key] = user
                todo.append(user.key)
    return list(seen.values())


def dependencies(job: Job) -> list[Job]:
    """Every job `job` transitively depends on."""
    seen: dict[str, Job] = {}
    todo = list(job.deps())
    while todo:
        dep = todo.pop()
        if dep.key not in seen:
            seen[dep.key] = dep
            todo.extend(dep.deps())
    return list(seen.values())


def rebuild(value, old_key: str | None = None, new: Job | None = None, memo: dict | None = None):
    """`value` built afresh (no cached key anywhere inside), the job keyed `old_key` replaced by
    `new` wherever it occurs: in fields, tuples and the models of Evaluate's attack runs."""
    memo = {} if memo is None else memo
    if isinstance(value, Job):
        if value.key == old_key:
            return new
        if id(value) not in memo:
            fields = {f.name: rebuild(getattr(value, f.name), old_key, new, memo) for f in dataclasses.fields(value)}
            memo[id(value)] = dataclasses.replace(value, **fields)
        return memo[id(value)]
    if isinstance(value, AttackRun):
        return dataclasses.replace(value, models=rebuild(value.models, old_key, new, memo))
    if isinstance(value, tuple):
        return tuple(rebuild(v, old_key, new, memo) for v in value)
    return value


def another(job: Job) -> Job:
    """A different job of the same type from the plan (what a Job-valued field is changed to)."""
    return next(j for j in base_plan().jobs if type(j) is type(job) and j.key != job.key)


def perturb(value):
    """A value of the same kind that differs from `value` (dicts: their first entry)."""
    if isinstance(value, Job):
        return another(value)
    if isinstance(value, AttackRun):  # the run's first model swapped for another of its type
        return dataclasses.replace(value, models=(another(value.models[0]), *value.models[1:]))
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "~"
    if isinstance(value, dict):
        return with_entry(value, next(iter(value))) if value else {"perturbed": True}
    if isinstance(value, (tuple, list)):
        return type(value)([perturb(value[0]), *value[1:]]) if value else type(value)(["perturbed"])
    if value is None:
        return "perturbed"
    raise TypeError(f"no perturbation for {type(value).__name__} {value!r}")


def with_entry(value: dict, entry: str) -> dict:
    return {**value, entry: perturb(value[entry])}


def with_field(job: Job, name: str, entry: str | None = None) -> Job:
    """`job` with field `name` (or one entry of it: a dict's key, an attack run's name) changed."""
    value = getattr(job, name)
    if entry is None:
        changed = perturb(value)
    elif isinstance(value, dict):
        changed = with_entry(value, entry)
    else:  # Evaluate.attacks: the run of attack `entry` gets another model
        changed = tuple(perturb(run) if run.name == entry else run for run in value)
    return dataclasses.replace(job, **{name: changed})


def display_only(job_type: type, name: str) -> bool:
    return any(name in fields for cls, fields in DISPLAY_ONLY.items() if issubclass(job_type, cls))


def representatives() -> dict[str, Job]:
    """One job per concrete type of the plan: the first with the most non-empty fields (a method's
    Evaluate with a reference, attacks and a tuned stamp; an Unlearn with resources)."""
    out: dict[str, Job] = {}
    for job in base_plan().jobs:
        best = out.get(type(job).__name__)
        if best is None or filled(job) > filled(best):
            out[type(job).__name__] = job
    return out


def filled(job: Job) -> int:
    return sum(bool(getattr(job, f.name)) for f in dataclasses.fields(job))


def field_cases(job: Job, keyed: bool) -> list:
    """(type, field, entry) of each keyed (or each display-only) field of `job`: a keyed dict per
    entry, Evaluate's attacks per attack run that reads models."""
    cases = []
    for f in dataclasses.fields(job):
        if display_only(type(job), f.name) == keyed:
            continue
        value = getattr(job, f.name)
        if keyed and isinstance(value, dict) and value:
            entries = list(value)
        elif keyed and isinstance(value, tuple) and value and all(isinstance(v, AttackRun) for v in value):
            entries = [run.name for run in value if run.models]
        else:
            entries = [None]
        name = type(job).__name__
        cases += [pytest.param(name, f.name, e, id=f"{name}.{f.name}" + (f"[{e}]" if e else "")) for e in entries]
    return cases


REPRESENTATIVES = representatives()
KEYED = [c for job in REPRESENTATIVES.values() for c in field_cases(job, keyed=True)]
IGNORED = [c for job in REPRESENTATIVES.values() for c in field_cases(job, keyed=False)]


def test_the_plan_has_every_job_type():
    """The generated cases cover what they claim: a change to CONFIG that loses a type fails here."""
    assert set(REPRESENTATIVES) == {"Original", "Split", "Resource", "Unlearn", "Evaluate", "ShadowSplit",
                                    "ShadowOriginal", "ReferenceOriginal", "CellModel"}
    evaluate = REPRESENTATIVES["Evaluate"]
    assert evaluate.reference is not None and evaluate.tuned and {r.name for r in evaluate.attacks if r.models} == {
        "refmia", "ulira", "conf_gap"}
    assert REPRESENTATIVES["Unlearn"].resources


@pytest.mark.parametrize("job_type", sorted({type(j) for j in base_plan().jobs}, key=lambda t: t.__name__),
                         ids=lambda t: t.__name__)
def test_every_ignored_field_is_display_only_or_keyed_back(job_type):
    """IGNORE says a field does not change the output; that has to be one of the documented
    display-only fields (or one Evaluate keys its own way), not a field quietly dropped."""
    undocumented = [name for name in job_type.IGNORE
                    if not display_only(job_type, name) and name not in KEYED_BACK.get(job_type, ())]
    assert not undocumented, f"{job_type.__name__}.IGNORE drops {undocumented} from its key"


def test_attack_models_are_keyed_beside_the_evaluate_fields_not_over_them():
    """Evaluate.key_fields lists each attack's models under its `deps_field` (default: its name):
    an attack called e.g. "reference" would overwrite Retrain's key in every Evaluate key."""
    for evaluate in base_plan().evaluations():
        own = set(Job.key_fields(evaluate))
        fields = [run.deps_field for run in evaluate.attacks if run.models]
        assert own.isdisjoint(fields) and len(set(fields)) == len(fields), evaluate.label


def assert_rekeys_downstream(job: Job, changed: Job) -> None:
    """Every job downstream of `job` re-keys when it holds `changed` instead."""
    memo: dict = {}
    for user in dependants(job):
        assert rebuild(user, job.key, changed, memo).key != user.key, f"{type(user).__name__} {user.label}"


def assert_dependencies_kept(job: Job, skip: type | None = None) -> None:
    """Every dependency of `job`, built afresh, keeps its plan key (unless it is a `skip`)."""
    for dep in dependencies(job):
        if skip is None or not isinstance(dep, skip):
            assert rebuild(dep).key == dep.key, f"{type(dep).__name__} {dep.label}"


@pytest.mark.parametrize(("job_type", "name", "entry"), KEYED)
def test_a_keyed_field_rekeys_the_job_and_everything_downstream(job_type, name, entry):
    """A field that changes the output re-keys the job and every job reading it, nothing upstream."""
    job = REPRESENTATIVES[job_type]
    changed = with_field(job, name, entry)
    assert changed.key != job.key
    assert_rekeys_downstream(job, changed)
    assert_dependencies_kept(job)


@pytest.mark.parametrize(("job_type", "name", "entry"), IGNORED)
def test_a_display_only_field_rekeys_nothing(job_type, name, entry):
    """A display-only field reruns nothing: not the job, not a job downstream of it."""
    job = REPRESENTATIVES[job_type]
    changed = with_field(job, name, entry)
    assert changed.key == job.key
    memo: dict = {}
    for user in dependants(job):
        assert rebuild(user, job.key, changed, memo).key == user.key, f"{type(user).__name__} {user.label}"


@pytest.mark.parametrize("job_type", sorted(REPRESENTATIVES), ids=lambda t: f"{t}.version")
def test_a_code_version_bump_rekeys_the_job_and_everything_downstream(job_type, monkeypatch):
    """`version` is a class attribute: patched, every fresh object of the type (subclasses that
    do not set their own included) keys differently."""
    job = REPRESENTATIVES[job_type]
    monkeypatch.setattr(type(job), "version", type(job).version + "+1")
    changed = rebuild(job)
    assert changed.key != job.key
    assert_rekeys_downstream(job, changed)
    assert_dependencies_kept(job, skip=type(job))  # Retrain's Evaluate is an Evaluate too


class _KeySeen(Exception):
    pass


class _KeyStore:
    """A store that answers a load by raising the key it was asked for."""

    def load_artifact(self, kind, key):
        raise _KeySeen(key)


def model_outputs_key(job: Job) -> str:
    """The key AttackInput.outputs_of caches an attack model's outputs under."""
    split = SimpleNamespace(hash="split-hash")
    inp = AttackInput(RunContext(_KeyStore(), None), None, split, 0, None, None, ())
    with pytest.raises(_KeySeen) as seen:
        inp.outputs_of(job)
    return str(seen.value)


@pytest.mark.parametrize(("module", "constant", "key_of", "job_type", "name"), [
    pytest.param(method_jobs, "OUTPUTS_VERSION", outputs_key, "Unlearn", "precision", id="outputs_key"),
    pytest.param(attacks_base, "MODEL_OUTPUTS_VERSION", model_outputs_key, "ReferenceOriginal", "seed",
                 id="model_outputs"),
])
def test_cached_outputs_rekey_with_their_version_and_their_job(module, constant, key_of, job_type, name, monkeypatch):
    """The forward passes' caches (not jobs) are keyed by the job and the forward's own version."""
    job = REPRESENTATIVES[job_type]
    before = key_of(job)
    assert key_of(with_field(job, name)) != before
    monkeypatch.setattr(module, constant, getattr(module, constant) + "+1")
    assert key_of(job) != before


# ---------------------------------------------------------------------------------------------
# Derived jobs: built by copying the cell's Original (and Split) fields, not by holding them


def derived_jobs(original: Original, split: Split, kind: str) -> dict[str, list[Job]]:
    """The jobs each builder makes of a cell: what shadows, references and cell models copy."""
    cell = CellJobs(original, split, kind, "finetune", rerun=None)
    pairs = shadow_cell(original, split, 2)
    return {"ShadowSplit": [s for _, s in pairs], "ShadowOriginal": [o for o, _ in pairs],
            "ReferenceOriginal": reference_models(original, split, kind, 2),
            "CellModel": [cell_model(cell, "conf_gap", 7000)]}


# (derived type, source field) that stay by design: references and cell models have seeds of
# their own; class-wise references train on the seed-0 split, shared by every seed (refmia.py).
OWN_SEED = {("ReferenceOriginal", "Original.seed"), ("CellModel", "Original.seed"),
            ("ReferenceOriginal", "Split.seed", "class")}
DERIVED_FROM = {"Original": ("ShadowOriginal", "ReferenceOriginal", "CellModel"),
                "Split": ("ShadowSplit", "ShadowOriginal", "ReferenceOriginal", "CellModel")}


def cell(kind: str) -> tuple[Original, Split]:
    """The seed-0 Original and its Split of the plan's `kind` scenario."""
    split = next(j for j in base_plan().jobs if type(j) is Split and j.seed == 0 and j.scenario.startswith(kind))
    original = next(j for j in base_plan().jobs if type(j) is Original and j.seed == 0)
    return original, split


def derived_cases() -> list:
    cases = []
    for kind in ("class", "random"):
        for source, job in zip(("Original", "Split"), cell(kind), strict=True):
            for param in field_cases(job, keyed=True):
                _, name, entry = param.values
                for derived in DERIVED_FROM[source]:
                    cases.append(pytest.param(kind, source, name, entry, derived,
                                              id=f"{derived}<-{param.id}({kind})"))
    return cases


@pytest.mark.parametrize(("kind", "source", "name", "entry", "derived"), derived_cases())
def test_derived_jobs_rekey_with_every_key_field_of_the_cells_original_and_split(kind, source, name, entry, derived):
    """A model trained like the cell's Original re-keys with each of its key fields (only its
    seed is its own): the check that catches a field a builder forgot to copy."""
    original, split = cell(kind)
    before = derived_jobs(original, split, kind)[derived]
    if source == "Original":
        original = with_field(original, name, entry)
    else:
        split = with_field(split, name, entry)
    after = derived_jobs(original, split, kind)[derived]
    changed = [a.key != b.key for a, b in zip(after, before, strict=True)]
    by_design = {(derived, f"{source}.{name}"), (derived, f"{source}.{name}", kind)} & OWN_SEED
    assert changed == [not by_design] * len(before)


def test_every_derived_type_of_the_plan_has_a_builder_here():
    """A new job type derived from Original or Split needs its builder in `derived_jobs`."""
    derived = {type(j).__name__ for j in base_plan().jobs if type(j) not in (Original, Split)
               and isinstance(j, (Original, Split))}
    assert derived == set(derived_jobs(*cell("random"), "random"))


def test_derived_jobs_of_the_plan_copy_every_field_but_the_seed():
    """Display-only fields are not keyed, so only equality catches one a copy forgot (a shadow
    original loading its data with other options)."""
    def copied(job: Job, cls: type) -> dict:
        return {f.name: getattr(job, f.name) for f in dataclasses.fields(cls) if f.name != "seed"}

    originals = [copied(j, Original) for j in base_plan().jobs if type(j) is Original]
    for job in base_plan().jobs:
        if isinstance(job, Original) and type(job) is not Original:
            assert copied(job, Original) in originals, job.label
        if isinstance(job, ShadowSplit):
            assert {**copied(job, Split), "seed": job.seed} == {**copied(job.base, Split), "seed": job.base.seed}


# ---------------------------------------------------------------------------------------------
# Planner level: which jobs one setting re-keys

PLANNER = dataclasses.replace(CONFIG, seeds=(0,))


def downstream_of(root):
    """A job re-keys iff it or one of its dependencies is a `root`."""
    return lambda j: root(j) or any(root(d) for d in dependencies(j))


def class_wise_reference(j: Job) -> bool:
    """Jobs that name no reporting seed: class-wise references and the seed-0 split they train on."""
    if isinstance(j, ReferenceOriginal):
        return j.split.scenario.startswith("class")
    return type(j) is Split and j.seed == 0 and j.scenario.startswith("class")


def bump_method(monkeypatch, name="finetune"):
    monkeypatch.setattr(METHODS.get(name), "version", METHODS.get(name).version + "+1")


def bump_resource(monkeypatch, name="fv_bank"):
    entry = RESOURCES._entries[name]
    bumped = dataclasses.replace(entry.obj, version=entry.obj.version + "+1")
    monkeypatch.setitem(RESOURCES._entries, name, dataclasses.replace(entry, obj=bumped))


def bump_attack(monkeypatch, name="refmia"):
    cls = attacks_base.ATTACKS.get(name)
    monkeypatch.setattr(cls, "version", cls.version + "+1")


def not_a_split(j: Job) -> bool:
    """Everything but index arithmetic: every job that trains on, or reads, a model."""
    return not isinstance(j, Split)


# name → (config changes, a patch of the code, which jobs of PLANNER's plan re-key)
SETTINGS = {
    "precision bf16": ({"precision": "bf16"}, None, not_a_split),
    "2 CPU threads": ({"execution": ExecutionConfig(threads_per_worker=2)}, None, not_a_split),
    "recipe epochs": ({"recipe": {"epochs": 29}}, None, not_a_split),
    "seed 1": ({"seeds": (1,)}, None, lambda j: not class_wise_reference(j)),
    "train subset": ({"train_subset": 400}, None, lambda j: True),  # other data: its `data` hash
    "data root": ({"data_root": "/elsewhere"}, None, lambda j: False),  # the same data read elsewhere
    "finetune lr": ({"method_params": {"finetune": {"lr": 0.01}}}, None,
                    downstream_of(lambda j: isinstance(j, Unlearn) and j.method == "finetune")),
    "bank epochs": ({"bank": {"epochs": 7}}, None, downstream_of(lambda j: isinstance(j, Resource))),
    "finetune version": ({}, bump_method, downstream_of(lambda j: isinstance(j, Unlearn) and j.method == "finetune")),
    "fv_bank version": ({}, bump_resource, downstream_of(lambda j: isinstance(j, Resource))),
    # every Evaluate of the dataset shares its settings, Retrain's own included (it reads none)
    "refmia version": ({}, bump_attack, lambda j: isinstance(j, Evaluate)),
}


@functools.cache
def planner_base() -> Plan:
    return plan_of(PLANNER)


@pytest.mark.parametrize("setting", SETTINGS)
def test_one_setting_rekeys_exactly_the_jobs_it_changes(setting, monkeypatch):
    """Through the planner: the jobs one setting (or one code version) re-keys are exactly those
    it changes the output of, so a rerun recomputes those and finds every other job cached."""
    changes, patch, rekeyed = SETTINGS[setting]
    before = planner_base()
    if patch:
        patch(monkeypatch)
    after = plan_of(dataclasses.replace(PLANNER, **changes))
    keys = {j.key for j in after.jobs}
    wrong = [f"{type(j).__name__} {j.label}: {'kept' if j.key in keys else 're-keyed'}"
             for j in before.jobs if (j.key not in keys) != rekeyed(j)]
    assert not wrong, "\n".join(wrong)
