"""Method discovery: built-ins in `mubench/methods/`, the `mubench.methods` entry-point group, and
one-off files given with `--plugin path.py`.

A plugin that fails to import or to register (no `unlearn`, bad defaults…) is recorded in
`METHODS.broken` with its file and reason and does not stop the others from loading. Jobs
carry method names and plugin paths, never classes: each worker process calls
`load_methods(plugin_paths)` itself, so nothing odd is pickled.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from importlib.metadata import entry_points
from pathlib import Path

from .errors import PluginError
from .unlearning import METHODS

ENTRY_POINT_GROUP = "mubench.methods"
_loaded_sources: set[str] = set()  # idempotence guard for this process (not user state)


def _reason(err: BaseException, source: str = "") -> str:
    """'TypeError: … at file.py:12', pointing into the plugin's own file when it is on the stack
    (a registration error raised inside mubench is caused by a line of the plugin)."""
    frames = traceback.extract_tb(err.__traceback__) if err.__traceback__ else []
    own = [f for f in frames if f.filename == source]
    last = (own or frames)[-1:]
    where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
    return f"{type(err).__name__}: {err}{where}"


def _guarded_import(source: str, importer) -> None:
    if source in _loaded_sources:
        return
    _loaded_sources.add(source)
    try:
        importer()
    except Exception as err:  # a broken plugin must not break the others
        METHODS.broken[source] = _reason(err, source)


def builtin_method_files() -> list[Path]:
    from mubench import methods

    folder = Path(methods.__file__).parent
    return sorted(p for p in folder.glob("*.py")
                  if not p.name.startswith(("_", "template_")))


def load_builtin_methods() -> None:
    for path in builtin_method_files():
        _guarded_import(str(path), lambda p=path: importlib.import_module(f"mubench.methods.{p.stem}"))


def load_entry_point_methods() -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _guarded_import(f"entry point {ep.name} ({ep.value})", ep.load)


def load_plugin_file(path: str | Path, strict: bool = True) -> None:
    """Import a method file by path under a private module name (stable across processes)."""
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

    _guarded_import(str(path), do_import)
    if strict and str(path) in METHODS.broken:
        raise PluginError(f"plugin {path} could not be loaded: {METHODS.broken[str(path)]}")


def load_methods(plugin_paths=(), strict_plugins: bool = False) -> None:
    """Load built-in, entry-point and file plugins (idempotent within a process)."""
    load_builtin_methods()
    load_entry_point_methods()
    for path in plugin_paths:
        load_plugin_file(path, strict=strict_plugins)
