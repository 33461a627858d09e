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

Scenario families (issue 25) are grid entries that stand for several forget sets of one kind:
`class:all` (every class of the dataset), `class:sample:K[:S]` (K classes drawn with sampling
seed S, default 0), `class:rest:K[:S]` (every class that sample leaves out: tune on one, report
on the other, and no reported forget set was selected on) and `random:P1+P2+...` (one random forget set per percentage; `+`, because a
comma separates scenarios). The planner expands them with the dataset's class count
(`expand_scenarios`) into ordinary member scenarios (`class:3`, `random:10`), each carrying the
family's canonical text in `Scenario.family`: a member's split, Retrain and predictors are those
of the same scenario listed alone (one key), and only its Evaluate record also names the family.
A family's members are the same for every run seed (the sample is drawn from S alone), so a
per-family aggregate can average over forget sets, then over seeds.

Sequential deletion (issue 26) is a chain of requests that arrive in turn:
`sequential:class:C1+C2+...` (request t forgets every image of class Ct) and
`sequential:random:PxT` (T disjoint requests of P% of the training set each, consecutive slices
of one permutation seeded by the run seed and P). A chain is one scenario, kind `sequential`,
whose `steps()` are its prefixes: step t of `sequential:class:0+3+5` is `sequential:class:0+3`,
whose split forgets request t (`forget`: class 3) from D minus every request so far (`retain`;
class chains test on the classes not yet forgotten). A step's split depends on requests 1..t
only, so a longer chain shares a shorter one's splits (mubench/sequential.py plans the jobs).
`Scenario.request` is what a method is asked to forget at that step (`class:3`).
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
    "random": "random:p[:atyp-low|atyp-mid|atyp-high] — forget p% of the training set uniformly at random (seeded), "
              "or the p% least, middling or most atypical for their class in the original's features (issue 25)",
    "subset": "subset:c1,c2,...:p[:restricted] — forget p% of the images of the listed classes (arithmetic); "
              "restricted: retain and test limited to those classes (the paper's task)",
    "sequential": "sequential:class:c1+c2+... | sequential:random:PxT — a chain of deletion requests, each "
                  "unlearned from the previous step's predictor (one class per request, or T disjoint P% requests)",
}
FAMILY_KINDS = {
    "class:all": "class:all — a family: one class:c per class of the dataset",
    "class:sample": "class:sample:K[:S] — a family: K classes drawn with sampling seed S (default 0), "
                    "the same for every run seed",
    "class:rest": "class:rest:K[:S] — a family: every class class:sample:K[:S] leaves out (disjoint from it)",
    "random:+": "random:P1+P2+... — a family: one random:P per percentage (e.g. random:1+10+50)",
    "random:atyp": "random:P:atyp — a family: P% chosen by how atypical they are for their class in the original's "
                   "features, lowest, middle and highest: random:P:atyp-low, random:P:atyp-mid, random:P:atyp-high",
}
_SCENARIO_HELP = ("expected class:C, classes:C1,C2, random:P or subset:C1,C2:P[:restricted] "
                  "(P a percentage in (0, 100)), a family: class:all, class:sample:K[:S], class:rest:K[:S], random:P1+P2, "
                  "or a chain: sequential:class:C1+C2, sequential:random:PxT")
_CHAIN_HELP = ("expected sequential:class:C1+C2+... (one class per request, in order) or sequential:random:PxT "
               "(T disjoint requests of P% each, e.g. sequential:random:5x4)")
RESTRICTED = "restricted"  # the suffix of the restricted subset form
# Hardness-stratified random forget sets (issue 25; mubench/hardness.py computes the scores): P% of the
# training set chosen by a per-example score of the cell's original model, lowest, middle or highest.
HARDNESS_SCORES = {"atyp": "atypicality: distance to the example's class centroid over the distance to the nearest "
                           "other class centroid, in the original's penultimate features"}
