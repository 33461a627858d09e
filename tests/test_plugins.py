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
    plugins.load_plugins()
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


# -- every registry: datasets, models and metrics from plugin files and entry points ------------------
EVERYTHING = '''
import dataclasses
from torch import nn
from mubench.data import DATASETS, load_digits
from mubench.metrics import register_metric
from mubench.models import MODELS

@DATASETS.register("{prefix}_digits", description="digits under another name (a plugin dataset)")
def toy_digits(options):
    return dataclasses.replace(load_digits(options), name="{prefix}_digits")

@MODELS.register("{prefix}_linear", description="a linear classifier (a plugin model)")
def toy_linear(spec):
    return nn.Sequential(nn.Flatten(), nn.Linear(spec.in_channels * spec.image_size ** 2, spec.num_classes))

@register_metric("{prefix}_forget_size", description="forget-set size (a plugin metric)")
def forget_size(ctx):
    return float(len(ctx.outputs.forget))
'''


def test_a_plugin_file_may_register_a_dataset_a_model_and_a_metric(tmp_path, capsys, isolated_registries):
    from mubench.data import DATASETS
    from mubench.metrics import METRICS
    from mubench.models import MODELS

    path = _write(tmp_path, "everything", EVERYTHING.format(prefix="pf"))
    assert main(["list", "--plugin", str(path)]) == 0
    out = capsys.readouterr().out
    for name in ("pf_digits", "pf_linear", "pf_forget_size"):
        assert f"\n  {name} " in out, out
    assert {"pf_digits" in DATASETS, "pf_linear" in MODELS, "pf_forget_size" in METRICS} == {True}
    kit.check_dataset("pf_digits")
    kit.check_model("pf_linear")
    kit.check_metric("pf_forget_size")


def test_the_workers_loader_gets_every_registry_in_a_fresh_process(tmp_path):
    """Workers call load_plugins(plugin_paths) (the older name): a fresh process gets the file's
    dataset, model and metric too, as a new Dask or loky worker must."""
    path = _write(tmp_path, "everything", EVERYTHING.format(prefix="fresh"))
    code = ("import sys; from mubench.plugins import load_plugins; load_plugins([sys.argv[1]], strict_plugins=True); "
            "from mubench.data import DATASETS; from mubench.models import MODELS; from mubench.metrics import METRICS; "
            "print('fresh_digits' in DATASETS, 'fresh_linear' in MODELS, 'fresh_forget_size' in METRICS)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.split() == ["True", "True", "True"]


def test_a_plugin_that_registers_nothing(tmp_path, capsys, isolated_registries):
    empty = _write(tmp_path, "nothing", "import torch  # no decorator\n")
    with pytest.raises(PluginError, match=r"nothing.py registered nothing \(no @register_method/_dataset/_model/_metric/_attack\)"):
        plugins.load_plugins([empty], strict_plugins=True)
    with pytest.raises(PluginError, match="registered nothing"):  # still an error when loaded again
        plugins.load_plugin_file(empty, strict=True)
    assert main(["list", "methods", "--plugin", str(empty)]) == 0  # list shows it, and goes on
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "nothing.py" in ln)
    assert line.strip().startswith("(unavailable)") and "registered nothing" in line


def test_loading_a_file_twice_is_not_registering_nothing(tmp_path, isolated_registries):
    path = _write(tmp_path, "twice", GOOD.format(name="toy_twice"))
    plugins.load_plugins([path], strict_plugins=True)
    plugins.load_plugins([path], strict_plugins=True)
    assert "toy_twice" in METHODS and str(path.resolve()) not in METHODS.broken


class _EntryPoint:
    def __init__(self, name, value, loader):
        self.name, self.value, self.load = name, value, loader


def test_entry_points_of_every_group_are_loaded(monkeypatch, isolated_registries):
    from mubench.data import DATASETS, load_digits

    asked, scans = [], []

    class _Found:
        def select(self, group):
            asked.append(group)
            if group != "mubench.datasets":
                return []
            return [_EntryPoint("ep_digits", "pkg:register", lambda: DATASETS.add("ep_digits", load_digits))]

    def fake_entry_points():
        scans.append(1)
        return _Found()

    monkeypatch.setattr(plugins, "entry_points", fake_entry_points)
    plugins.load_plugins()
    assert len(scans) == 1  # one scan of the metadata for all groups: it runs in every job
    assert asked == list(plugins.ENTRY_POINT_GROUPS)
    assert set(asked) == {"mubench.methods", "mubench.datasets", "mubench.models", "mubench.metrics",
                          "mubench.resources", "mubench.attacks"}
    assert "ep_digits" in DATASETS


def test_a_plugin_dataset_and_model_run_in_fresh_loky_workers(tmp_path):
    path = _write(tmp_path, "everything", EVERYTHING.format(prefix="e2e"))
    out = subprocess.run([sys.executable, "-m", "mubench", "run", "--plugin", str(path), "--datasets", "e2e_digits",
                          "--models", "e2e_linear", "--methods", "finetune", "--scenarios", "class:0", "--seeds", "0,1",
                          "--set", "recipe.epochs=1", "--set", "finetune.epochs=1", "--jobs", "2", "--backend", "loky",
                          "--quiet", "--out", str(tmp_path / "results")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "0 failed" in out.stdout and "e2e_digits" in out.stdout
