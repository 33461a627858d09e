"""Plugin discovery for every registry: built-ins, entry points, and `--plugin path.py` files.

Built-ins are the core modules that register datasets, models and metrics and every file in
`mubench/methods/`. Installed packages add to any registry through the entry-point groups in
`ENTRY_POINT_GROUPS` (`mubench.methods`, `mubench.datasets`, …); a one-off file given with
`--plugin` may register anything, and one that registers nothing is an error (a wrong path or a
forgotten decorator would otherwise run the benchmark without it).

A plugin that fails to import or to register (no `unlearn`, bad defaults…) is recorded in
`METHODS.broken` with its file and reason and does not stop the others from loading. Jobs
carry plugin paths, never classes: each worker process calls `load_plugins(plugin_paths)`
itself (a fresh Dask worker included), so nothing odd is pickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
import traceback
from importlib.metadata import entry_points
from pathlib import Path

from .errors import PluginError
from .unlearning import METHODS

ENTRY_POINT_GROUPS = ("mubench.methods", "mubench.datasets", "mubench.models", "mubench.metrics",
                      "mubench.resources", "mubench.attacks")
BUILTIN_MODULES = ("mubench.data", "mubench.models", "mubench.metrics")  # register on import
_loaded_sources: set[str] = set()  # idempotence guard for this process (not user state)


def registries() -> dict:
    """Every registry a plugin may add to, by kind; the resource registry once it exists."""
    from .attacks import ATTACKS
    from .data import DATASETS
    from .metrics import METRICS
    from .models import MODELS
    from .resources import RESOURCES

    return {"method": METHODS, "dataset": DATASETS, "model": MODELS, "metric": METRICS, "resource": RESOURCES,
            "attack": ATTACKS}


def registered_count() -> int:
    return sum(len(r) for r in registries().values())


def _reason(err: BaseException, source: str = "") -> str:
    """'TypeError: … at file.py:12', pointing into the plugin's own file when it is on the stack
    (a registration error raised inside mubench is caused by a line of the plugin)."""
    frames = traceback.extract_tb(err.__traceback__) if err.__traceback__ else []
    own = [f for f in frames if f.filename == source]
    last = (own or frames)[-1:]
    where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
    return f"{type(err).__name__}: {err}{where}"


def _guarded_import(source: str, importer) -> bool:
    """Run `importer` once per source; False when it was imported before (nothing new to do)."""
    if source in _loaded_sources:
        return False
    _loaded_sources.add(source)
    try:
        importer()
    except Exception as err:  # a broken plugin must not break the others
        METHODS.broken[source] = _reason(err, source)
    return True


PLUGIN_FOLDERS = ("methods", "attacks")  # mubench/<folder>/*.py register themselves on import


def builtin_plugin_files(folder: str = "methods") -> list[Path]:
    """The plugin files of `mubench/<folder>/`: every module but private ones (`_x.py`),
    templates and the folder's contract (`base.py`)."""
    root = Path(__file__).parent / folder
    return sorted(p for p in root.glob("*.py") if not p.name.startswith(("_", "template_")) and p.name != "base.py")


def load_builtins() -> None:
    """The core's datasets, models and metrics, then the methods and attacks of `mubench/`."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for folder in PLUGIN_FOLDERS:
        for path in builtin_plugin_files(folder):
            _guarded_import(str(path), lambda p=path, f=folder: importlib.import_module(f"mubench.{f}.{p.stem}"))


def load_entry_points(groups=ENTRY_POINT_GROUPS) -> None:
    """Every group from one scan of the installed distributions' metadata: each job calls this,
    and a scan per group cost it six scans (BENCHMARKS.md, section 8)."""
    found = entry_points()
    for group in groups:
        for ep in found.select(group=group):
            _guarded_import(f"entry point {ep.name} ({ep.value}) of {group}", ep.load)


def load_plugin_file(path: str | Path, strict: bool = True) -> None:
    """Import a plugin file by path under a private module name (stable across processes).

    A file that imports cleanly but adds no entry to any registry is recorded as broken (and
    raised when strict): it was almost certainly not the file meant.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise PluginError(f"plugin file {str(path)!r} does not exist")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    module_name = f"mubench_plugin_{path.stem}_{digest}"

    def do_import():
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise

    before = registered_count()
    if _guarded_import(str(path), do_import) and str(path) not in METHODS.broken \
            and registered_count() == before:
        METHODS.broken[str(path)] = ("registered nothing (no @register_method/_dataset/_model/_metric/_attack)")
    if strict and str(path) in METHODS.broken:
        reason = METHODS.broken[str(path)]
        if reason.startswith("registered nothing"):
            raise PluginError(f"plugin {path} {reason}")
        raise PluginError(f"plugin {path} could not be loaded: {reason}")


def load_plugins(plugin_paths=(), strict_plugins: bool = False) -> None:
    """Load built-ins, entry points of every group, and plugin files (idempotent per process)."""
    load_builtins()
    load_entry_points()
    for path in plugin_paths:
        load_plugin_file(path, strict=strict_plugins)



@contextlib.contextmanager
def restored_registries():
    """Every registry a plugin may add to (methods, datasets, models, metrics, resources,
    attacks) as it was on entry, restored on exit: for code that loads a plugin for a while
    (tests, a plan built with an example plugin) without leaving it registered."""
    load_plugins()
    saved = {kind: (dict(r._entries), dict(r.broken)) for kind, r in registries().items()}
    loaded = set(_loaded_sources)
    try:
        yield
    finally:
        for kind, r in registries().items():
            r._entries.clear()
            r._entries.update(saved[kind][0])
            r.broken.clear()
            r.broken.update(saved[kind][1])
        _loaded_sources.clear()
        _loaded_sources.update(loaded)
