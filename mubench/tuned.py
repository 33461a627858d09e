"""Tuned settings files: what `mubench tune` writes and what `mubench run` reads by default.

One file per (dataset, training subset, model) holds, per method and scenario kind, the values
the search chose, and says how (protocol, criterion, budget, tuning seeds, the command), with
every candidate's scores:

    [tuned]
    dataset = "digits"
    train_subset = 0
    model = "small_cnn"
    protocol = "heldout"           # selection on a validation split held out of the training set
    ...
    [methods.finetune.class]
    lr = 0.0404
    epochs = 3
    [[candidates]]                 # one per candidate: method, kind, values, scores, chosen

The shipped files live in `mubench/tuned/` (package data). `[experiment] tuned = "auto"` (the
default) applies the shipped file that matches a run's dataset, subset and model; "none" turns
tuned settings off; a path reads that file. In the layers of a method's hyper-parameters the
file's table sits above the method's sizing preset and below every user layer; a record is
marked tuned (with the file and its protocol) when the table applied and no user value
replaced one of its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .config_toml import read_toml
from .errors import ConfigError

SHIPPED_DIR = Path(__file__).parent / "tuned"
_META = ("dataset", "train_subset", "model", "protocol", "criterion", "budget", "seeds", "command")


@dataclass(frozen=True)
class TunedSettings:
    path: str  # as records name it: "mubench/tuned/digits.toml" for a shipped file
    dataset: str
    train_subset: int
    model: str
    protocol: str  # heldout | test
    criterion: str
    budget: int
    seeds: tuple[int, ...]  # the tuning seeds
    command: str
    tables: dict = field(default_factory=dict)  # method → scenario kind → {field: value}
    candidates: tuple = ()  # every candidate's row (method, kind, values, scores, chosen)
    produced: dict = field(default_factory=dict)  # precision and device.machine() of the search; {} if unknown
    live_rule: str = ""  # the live-candidate rule the candidates' `live` follow; "" if the file predates it
    scenarios: dict = field(default_factory=dict)  # scenario kind → the forget sets the search selected on

    def chosen(self, method: str, kind: str) -> dict | None:
        """The winning candidate's row (its values and tuning scores), None when the file has none."""
        return next((row for row in self.candidates
                     if row.get("method") == method and row.get("kind") == kind and row.get("chosen")), None)

    def table(self, method: str, kind: str) -> dict:
        return dict(self.tables.get(method, {}).get(kind, {}))

    def unsearched(self) -> dict[str, list[str]]:
        """method → the fields of its search space today (`Params.SEARCH`) that this file's search
        did not vary: a file from an older space, whose rows run those fields at their defaults."""
        from .search import search_space
        from .unlearning import METHODS

        searched: dict[str, set] = {}
        for row in self.candidates:
            searched.setdefault(row.get("method"), set()).update(row.get("values", {}))
        out = {}
        for method, fields in searched.items():
            if method in METHODS.names():
                missing = [f for f in search_space(METHODS.get(method).Params) if f not in fields]
                if missing:
                    out[method] = missing
        return out

    def matches(self, dataset: str, train_subset: int, model: str) -> bool:
        return (self.dataset, self.train_subset, self.model) == (dataset, train_subset, model)

    def stamp(self) -> dict:
        """What a tuned record carries about where its values came from."""
        return {"file": self.path, "protocol": self.protocol, "criterion": self.criterion,
                "budget": self.budget, "seeds": list(self.seeds)}

    def mismatch(self, precision: str, device: str) -> str | None:
        """Why this file's selection may not carry over to a run with `precision` on `device`
        (a device class), or None when both match or the file does not say what produced it."""
        made = self.produced
        if not made or (made.get("precision"), made.get("device")) == (precision, device):
            return None
        cpu = f" ({made['cpu']}{', AMX' if made.get('amx') else ''})" if made.get("cpu") and made.get("device") == "cpu" else ""
        return (f"note: {self.path} was selected from {made.get('precision')} runs on {made.get('device')}{cpu}; "
                f"this run trains in {precision} on {device}, where the search may have chosen otherwise "
                "(docs/reproducibility.md)")


def _display(path: Path) -> str:
    try:
        return str(Path("mubench") / path.resolve().relative_to(Path(__file__).parent.resolve()))
    except ValueError:
        return str(path)


def read_tuned(path: str | Path) -> TunedSettings:

    path = Path(path)
    doc = read_toml(path, "tuned settings file")
    meta = doc.get("tuned")
    if not isinstance(meta, dict) or set(_META) - set(meta):
        missing = sorted(set(_META) - set(meta or {}))
        raise ConfigError(f"{path} is not a tuned settings file (its [tuned] table lacks {', '.join(missing)}); "
                          "write one with `mubench tune`")
    methods = doc.get("methods", {})
    return TunedSettings(path=_display(path), **{k: meta[k] for k in _META if k != "seeds"},
                         seeds=tuple(meta["seeds"]), tables=methods, candidates=tuple(doc.get("candidates", ())),
                         produced=dict(meta.get("produced") or {}), live_rule=meta.get("live_rule", ""),
                         scenarios={k: list(v) for k, v in (meta.get("scenarios") or {}).items()})


def shipped() -> list[TunedSettings]:
    return [read_tuned(p) for p in sorted(SHIPPED_DIR.glob("*.toml"))]


def check_tuned_option(value: str) -> None:
    """`tuned` is auto, none, or a readable tuned settings file (one sentence otherwise)."""
    if value not in ("auto", "none"):
        read_tuned(value)


def tuned_for(value: str, dataset: str, train_subset: int, model: str) -> TunedSettings | None:
    """The settings that apply to (dataset, subset, model) under the `tuned` option, if any."""
    if value == "none":
        return None
    candidates = shipped() if value == "auto" else [read_tuned(value)]
    return next((t for t in candidates if t.matches(dataset, train_subset, model)), None)


def tuned_layer(settings: TunedSettings | None, method: str, kind: str, user: dict) -> tuple[dict, dict]:
    """(values the file sets for this method and kind, the record's stamp — {} when untuned).

    A user value for a field the file sets means the row's setting no longer comes from the
    search, so it is not marked tuned (the file's other values still apply beneath it)."""
    if settings is None or method == "retrain":
        return {}, {}
    values = settings.table(method, kind)
    if not values:
        return {}, {}
    return values, ({} if set(user) & set(values) else settings.stamp())


def describe_tuned(config) -> list[str]:
    """One line per (dataset, model) a run plans: which tuned settings apply, or that none do,
    and a second where the file was selected under another precision or device class."""
    from .device import resolve_device
    from .presets import preset_for, run_precision

    device = resolve_device(config.execution.device)
    lines = []
    for dataset in config.datasets:
        for model in config.models or (preset_for(dataset).model,):
            t = tuned_for(config.tuned, dataset, config.train_subset, model)
            subset = f"[{config.train_subset}]" if config.train_subset else ""
            lines.append(f"tuned settings for {dataset}{subset}/{model}: " + (
                f"{t.path} ({t.protocol} protocol, {t.criterion}, budget {t.budget})" if t else
                f"none (tuned = {config.tuned!r}): methods use their defaults and your values"))
            note = t and t.mismatch(run_precision(config.precision, dataset, device), device.type)
            if note:
                lines.append(note)
            older = t.unsearched() if t else {}
            if older:
                lines.append(f"note: {t.path} was searched before today's search spaces: "
                             + "; ".join(f"{m} ({', '.join(f)})" for m, f in older.items())
                             + " run at their defaults, which its search never tried; re-tune (docs/tuning.md)")
    return lines
