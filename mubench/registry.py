"""One registry type for methods, datasets, models, metrics and scenarios.

Names are explicit snake_case strings chosen at registration (not class names), so CLI names and
record keys survive a rename. Registering a name twice is an error naming both sources: a silently
replaced method would corrupt a benchmark.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import UnknownNameError


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    description: str
    source: str  # module or file that registered it (for duplicate errors)
    meta: dict = field(default_factory=dict)


def _first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _source_of(obj: Any) -> str:
    try:
        return inspect.getsourcefile(obj) or getattr(obj, "__module__", "?")
    except TypeError:
        return getattr(obj, "__module__", "?")


class Registry:
    """A name → object map with close-match suggestions and wildcard selection."""

    def __init__(self, kind: str, list_command: str | None = None):
        self.kind = kind
        self.list_command = list_command or f"python -m mubench list {kind}s"
        self._entries: dict[str, Entry] = {}
        self.broken: dict[str, str] = {}  # plugin source → why it could not be loaded

    def register(self, name: str, *, description: str | None = None, **meta) -> Callable:
        """Decorator: `@REGISTRY.register("name")`."""

        def decorate(obj):
            self.add(name, obj, description=description, **meta)
            return obj

        return decorate

    def add(self, name: str, obj: Any, *, description: str | None = None, **meta) -> None:
        if name in self._entries:
            previous = self._entries[name]
            if previous.obj is obj:
                return
            raise ValueError(
                f"{self.kind} {name!r} is registered twice: by {previous.source} and by "
                f"{_source_of(obj)}; rename one of them."
            )
        self._entries[name] = Entry(
            name=name,
            obj=obj,
            description=description or _first_doc_line(obj),
            source=_source_of(obj),
            meta=dict(meta),
        )

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise UnknownNameError(self._unknown_message(name))
        return self._entries[name]

    def get(self, name: str) -> Any:
        return self.entry(name).obj

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        valid = ", ".join(self.names()) or "none registered"
        return f"unknown {self.kind} {name!r}; {hint}valid: {valid} ({self.list_command})"

    def select(self, patterns: Iterable[str] | str) -> list[str]:
        """Names matching comma-separated fnmatch patterns; 'all' selects everything.

        A pattern that matches nothing is an error listing what exists (benchopt's habit).
        """
        if isinstance(patterns, str):
            patterns = [p for p in patterns.split(",") if p.strip()]
        chosen: list[str] = []
        for pattern in patterns:
            pattern = pattern.strip()
            if pattern == "all":
                matches = self.names()
            elif any(ch in pattern for ch in "*?["):
                matches = fnmatch.filter(self.names(), pattern)
            else:
                matches = [self.entry(pattern).name]
            if not matches:
                raise UnknownNameError(self._unknown_message(pattern))
            chosen.extend(m for m in matches if m not in chosen)
        return chosen
