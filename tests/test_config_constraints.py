"""Constraints as data for configuration too: every field of every config table declares its
default, its constraint and a help line (`param`), one function checks them (`apply_overrides`),
and this one generated test covers every table (scikit-learn's `generate_invalid_param_val`)."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest

from mubench.attacks import ATTACKS
from mubench.config import EvaluationConfig, ExecutionConfig, ExperimentConfig, TuneConfig
from mubench.config_toml import config_from_dict
from mubench.errors import ConfigError
from mubench.params import apply_overrides
from mubench.plugins import load_plugins
from mubench.testing import bad_value
from mubench.training import OptimSpec, Recipe, recipe_with

load_plugins()
# table name → its dataclass (the [recipe] table holds Recipe's and OptimSpec's fields, flat)
TABLES = {"recipe": Recipe, "recipe.optim": OptimSpec, "execution": ExecutionConfig, "evaluation": EvaluationConfig,
          "tune": TuneConfig, "experiment": ExperimentConfig,
          **{f"evaluation.attacks.{e.name}": e.obj.Params for e in ATTACKS.entries()}}
NESTED = {"optim", "tune", "evaluation", "execution", "source"}  # tables of their own, or not user input
CASES = [(table, f) for table, cls in TABLES.items() for f in dataclasses.fields(cls) if f.name not in NESTED]


def _wrong_type(tp):
    """A value of the wrong kind for a field's annotation."""
    origin = typing.get_origin(tp)
    if tp is str:
        return 3
    if tp is dict or origin is dict:
        return [1]
    if origin is tuple:
        return 7
    return "not-a-value"  # numbers and switches


@pytest.mark.parametrize(("table", "field"), CASES, ids=[f"{t}.{f.name}" for t, f in CASES])
def test_every_field_declares_a_help_line_and_rejects_bad_values_naming_itself(table, field):
    cls = TABLES[table]
    assert field.metadata.get("help"), f"[{table}] {field.name}: declare it with param(default, check, help)"
    tp = typing.get_type_hints(cls)[field.name]
    for value in (v for v in (bad_value(field.metadata.get("check"), tp), _wrong_type(tp)) if v is not None):
        with pytest.raises(ConfigError, match=rf"^T \[{re.escape(table)}\]: {field.name!r} must be .*; got {re.escape(repr(value))}$"):
            apply_overrides(cls(), {field.name: value}, f"T [{table}]", "key")


FILE_TABLES = ("recipe", "execution", "evaluation", "tune", "experiment")


def _read(table: str, values: dict):
    """A config file holding one table; [recipe] is checked over a recipe, as the planner does."""
    config = config_from_dict({table: values}, "x.toml")
    if table == "recipe":
        recipe_with(Recipe(), config.recipe, "x.toml [recipe]")
    return config


@pytest.mark.parametrize("table", FILE_TABLES)
def test_a_config_file_names_the_file_the_table_and_the_bad_value(table):
    cls = TABLES[table]
    types = typing.get_type_hints(cls)
    field = next(f for f in dataclasses.fields(cls)
                 if f.name not in NESTED and bad_value(f.metadata.get("check"), types[f.name]) is not None)
    value = bad_value(field.metadata.get("check"), types[field.name])
    with pytest.raises(ConfigError, match=rf"^x.toml \[{table}\]: {field.name!r} must be .*; got {re.escape(repr(value))}$"):
        _read(table, {field.name: value})


@pytest.mark.parametrize("table", FILE_TABLES)
def test_an_unknown_key_gets_a_suggestion(table):
    name = next(f.name for f in dataclasses.fields(TABLES[table]) if f.name not in NESTED and len(f.name) > 4)
    with pytest.raises(ConfigError, match=rf"unknown (key|field) {name[:-1]!r}; did you mean {name!r}"):
        _read(table, {name[:-1]: 1})
