"""The attack contract: what a membership or recovery attack declares, and the registry it joins.

An attack is a class registered under a snake_case name (`@register_attack`) with

- `Params`: a frozen dataclass of `param(default, check, help)` fields, its configured instance's
  table (`[evaluation.attacks.ulira] shadows = 16`), validated by `params.apply_overrides`;
- `jobs(cell)`: the models it needs for one audited method run of a cell, as ordinary jobs. Models
  shared by every method of a cell (reference models) are the same jobs for each method and merge
  by key; per-run models (U-LiRA's shadow runs) come from `cell.rerun(original, split)`, the
  audited method with its own settings on another original and split. Their whole dependency
  closure is planned, so an attack returns only what it reads;
- `score(inp)`: the record fields computed at Evaluate time from stored outputs only (the audited
  predictor's, the cell's Retrain's, and its models' through `inp.outputs_of`);
- `columns`: its report columns (record field → `Column`), each with its ideal and, where the
  attack measures one, the record fields of its null band;
- `key_fields()`: what its instance adds to Evaluate keys (default: `{name: params}`), so an
  attack turned on re-runs evaluation only, and one that is off leaves keys as they were.

Evaluate asks this registry and nothing else names an attack. The SVC of SPEC §5 is an attack with
no models whose numbers are metrics (they enter the Avg. Gap, so every row computes them);
U-LiRA (`ulira.py`) and the reference-model screen (`refmia.py`) are plugins like any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError, UnknownNameError
from ..jobs import Job, Original, RunContext, Split, original_fields
from ..outputs import SplitOutputs, forward_split, load_outputs, save_outputs
from ..params import apply_overrides
from ..registry import Registry
from ..store import stable_hash

ATTACKS = Registry("attack")
MODEL_OUTPUTS_VERSION = "1"  # bump when an attack model's forward pass changes


@dataclass(frozen=True)
class NoParams:
    """The table of an attack without settings."""


@dataclass(frozen=True)
class Column:
    """A report column of an attack: its label, its ideal, and where its null band is recorded."""

    label: str  # e.g. "Ref-MIA AUC"
    ideal: str = ""  # the value an unlearned predictor indistinguishable from Retrain reads
    summary: bool = False  # shown in the summary table (else only in the attacks' side-by-side)
    side: str | None = ""  # side-by-side header ("" → label and ideal; None → not shown there)
    null: tuple[str, str] | None = None  # record fields (low, high) of what a never-trained model reads

    @property
    def summary_header(self) -> str:
        """Its header, stating the ideal: for a column with a null band, inside it (two-sided: an
        AUC below the band identifies the target as surely as one above it)."""
        if self.null:
            return f"{self.label} (ideal: inside null band)"
        return f"{self.label} (ideal {self.ideal})" if self.ideal else self.label

    @property
    def side_header(self) -> str:
        return self.side or (f"{self.label} ({self.ideal})" if self.ideal else self.label)


@dataclass(frozen=True)
class CellJobs:
    """What an attack plans its models from: one audited method run of a cell."""

    original: Original
    split: Split
    kind: str  # the scenario kind (class, random, ...)
    method: str
    rerun: Callable[[Original, Split], Job]  # the audited method, same settings, on another original / split


@dataclass(frozen=True)
class AttackRun:
    """A configured attack as an Evaluate carries it: plain data, so every backend can send it."""

    name: str
    params: dict
    models: tuple[Job, ...] = ()
    deps_field: str = ""  # the Evaluate key field that lists its models' keys

    def attack(self) -> Attack:
        return ATTACKS.get(self.name).configured(self.params)


@dataclass(frozen=True)
class AttackInput:
    """What `score` reads: stored outputs, never a model of the method under audit."""

    ctx: RunContext
    data: Any  # ImageData
    split: Any  # scenarios.Split of the cell
    seed: int
    outputs: SplitOutputs  # the audited predictor's
    retrain: SplitOutputs  # the cell's Retrain's
    models: tuple[Job, ...]  # what `jobs` returned, finished

    def outputs_of(self, job: Job, parts: tuple[str, ...] = ("forget",)) -> SplitOutputs:
        """A model's outputs on parts of the cell's split, cached in the store ("outputs")."""
        key = stable_hash({"model_outputs": job.key, "split": self.split.hash, "parts": list(parts),
                           "v": MODEL_OUTPUTS_VERSION})
        state = self.ctx.store.load_artifact("outputs", key)
        if state is not None:
            return load_outputs(state)
        out = forward_split(job.predictor(self.ctx), self.data, self.split, self.ctx.device, parts=parts)
        self.ctx.store.save_artifact("outputs", key, save_outputs(out))
        return out


class Attack:
    """Base of the attacks; subclasses set the class attributes and override what they need."""

    name: ClassVar[str] = ""  # set by @register_attack; the prefix of its record fields
    label: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    columns: ClassVar[Mapping[str, Column]] = {}
    rank: ClassVar[int] = 100  # column order in reports (lower first)
    always: ClassVar[bool] = False  # runs in every evaluation, configured or not (the SVC)
    deps_field: ClassVar[str] = ""  # Evaluate key field of its models' keys ("" → its name)
    # Record field (a % of D_f the attack could not read) → the flag reports show when a row's mean
    # reaches DEGENERATE_SHARE, its text formatted with that share (e.g. U-LiRA's saturated shadows).
    degenerate: ClassVar[Mapping[str, str]] = {}
    # Bump when `score` (or the statistics it calls) changes what it writes: Evaluate keys hold it
    # from "2" on, so version 1 keys as attacks did before they had versions (no record re-runs).
    version: ClassVar[str] = "1"

    def __init__(self, params=None):
        self.params = params if params is not None else self.Params()

    @classmethod
    def configured(cls, table: Mapping[str, Any], where: str = "") -> Attack:
        """An instance from its config table, converted and checked like a method's Params."""
        return cls(apply_overrides(cls.Params(), dict(table), where or f"[evaluation.attacks.{cls.name}]"))

    def key_fields(self) -> dict:
        """What this instance's settings add to Evaluate keys: under its name (none if it has none)."""
        values = dataclasses.asdict(self.params)
        return {self.name: values} if values else {}

    def keyed(self) -> dict:
        """What the planner puts in Evaluate keys: `key_fields()` and, once bumped, the code version
        (subclasses override `key_fields`, never this, so no attack can leave its version out)."""
        fields = self.key_fields()
        if self.version != "1":
            fields[f"{self.name}_code_version"] = self.version
        return fields

    def jobs(self, cell: CellJobs) -> tuple[Job, ...]:
        """The models this attack reads for one audited method run (none by default)."""
        return ()

    def score(self, inp: AttackInput) -> dict:
        """Record fields from stored outputs (none by default: e.g. the SVC's are metrics)."""
        return {}

    @classmethod
    def describe(cls, rows) -> dict:
        """Per-row text columns of the side-by-side (e.g. which σ rule made a number): name → Series."""
        return {}

    def run(self, cell: CellJobs) -> AttackRun:
        """This instance for one audited run: its name, its settings and the models it reads."""
        return AttackRun(self.name, dataclasses.asdict(self.params), tuple(self.jobs(cell)),
                         self.deps_field or self.name)


