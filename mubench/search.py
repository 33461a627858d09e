"""Search spaces of hyper-parameters, and the seeded draw that gives every method the same budget.

A method's `Params` declares what `mubench tune` may search (SPEC §3, "Equal budget"):

    @dataclass(frozen=True)
    class FinetuneParams(EpochParams):
        SEARCH: ClassVar[dict] = {"lr": LogUniform(1e-3, 0.3), "epochs": Choice((3, 5, 10))}

`draw(space, n, seed)` returns n candidates from a scrambled Latin hypercube (scipy.stats.qmc):
with the 8 candidates of the default budget, a hypercube covers every axis evenly where
independent random draws often leave a quarter of an lr range untried, and it needs no library
beyond scipy (Optuna's adaptive samplers would let a method's earlier scores steer its later
candidates, which a fixed, equal, inspectable budget does not need). Floats are rounded to 3
significant digits so that files and tables show the values that ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def at(self, u: float) -> float:
        value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return float(f"{value:.3g}")

    def __str__(self) -> str:
        return f"log-uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def at(self, u: float) -> float:
        return float(f"{self.low + u * (self.high - self.low):.3g}")

    def __str__(self) -> str:
        return f"uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Choice:
    values: tuple

    def at(self, u: float):
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]

    def __str__(self) -> str:
        return "one of {" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in self.values) + "}"


def search_space(params_cls) -> dict:
    """The space a Params class declares (`SEARCH`), {} when it declares none."""
    return dict(getattr(params_cls, "SEARCH", {}) or {})


def describe(space: dict) -> str:
    return "; ".join(f"{name} {dim}" for name, dim in space.items())


def draw(space: dict, n: int, seed: int) -> list[dict]:
    """n candidates (field → value) from a seeded scrambled Latin hypercube over `space`."""
    from scipy.stats import qmc

    if not space:
        raise ConfigError("an empty search space has no candidates to draw")
    if n < 1:
        raise ConfigError(f"the tuning budget must be at least 1 candidate; got {n}")
    points = qmc.LatinHypercube(d=len(space), seed=seed).random(n)
    names = list(space)
    return [{name: space[name].at(float(u)) for name, u in zip(names, row, strict=True)} for row in points]
