"""Methods from `--plugin` files: good ones load, broken ones are reported without stopping the rest."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mubench import plugins
from mubench import testing as kit
from mubench.cli import main
from mubench.errors import PluginError
from mubench.unlearning import METHODS

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "plugin_example.py"

GOOD = '''
from dataclasses import dataclass
from mubench.params import Interval, param
from mubench.predictor import Predictor, frozen_copy
from mubench.unlearning import Method, register_method

@dataclass(frozen=True)
class P:
    scale: float = param(1.0, Interval(0, None, "neither"), "logit scale")

@register_method("{name}")
class Scaled(Method):
    """Return a copy of the original unchanged (a toy)."""
    Params = P
    def unlearn(self, task):
        model = frozen_copy(task.original)
        return Predictor(model)
'''

BROKEN = {
    "import_error": ("import mubench_no_such_module\n", "ModuleNotFoundError"),  # reason at line 1
    "no_unlearn": ('''
from dataclasses import dataclass
from mubench.unlearning import register_method
@dataclass(frozen=True)
class P:
    pass
@register_method("no_unlearn")
class NoUnlearn:
    """No unlearn method."""
    Params = P
''', "has no unlearn(task) method"),
    "bad_defaults": ('''
from dataclasses import dataclass
from mubench.params import Interval, param
from mubench.unlearning import EpochMethod, register_method
@dataclass(frozen=True)
class P:
    lr: float = param(-1.0, Interval(0, None, "neither"), "learning rate")
@register_method("bad_defaults")
class Bad(EpochMethod):
    """Negative default lr."""
    Params = P
''', "'lr' must be a number in (0, inf); got -1.0"),
    "duplicate": (GOOD.format(name="finetune"), "registered twice"),
}


@pytest.fixture()
def isolated_registry():
    """Plugins loaded in-process are removed again, so other tests see only the built-ins."""
    plugins.load_methods()
    entries, broken = dict(METHODS._entries), dict(METHODS.broken)
    loaded = set(plugins._loaded_sources)
    yield
    METHODS._entries.clear()
    METHODS._entries.update(entries)
    METHODS.broken.clear()
    METHODS.broken.update(broken)
    plugins._loaded_sources.clear()
    plugins._loaded_sources.update(loaded)


def _write(tmp_path, stem, text) -> Path:
    path = tmp_path / f"{stem}.py"
    path.write_text(textwrap.dedent(text))
    return path


def test_cli_lists_baselines_and_a_plugin_in_a_fresh_process(tmp_path):
    good = _write(tmp_path, "good", GOOD.format(name="toy_scale"))
    broken = _write(tmp_path, "import_error", BROKEN["import_error"][0])
    out = subprocess.run([sys.executable, "-m", "mubench", "list", "methods", "--plugin", str(good),
                          "--plugin", str(broken)], capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    for name in ("retrain", "finetune", "grad_ascent", "random_label", "l1_sparse", "salun", "toy_scale"):
        assert f"\n  {name} " in out
    assert "sparsity       float  = 0.5" in out and "mask_mode      str    = 'hard'" in out
    assert "lr             float  = 0.013" in out  # salun's own default
    assert f"(unavailable)    {broken}: ModuleNotFoundError" in out


def test_broken_plugins_are_reported_and_do_not_stop_the_others(tmp_path, capsys, isolated_registry):
    args = ["list", "methods"]
    for stem, (text, _) in BROKEN.items():
        args += ["--plugin", str(_write(tmp_path, stem, text))]
    args += ["--plugin", str(_write(tmp_path, "good", GOOD.format(name="toy_scale")))]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "\n  toy_scale " in out and "\n  salun " in out
    for stem, (_, reason) in BROKEN.items():
        line = next(ln for ln in out.splitlines() if f"{stem}.py" in ln)
        assert line.strip().startswith("(unavailable)") and reason in line, line
        assert f"at {stem}.py:" in line  # points at the plugin's own line, not into mubench
    assert "no_unlearn" not in METHODS and "bad_defaults" not in METHODS
    assert METHODS.entry("finetune").source.endswith("mubench/methods/finetune.py")  # not replaced


def test_strict_loading_and_missing_files_raise_plugin_errors(tmp_path, capsys, isolated_registry):
    broken = _write(tmp_path, "no_unlearn", BROKEN["no_unlearn"][0])
    with pytest.raises(PluginError, match="no_unlearn.py could not be loaded: TypeError"):
        plugins.load_plugin_file(broken, strict=True)
    assert main(["list", "methods", "--plugin", str(tmp_path / "absent.py")]) == 2
    assert "absent.py' does not exist" in capsys.readouterr().err


def test_example_plugin_loads_and_passes_the_contract(capsys, isolated_registry, make_task, class0_split):
    assert main(["list", "methods", "--plugin", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "\n  neggrad_plus " in out and "alpha          float  = 0.99" in out
    assert str(EXAMPLE) not in METHODS.broken
    kit.check_method(METHODS.get("neggrad_plus"), make_task(class0_split))
