"""Forget scenarios → splits: forget / retain / test index arrays, deterministic and hashed.

A split is data (SPEC §2): the same index arrays are used by the original model (trained on the
whole training set), Retrain (retain only), every method and every metric of a cell.

`subset:` has two forms. The full form (`subset:1,2:50`) forgets p% of the listed classes'
images with retain = every other training image and test = the whole test set. The restricted
form (`subset:1,2:50:restricted`), the forget-vector paper's task, runs inside the listed
classes: retain = the rest of their training images, test = their test images only. Both forms
draw the same forget set for a seed. The original model stays the full-data model in both:
originals are trained once per training set and shared by every scenario (a model trained on
the listed classes only would be another original, not another split). `Split.form` records
which one ran.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass

import numpy as np
import torch

from .errors import ConfigError

SCENARIO_KINDS = {
    "class": "class:c — forget every training image of class c; TA on the remaining classes",
    "classes": "classes:c1,c2,... — forget every training image of several classes",
    "random": "random:p — forget p% of the training set uniformly at random (seeded)",
    "subset": "subset:c1,c2,...:p[:restricted] — forget p% of the images of the listed classes (arithmetic); "
              "restricted: retain and test limited to those classes (the paper's task)",
}
_SCENARIO_HELP = ("expected class:C, classes:C1,C2, random:P or subset:C1,C2:P[:restricted] "
                  "(P a percentage in (0, 100))")
RESTRICTED = "restricted"  # the suffix of the restricted subset form


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario string; `spec` is its canonical text (used in keys and tables)."""

    kind: str
    classes: tuple[int, ...] = ()
    percent: float | None = None
    restricted: bool = False  # subset only: retain and test limited to the listed classes

    @property
    def spec(self) -> str:
        cls = ",".join(str(c) for c in self.classes)
        pct = f"{self.percent:g}" if self.percent is not None else ""
        suffix = f":{RESTRICTED}" if self.restricted else ""
        return {"class": f"class:{cls}", "classes": f"classes:{cls}", "random": f"random:{pct}",
                "subset": f"subset:{cls}:{pct}{suffix}"}[self.kind]

    @property
    def form(self) -> str:
        """'restricted' when the task runs inside the listed classes (retain and test), else 'full'."""
        return RESTRICTED if self.restricted else "full"

    @property
    def is_classwise(self) -> bool:
        """Whole classes are forgotten: TA is measured on the remaining classes only."""
        return self.kind in ("class", "classes")

    def __str__(self) -> str:
        return self.spec


def parse_scenario(text: str, num_classes: int | None = None) -> Scenario:
    """Parse and validate `class:0`, `random:10`, `classes:1,2`, `subset:1,2:50`, `subset:1,2:50:restricted`."""
    if isinstance(text, Scenario):
        scenario = text
    else:
        raw = str(text).strip()
        m = re.fullmatch(r"(class|classes|random|subset):(.+)", raw)
        if not m:
            raise ConfigError(f"malformed scenario {raw!r}; {_SCENARIO_HELP}")
        kind, rest = m.groups()
        try:
            if kind == "random":
                scenario = Scenario("random", (), float(rest))
            elif kind == "subset":
                restricted = rest.endswith(f":{RESTRICTED}")
                if restricted:
                    rest = rest[: -len(RESTRICTED) - 1]
                if ":" not in rest:
                    raise ValueError("subset needs a percentage after the class list")
                cls_text, pct = rest.rsplit(":", 1)
                scenario = Scenario("subset", _classes(cls_text), float(pct), restricted)
            else:
                scenario = Scenario(kind, _classes(rest))
        except ValueError as err:
            raise ConfigError(f"malformed scenario {raw!r} ({err}); {_SCENARIO_HELP}") from None
        if kind == "class" and len(scenario.classes) != 1:
            raise ConfigError(f"scenario {raw!r} names several classes; use classes:{rest}")
    if scenario.restricted and scenario.kind != "subset":
        raise ConfigError(f"scenario kind {scenario.kind!r} has no restricted form; only subset: has")
    if scenario.percent is not None and not 0 < scenario.percent < 100:
        raise ConfigError(f"scenario {scenario.spec!r}: percentage must be in (0, 100); got {scenario.percent:g}")
    if len(set(scenario.classes)) != len(scenario.classes):
        raise ConfigError(f"scenario {scenario.spec!r} repeats a class")
    if num_classes is not None:
        bad = [c for c in scenario.classes if not 0 <= c < num_classes]
        if bad:
            raise ConfigError(f"scenario {scenario.spec!r}: class {bad[0]} is out of range 0..{num_classes - 1}")
        if scenario.kind == "classes" and len(scenario.classes) >= num_classes:
            raise ConfigError(f"scenario {scenario.spec!r} forgets every class; nothing would remain")
    return scenario


