"""Config: TOML < flags layering, --set parsing, one-sentence errors for bad values."""

import pytest

from mubench.config import ExperimentConfig, parse_set_options, with_overrides
from mubench.config_toml import config_from_dict, load_config
from mubench.errors import ConfigError


def test_defaults_are_the_embedded_digits_grid():
    c = ExperimentConfig()
    assert c.datasets == ("digits",)
    assert c.scenarios == ("class:0", "random:10")
    assert c.seeds == (0, 1, 2)
    assert c.methods == ("all",)


def test_toml_file_then_flags_override(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('[experiment]\nseeds = [4, 5]\nscenarios = ["class:2"]\n'
                    '[methods.salun]\nlr = 0.5\n[execution]\njobs = 3\n')
    c = load_config(path)
    assert c.seeds == (4, 5) and c.scenarios == ("class:2",)
    assert c.method_params == {"salun": {"lr": 0.5}}
    assert c.execution.jobs == 3
    c2 = with_overrides(c, seeds=(7,), execution_jobs=1, scenarios=None)
    assert c2.seeds == (7,) and c2.execution.jobs == 1
    assert c2.scenarios == ("class:2",)  # a flag that was not given does not mask the file


@pytest.mark.parametrize("doc, words", [
    ({"experimnt": {}}, ["unknown section", "experimnt"]),
    ({"experiment": {"seed": [1]}}, ["unknown key", "'seed'"]),
    ({"experiment": {"seeds": ["a"]}}, ["seeds", "int"]),
    ({"execution": {"jobs": "two"}}, ["jobs", "integer"]),
    ({"execution": {"bogus": 1}}, ["[execution]", "bogus"]),
])
def test_bad_config_values_are_one_clear_error(doc, words):
    with pytest.raises(ConfigError) as err:
        config_from_dict(doc, "run.toml")
    for w in words:
        assert w in str(err.value)
    assert "run.toml" in str(err.value)


def test_set_options():
    assert parse_set_options(["salun.lr=0.02", "recipe.epochs=5", "salun.epochs=3"]) == {
        "salun": {"lr": "0.02", "epochs": "3"}, "recipe": {"epochs": "5"}}
    with pytest.raises(ConfigError, match="METHOD.FIELD=VALUE"):
        parse_set_options(["lr=0.02"])


def test_shipped_example_configs_load():
    from pathlib import Path

    files = sorted(Path(__file__).parents[1].joinpath("experiments").glob("*.toml"))
    assert {f.stem for f in files} >= {"default", "fashion-mnist", "cifar10-paper", "imagenet10-paper"}
    for f in files:
        assert load_config(f).datasets