HARDNESS_LEVELS = ("low", "mid", "high")
HARDNESS_SPECS = tuple(f"{score}-{level}" for score in HARDNESS_SCORES for level in HARDNESS_LEVELS)


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario string; `spec` is its canonical text (used in keys and tables)."""

    kind: str
    classes: tuple[int, ...] = ()
    percent: float | None = None
    restricted: bool = False  # subset only: retain and test limited to the listed classes
    family: str = ""  # the family entry this scenario was expanded from (canonical text), "" if listed alone
    requests: int = 0  # sequential only: the number of requests (class chains: len(classes))
    hardness: str = ""  # random only: "atyp-low" | "atyp-mid" | "atyp-high", a forget set chosen by atypicality

    @property
    def spec(self) -> str:
        cls = ",".join(str(c) for c in self.classes)
        pct = f"{self.percent:g}" if self.percent is not None else ""
        suffix = f":{RESTRICTED}" if self.restricted else ""
        if self.kind == "sequential":
            if self.classes:
                return "sequential:class:" + "+".join(str(c) for c in self.classes)
            return f"sequential:random:{pct}x{self.requests}"
        hard = f":{self.hardness}" if self.hardness else ""
        return {"class": f"class:{cls}", "classes": f"classes:{cls}", "random": f"random:{pct}{hard}",
                "subset": f"subset:{cls}:{pct}{suffix}"}[self.kind]

    @property
    def request(self) -> Scenario:
        """What a method is asked to forget: a chain's last request (`class:C` or `random:P`), else itself."""
        if self.kind != "sequential":
            return self
        return Scenario("class", self.classes[-1:]) if self.classes else Scenario("random", (), self.percent)

    def steps(self) -> tuple[Scenario, ...]:
        """A chain's steps, 1..T: its prefixes (step t forgets request t); a plain scenario is one step."""
        if self.kind != "sequential":
            return (self,)
        return tuple(dataclasses.replace(self, classes=self.classes[:t], requests=t)
                     for t in range(1, self.requests + 1))

    @property
    def form(self) -> str:
        """'restricted' when the task runs inside the listed classes (retain and test), else 'full'."""
        return RESTRICTED if self.restricted else "full"

    @property
    def is_classwise(self) -> bool:
        """Whole classes are forgotten: TA is measured on the remaining classes only."""
        return self.kind in ("class", "classes") or (self.kind == "sequential" and bool(self.classes))

    def __str__(self) -> str:
        return self.spec


@dataclass(frozen=True)
class Family:
    """A parsed family entry (see the module docstring); `spec` is its canonical text."""

    kind: str  # the members' kind: class | random
    sample: int | None = None  # class:sample:K / class:rest:K: K; None for class:all
    sample_seed: int = 0  # class:sample:K:S: S
    rest: bool = False  # class:rest:K[:S]: the classes the sample leaves out
    percents: tuple[float, ...] = ()  # random:P1+P2: the members' percentages, in the order given
    hardness: str = ""  # random:P:atyp: the members are P% chosen by atypicality, low, mid and high

    @property
    def spec(self) -> str:
        if self.kind == "random":
            return "random:" + "+".join(f"{p:g}" for p in self.percents) + (f":{self.hardness}" if self.hardness else "")
        if self.sample is None:
            return "class:all"
        word = "rest" if self.rest else "sample"
        return f"class:{word}:{self.sample}" + (f":{self.sample_seed}" if self.sample_seed else "")

    def members(self, num_classes: int) -> tuple[Scenario, ...]:
        """The member scenarios on a dataset of `num_classes` classes, each with `family` set."""
        if self.kind == "random":
            levels = [f"{self.hardness}-{level}" for level in HARDNESS_LEVELS] if self.hardness else [""]
            return tuple(Scenario("random", (), p, family=self.spec, hardness=h) for p in self.percents for h in levels)
        if self.sample is None:
            classes = range(num_classes)
        else:
            if self.sample > num_classes - self.rest:
                raise ConfigError(f"scenario {self.spec!r} samples {self.sample} classes, but the dataset has "
                                  f"{num_classes}; K may be at most {num_classes - self.rest}"
                                  + (" (the rest must keep a class)" if self.rest else ""))
            classes = sample_classes(num_classes, self.sample, self.sample_seed)
            if self.rest:
                classes = tuple(c for c in range(num_classes) if c not in classes)
        return tuple(Scenario("class", (int(c),), family=self.spec) for c in classes)

    def __str__(self) -> str:
        return self.spec


def sample_classes(num_classes: int, k: int, seed: int = 0) -> tuple[int, ...]:
    """K of the classes 0..num_classes-1, drawn with `seed` alone (not the run seed), sorted:
    the first K of one seeded permutation, so a smaller sample is part of a larger one and the
    classes a sample leaves out are the rest of that permutation (a disjoint set to tune on)."""
    return tuple(sorted(class_permutation(num_classes, seed)[:k]))


def class_permutation(num_classes: int, seed: int = 0) -> tuple[int, ...]:
    """The seeded order of the classes that `class:sample:K:S` takes its first K from."""
    rng = np.random.default_rng([seed, _stable_int("class:sample")])
    return tuple(int(c) for c in rng.permutation(num_classes))