def _classes(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not re.fullmatch(r"\d+", p) for p in parts):
        raise ValueError(f"class list {text!r} must be non-negative integers separated by commas")
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class Split:
    """Index arrays into the train (forget, retain) and test (test, test_forgotten) sets.

    form: 'restricted' for `subset:…:restricted` (retain and test inside the listed classes),
    'full' otherwise; records copy it to say which subset task ran.
    """

    scenario: str
    seed: int
    forget: np.ndarray
    retain: np.ndarray
    test: np.ndarray  # test indices used for TA (remaining classes for class-wise scenarios)
    test_forgotten: np.ndarray  # test indices of forgotten classes (empty unless class-wise)
    forgotten_classes: tuple[int, ...]  # classes forgotten entirely (empty unless class-wise)
    data_fingerprint: str = ""
    form: str = "full"  # not hashed: the scenario text already says it

    @property
    def hash(self) -> str:
        h = hashlib.sha256()
        h.update(f"{self.scenario}|{self.seed}|{self.data_fingerprint}".encode())
        for arr in (self.forget, self.retain, self.test, self.test_forgotten):
            h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
            h.update(b"|")
        return h.hexdigest()[:20]

    def to_state(self) -> dict:
        """Plain tensors/strings for the artifact store (loadable with weights_only=True)."""
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "forget": torch.from_numpy(self.forget),
            "retain": torch.from_numpy(self.retain),
            "test": torch.from_numpy(self.test),
            "test_forgotten": torch.from_numpy(self.test_forgotten),
            "forgotten_classes": list(self.forgotten_classes),
            "data_fingerprint": self.data_fingerprint,
            "form": self.form,
        }

    @classmethod
    def from_state(cls, state: dict) -> Split:
        arr = lambda k: state[k].numpy().astype(np.int64)  # noqa: E731
        return cls(state["scenario"], int(state["seed"]), arr("forget"), arr("retain"), arr("test"),
                   arr("test_forgotten"), tuple(state["forgotten_classes"]), state["data_fingerprint"],
                   state.get("form", "full"))  # splits stored before the restricted form: full


def make_split(train_y, test_y, scenario: str | Scenario, seed: int, data_fingerprint: str = "") -> Split:
    """Deterministic split of a dataset's labels for (scenario, seed).

    The restricted subset form draws the same forget set as the full form (its seed stream is
    the full form's) and limits retain and test to the listed classes.
    """
    train_y = np.asarray(train_y)
    test_y = np.asarray(test_y)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    sc = parse_scenario(scenario, num_classes)
    rng = np.random.default_rng([seed, _stable_int(dataclasses.replace(sc, restricted=False).spec)])
    all_train = np.arange(len(train_y))
    if sc.kind == "random":
        n = int(round(len(train_y) * sc.percent / 100))
        forget = np.sort(rng.choice(len(train_y), size=n, replace=False))
    else:
        pool = all_train[np.isin(train_y, sc.classes)]
        if sc.kind == "subset":
            n = int(round(len(pool) * sc.percent / 100))
            forget = np.sort(rng.choice(pool, size=n, replace=False))
        else:
            forget = pool
    if len(forget) == 0:
        raise ConfigError(f"scenario {sc.spec!r} gives an empty forget set on this dataset")
    if len(forget) == len(train_y):
        raise ConfigError(f"scenario {sc.spec!r} forgets the whole training set")
    all_test = np.arange(len(test_y))
    if sc.restricted:
        listed = all_train[np.isin(train_y, sc.classes)]
        if len(forget) == len(listed):
            raise ConfigError(f"scenario {sc.spec!r} forgets every image of the listed classes; nothing would remain")
        retain = np.setdiff1d(listed, forget)
        test = all_test[np.isin(test_y, sc.classes)]
        if len(test) == 0:
            raise ConfigError(f"scenario {sc.spec!r}: the listed classes have no test images on this dataset")
        return Split(sc.spec, int(seed), forget.astype(np.int64), retain.astype(np.int64), test.astype(np.int64),
                     np.zeros(0, dtype=np.int64), (), data_fingerprint, sc.form)
    retain = np.setdiff1d(all_train, forget)
    if sc.is_classwise:
        gone = np.isin(test_y, sc.classes)
        test, test_forgotten, forgotten = all_test[~gone], all_test[gone], sc.classes
    else:
        test, test_forgotten, forgotten = all_test, np.zeros(0, dtype=np.int64), ()
    return Split(sc.spec, int(seed), forget.astype(np.int64), retain.astype(np.int64),
                 test.astype(np.int64), test_forgotten.astype(np.int64), tuple(forgotten), data_fingerprint)


def _stable_int(text: str) -> int:
    """A process-independent integer from a string (Python's hash() is salted per process)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