def register_attack(name: str):
    """Class decorator: `@register_attack("ulira")` (a duplicate name is an error naming both files)."""

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, Attack)):
            raise TypeError(f"@register_attack({name!r}) decorates a subclass of mubench.attacks.Attack")
        cls.name = name
        ATTACKS.add(name, cls, description=cls.label or None)
        return cls

    return decorate


def attack_order(names) -> list[str]:
    """The attacks that run: always-on ones first, then by name (the order Evaluate keys list them)."""
    names = dict.fromkeys(names)
    always = [e.name for e in ATTACKS.entries() if e.obj.always]
    return always + sorted(n for n in names if n not in always)


def configure(tables: Mapping[str, Mapping], source: str = "") -> list[Attack]:
    """The instances of `{name: table}`, always-on attacks included, in `attack_order`; an unknown
    name or a bad value is one ConfigError naming the attack's table (and the file, `source`)."""
    prefix = f"{source} " if source and source != "defaults" else ""
    for name in tables:
        try:
            ATTACKS.entry(name)
        except UnknownNameError as err:
            raise ConfigError(f"{prefix}[evaluation] attacks: {err}") from None
    return [ATTACKS.get(n).configured(tables.get(n, {}), f"{prefix}[evaluation.attacks.{n}]")
            for n in attack_order(tables)]


def report_columns(kind: str = "summary") -> dict[str, str]:
    """Record field → header of every registered attack's columns, by rank: the summary table's
    (`kind="summary"`) or the attacks' side-by-side (`kind="side"`)."""
    out = {}
    for cls in sorted((e.obj for e in ATTACKS.entries()), key=lambda c: (c.rank, c.name)):
        for name, col in cls.columns.items():
            if kind == "summary" and col.summary:
                out[name] = col.summary_header
            elif kind == "side" and col.side is not None:
                out[name] = col.side_header
    return out


def degenerate_fields() -> dict[str, str]:
    """Record field → degenerate-attack flag text, for every registered attack that declares one."""
    return {name: text for e in ATTACKS.entries() for name, text in e.obj.degenerate.items()}


def null_bands() -> dict[str, tuple[str, str]]:
    """Record field → the fields (low, high) of its null band, for every column that has one."""
    return {name: col.null for e in ATTACKS.entries() for name, col in e.obj.columns.items() if col.null}


@dataclass(frozen=True)
class CellModel(Original):
    """The cell's recipe trained on one part of a split with its own seed: a model an attack
    needs per cell (a reference model, a calibration model), keyed like an original with its
    owner's name in the key, so two attacks never share one by accident."""

    split: Split | None = None
    part: str = "retain"  # "retain", or "retain+forget" (the original's training set)
    owner: str = ""  # the attack that asked for it

    @property
    def label(self) -> str:
        return f"{self.owner} model {self.dataset}/{self.model}/{self.split.scenario}/seed {self.seed}"

    def load(self, ctx: RunContext):
        split = self.split.load(ctx.store)
        indices = split.retain if self.part == "retain" else np.concatenate([split.retain, split.forget])
        return self._fit_on_training_subset(ctx, indices)


def cell_model(cell: CellJobs, owner: str, seed: int, part: str = "retain") -> CellModel:
    """A `CellModel` of `cell`'s original (its data, architecture and recipe) with `seed`."""
    o = cell.original
    return CellModel(**{**original_fields(o), "seed": seed}, split=cell.split, part=part, owner=owner)