def select_by_score(scores: np.ndarray, n: int, level: str, rng: np.random.Generator) -> np.ndarray:
    """The n indices with the lowest, middle ("mid": centred on the median rank) or highest
    scores, sorted; ties are ordered by one seeded permutation, so the set is fixed by (scores,
    scenario, seed). As in Zhao et al.'s rank-based sets, nothing stops "mid" from touching the
    others when n is over a third of the data."""
    perm = rng.permutation(len(scores))
    order = perm[np.argsort(scores[perm], kind="stable")]
    start = {"low": 0, "mid": (len(scores) - n) // 2, "high": len(scores) - n}[level]
    return np.sort(order[start: start + n])


def forgotten_classes(scenario: Scenario) -> frozenset[int]:
    """The classes whose every training image a scenario forgets (class-wise kinds and class
    chains); empty for kinds that draw their forget set from the run seed (random, subset)."""
    return frozenset(scenario.classes) if scenario.is_classwise else frozenset()


def parse_family(text) -> Family | None:
    """The family `text` spells (`class:all`, `class:sample:K[:S]`, `random:P1+P2+...`), else None."""
    if isinstance(text, Family):
        return text
    if isinstance(text, Scenario):
        return None
    raw = str(text).strip()
    if raw == "class:all":
        return Family("class")
    if raw.startswith(("class:sample", "class:rest")):
        m = re.fullmatch(r"class:(sample|rest):(\d+)(?::(\d+))?", raw)
        if not m:
            word = "rest" if raw.startswith("class:rest") else "sample"
            raise ConfigError(f"malformed scenario family {raw!r}; expected class:{word}:K or class:{word}:K:S "
                              "(K classes, S the sampling seed; non-negative integers)")
        k = int(m.group(2))
        if k < 1:
            raise ConfigError(f"scenario family {raw!r} samples no class; K must be at least 1")
        return Family("class", sample=k, sample_seed=int(m.group(3) or 0), rest=m.group(1) == "rest")
    hard = re.fullmatch(r"random:(.+):([a-z]+)", raw)
    if hard and hard.group(2) in HARDNESS_SCORES:  # random:P:atyp, random:1+10:atyp
        inner = parse_family(f"random:{hard.group(1)}") or Family("random", percents=(parse_scenario(f"random:{hard.group(1)}").percent,))
        return dataclasses.replace(inner, hardness=hard.group(2))
    if raw.startswith("random:") and "+" in raw:
        parts = [p.strip() for p in raw[len("random:"):].split("+")]
        try:
            percents = tuple(float(p) for p in parts)
        except ValueError:
            bad = next(p for p in parts if not _is_float(p))
            raise ConfigError(f"scenario family {raw!r}: each of P1+P2+... must be a percentage in (0, 100); "
                              f"got {bad!r}") from None
        for p in percents:
            parse_scenario(Scenario("random", (), p))  # checks the range
        if len(set(percents)) != len(percents):
            raise ConfigError(f"scenario family {raw!r} repeats a percentage")
        return Family("random", percents=percents)
    return None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_entry(text, num_classes: int | None = None) -> Scenario | Family:
    """A grid entry: a family (`parse_family`) or one scenario (`parse_scenario`), validated."""
    family = parse_family(text)
    if family is None:
        return parse_scenario(text, num_classes)
    if num_classes is not None:
        family.members(num_classes)  # K > classes is an error here already
    return family


def entry_kind(text) -> str:
    """The scenario kind of a grid entry's forget sets (a family's members' kind)."""
    return parse_entry(text).kind


def expand_scenarios(entries, num_classes: int) -> list[Scenario]:
    """Grid entries → the scenarios of the grid, families replaced by their members (in order).

    A member listed twice in one family is one scenario; the same forget set listed alone and in
    a family (or in two families) stays once per entry, each with its own `family`: they share
    every job but the Evaluate, so each family's records are complete."""
    out: dict[tuple[str, str], Scenario] = {}
    for entry in entries:
        parsed = parse_entry(entry, num_classes)
        members = parsed.members(num_classes) if isinstance(parsed, Family) else (parsed,)
        for sc in members:
            out.setdefault((sc.spec, sc.family), sc)
    return list(out.values())


def parse_scenario(text: str, num_classes: int | None = None) -> Scenario:
    """Parse and validate `class:0`, `random:10`, `classes:1,2`, `subset:1,2:50`, `subset:1,2:50:restricted`."""
    if isinstance(text, Scenario):
        scenario = text
    else:
        raw = str(text).strip()
        if parse_family(raw) is not None:
            raise ConfigError(f"{raw!r} is a scenario family (several forget sets); it is a grid entry "
                              "(--scenarios, [experiment] scenarios), not a single scenario")
        if raw.startswith("sequential"):
            return parse_scenario(_parse_chain(raw), num_classes)
        m = re.fullmatch(r"(class|classes|random|subset):(.+)", raw)
        if not m:
            raise ConfigError(f"malformed scenario {raw!r}; {_SCENARIO_HELP}")
        kind, rest = m.groups()
        try:
            if kind == "random":
                pct, _, hardness = rest.partition(":")
                if hardness and hardness not in HARDNESS_SPECS:
                    raise ValueError(f"unknown forget-set choice {hardness!r}; expected one of {', '.join(HARDNESS_SPECS)}")
                scenario = Scenario("random", (), float(pct), hardness=hardness)
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
    if scenario.kind == "sequential" and scenario.percent is not None and scenario.percent * scenario.requests >= 100:
        raise ConfigError(f"chain {scenario.spec!r} forgets {scenario.percent * scenario.requests:g}% of the training "
                          "set; P × T must stay below 100")
    if num_classes is not None:
        bad = [c for c in scenario.classes if not 0 <= c < num_classes]
        if bad:
            raise ConfigError(f"scenario {scenario.spec!r}: class {bad[0]} is out of range 0..{num_classes - 1}")
        if scenario.kind in ("classes", "sequential") and len(scenario.classes) >= num_classes:
            raise ConfigError(f"scenario {scenario.spec!r} forgets every class; nothing would remain")
    return scenario


def _parse_chain(raw: str) -> Scenario:
    """`sequential:class:C1+C2+...` or `sequential:random:PxT` → its Scenario (checked by parse_scenario)."""
    m = re.fullmatch(r"sequential:class:(\d+(?:\+\d+)*)", raw)
    if m:
        classes = tuple(int(c) for c in m.group(1).split("+"))
        return Scenario("sequential", classes, requests=len(classes))
    m = re.fullmatch(r"sequential:random:(\d+(?:\.\d*)?|\.\d+)x(\d+)", raw)
    if m and int(m.group(2)) >= 1:
        return Scenario("sequential", (), float(m.group(1)), requests=int(m.group(2)))
    raise ConfigError(f"malformed chain {raw!r}; {_CHAIN_HELP}")


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


def make_split(train_y, test_y, scenario: str | Scenario, seed: int, data_fingerprint: str = "",
               scores: np.ndarray | None = None) -> Split:
    """Deterministic split of a dataset's labels for (scenario, seed).

    The restricted subset form draws the same forget set as the full form (its seed stream is
    the full form's) and limits retain and test to the listed classes. A hardness-stratified
    random scenario (`random:P:atyp-high`) takes its forget set by `scores`, one per training
    example (mubench/hardness.py; the split job computes them from the cell's original).
    """
    train_y = np.asarray(train_y)
    test_y = np.asarray(test_y)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    sc = parse_scenario(scenario, num_classes)
    rng = np.random.default_rng([seed, _stable_int(dataclasses.replace(sc, restricted=False).spec)])
    all_train = np.arange(len(train_y))
    gone = None  # everything forgotten so far, where more than `forget` (a chain's earlier requests)
    if sc.kind == "sequential":
        requests = chain_requests(train_y, sc, seed)
        forget, gone = requests[-1], np.concatenate(requests)
    elif sc.kind == "random":
        n = int(round(len(train_y) * sc.percent / 100))
        if sc.hardness:
            if scores is None or len(scores) != len(train_y):
                raise ConfigError(f"scenario {sc.spec!r} chooses its forget set by the original model's per-example "
                                  "scores; it is planned by `mubench run`, whose split job computes them")
            forget = select_by_score(np.asarray(scores, dtype=np.float64), n, sc.hardness.rpartition("-")[2], rng)
        else:
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
    gone = forget if gone is None else gone
    if len(gone) == len(train_y):
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
    retain = np.setdiff1d(all_train, gone)
    if sc.is_classwise:
        gone = np.isin(test_y, sc.classes)
        test, test_forgotten, forgotten = all_test[~gone], all_test[gone], sc.classes
    else:
        test, test_forgotten, forgotten = all_test, np.zeros(0, dtype=np.int64), ()
    return Split(sc.spec, int(seed), forget.astype(np.int64), retain.astype(np.int64),
                 test.astype(np.int64), test_forgotten.astype(np.int64), tuple(forgotten), data_fingerprint)


def chain_requests(train_y, scenario: Scenario, seed: int) -> list[np.ndarray]:
    """The forget sets of a chain's requests, in order, each sorted. A class chain's request t is
    every training image of its class t; a random chain's are consecutive slices of one
    permutation seeded by (seed, P) alone, so requests are disjoint and a shorter chain's are a
    longer one's first ones (`sequential:random:5x2` ⊂ `5x4`)."""
    train_y = np.asarray(train_y)
    if scenario.classes:
        return [np.flatnonzero(train_y == c).astype(np.int64) for c in scenario.classes]
    rng = np.random.default_rng([seed, _stable_int(f"sequential:random:{scenario.percent:g}")])
    order = rng.permutation(len(train_y))
    n = int(round(len(train_y) * scenario.percent / 100))
    return [np.sort(order[t * n:(t + 1) * n]).astype(np.int64) for t in range(scenario.requests)]


def _stable_int(text: str) -> int:
    """A process-independent integer from a string (Python's hash() is salted per process)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
