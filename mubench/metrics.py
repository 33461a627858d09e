"""The metric registry: UA, RA, TA, MIA-Efficacy, Avg. Gap, cost, KL and the controls.

Every metric is a small function of outputs that were already computed (one forward pass per
part, in `outputs.forward_split`) plus a `MetricContext`; none runs a model. A metric
declares the metrics it builds on (`requires`), and `compute_metrics` computes each of them
once, in dependency order, passing their results by name. It also declares the context it
`needs` (a Retrain reference, Retrain's outputs, the control outputs of an input-based
predictor, the storage cost); where that is absent the metric does not apply and is skipped.

A metric returns a float in % (None where undefined, e.g. TA on forgotten classes of a random
scenario), or a result object with a `.value` float and per-sample detail (MIA verdicts), so a
report can drill down without re-running anything.

Extras that cost a full attack each (`default=False`) run only when asked for by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .attacks.svc import FitAhead, MIAConfig, MIAResult, mia_efficacy
from .errors import ConfigError
from .registry import Registry

if TYPE_CHECKING:
    from .outputs import PartOutputs, SplitOutputs

METRICS = Registry("metric")
GAP_METRICS = ("ua", "ra", "ta", "mia_efficacy")  # SPEC §5: Avg. Gap is their mean |difference|


def register_metric(name: str, requires: Iterable[str] = (), default: bool = True,
                    needs: Iterable[str] = (), description: str | None = None) -> Callable:
    """Decorator: `@register_metric("ua", requires=(...))`.

    requires: metrics whose results are passed to the function as keyword arguments.
    default: computed by every evaluation (else only when named, e.g. the extra MIA features).
    needs: `MetricContext` fields that must be present for the metric to apply.
    """
    return METRICS.register(name, description=description, requires=tuple(requires),
                            default=default, needs=tuple(needs))


@dataclass(frozen=True)
class MetricContext:
    """What metrics are computed from: cached outputs and what to compare them with."""

    outputs: SplitOutputs  # the predictor's logits on forget / retain / test / test_forgotten
    mia: MIAConfig = MIAConfig()
    reference: Mapping[str, Any] | None = None  # Retrain's metrics (same split and seed)
    reference_outputs: SplitOutputs | None = None  # Retrain's outputs (for KL)
    controls: Any = None  # input-based only: evaluation.ControlViews (bypass / noise outputs, lazy)
    storage: tuple[int, int] | None = None  # (parameters changed, bytes)
    # Runtime only, never part of a result or key: the evaluation's SVC fit started ahead, taken
    # by an attack only on byte-identical features (attacks.svc.fit_attack), so no number depends on it.
    fit_ahead: FitAhead | None = field(default=None, compare=False, repr=False)


def metric_value(result: Any) -> float | None:
    """The number a record stores for a metric result (float, None, or `result.value`)."""
    if result is None or isinstance(result, (int, float)):
        return result
    return float(result.value)


def applies(name: str, ctx: MetricContext) -> bool:
    return all(getattr(ctx, field) is not None for field in METRICS.entry(name).meta["needs"])


def _bypass(ctx: MetricContext) -> SplitOutputs:
    return ctx.controls.bypass


def _noise(ctx: MetricContext) -> SplitOutputs:
    return ctx.controls.noise


def select_metrics(ctx: MetricContext, extra: Iterable[str] = ()) -> list[str]:
    """Default metrics that apply to `ctx`, then the named extras (an unknown name is an error)."""
    names = [e.name for e in METRICS.entries() if e.meta["default"] and applies(e.name, ctx)]
    for name in extra:
        METRICS.entry(name)  # raises with suggestions
        if name not in names:
            if not applies(name, ctx):
                raise ConfigError(f"metric {name!r} needs {', '.join(METRICS.entry(name).meta['needs'])}, "
                                  "which this evaluation was not given")
            names.append(name)
    return names


def compute_metrics(ctx: MetricContext, names: Iterable[str]) -> dict[str, Any]:
    """Results of `names` and of everything they require, each computed once."""
    results: dict[str, Any] = {}

    def compute(name: str, chain: tuple[str, ...] = ()) -> Any:
        if name in results:
            return results[name]
        if name in chain:
            raise ValueError(f"metric dependencies form a cycle: {' → '.join((*chain, name))}")
        entry = METRICS.entry(name)
        deps = {dep: compute(dep, (*chain, name)) for dep in entry.meta["requires"]}
        results[name] = entry.obj(ctx, **deps)
        return results[name]

    for name in names:
        compute(name)
    return results


# ---------------------------------------------------------------------------------------------
# Building blocks (plain functions of one part's outputs)


def accuracy(part: PartOutputs) -> float | None:
    """Top-1 accuracy in %, None for an empty part."""
    if len(part.labels) == 0:
        return None
    return 100.0 * float((part.logits.argmax(1) == part.labels).double().mean())


def unlearning_accuracy(part: PartOutputs) -> float | None:
    """UA = 100 − accuracy on the forget set (SPEC §5)."""
    acc = accuracy(part)
    return None if acc is None else 100.0 - acc


def attack(outputs: SplitOutputs, config: MIAConfig, ahead: FitAhead | None = None) -> MIAResult:
    return mia_efficacy((outputs.retain.logits, outputs.retain.labels),
                        (outputs.test.logits, outputs.test.labels),
                        (outputs.forget.logits, outputs.forget.labels), config, ahead)


def avg_gap(metrics: Mapping[str, Any], reference: Mapping[str, Any]) -> float:
    """Mean over UA, RA, TA, MIA-Efficacy of |metric − Retrain's metric| (SPEC §5)."""
    missing = [k for k in GAP_METRICS if metric_value(metrics.get(k)) is None
               or metric_value(reference.get(k)) is None]
    if missing:
        raise ConfigError(f"Avg. Gap needs {', '.join(GAP_METRICS)} on both sides; missing: {', '.join(missing)}")
    return sum(abs(metric_value(metrics[k]) - metric_value(reference[k])) for k in GAP_METRICS) / len(GAP_METRICS)


def kl_divergence(reference: PartOutputs, part: PartOutputs) -> float | None:
    """Mean over samples of KL(p_retrain ‖ p_predictor) in nats.

    This direction weighs each class by Retrain's probability: it asks how much of what Retrain
    believes the predictor misses (a distillation target's direction). None for an empty part.
    """
    if len(part.labels) == 0:
        return None
    if reference.logits.shape != part.logits.shape or not torch.equal(reference.labels, part.labels):
        raise ConfigError("reference outputs do not match this split's samples (another split or dataset?); "
                          "pass Retrain's outputs of the same split and seed")
    log_ref = torch.log_softmax(reference.logits.double(), dim=1)
    log_own = torch.log_softmax(part.logits.double(), dim=1)
    return float((log_ref.exp() * (log_ref - log_own)).sum(1).mean())


# ---------------------------------------------------------------------------------------------
# The registered metrics (names are the record fields of docs/records.md)


@register_metric("ua", description="unlearning accuracy: 100 − accuracy on the forget set (%)")
def ua(ctx: MetricContext) -> float | None:
    return unlearning_accuracy(ctx.outputs.forget)


@register_metric("ra", description="remaining accuracy: accuracy on the retain set (%)")
def ra(ctx: MetricContext) -> float | None:
    return accuracy(ctx.outputs.retain)


@register_metric("ta", description="test accuracy (class-wise: remaining classes only) (%)")
def ta(ctx: MetricContext) -> float | None:
    return accuracy(ctx.outputs.test)


@register_metric("ta_forgotten", description="test accuracy on the forgotten classes (class-wise only) (%)")
def ta_forgotten(ctx: MetricContext) -> float | None:
    return accuracy(ctx.outputs.test_forgotten)


@register_metric("mia_efficacy", description="% of forget samples an SVM confidence attack calls non-members")
def mia_efficacy_metric(ctx: MetricContext) -> MIAResult:
    return attack(ctx.outputs, ctx.mia, ctx.fit_ahead)


@register_metric("avg_gap", requires=GAP_METRICS, needs=("reference",),
                 description="mean |metric − Retrain's| over UA, RA, TA, MIA-Efficacy (with a reference)")
def avg_gap_metric(ctx: MetricContext, **own: Any) -> float:
    return avg_gap(own, ctx.reference)


@register_metric("params_changed", needs=("storage",), description="parameters the method changes (count)")
def params_changed(ctx: MetricContext) -> float:
    return ctx.storage[0]


@register_metric("bytes", needs=("storage",), description="bytes to store the changed parameters (float32)")
def storage_bytes(ctx: MetricContext) -> float:
    return ctx.storage[1]


@register_metric("kl_forget", needs=("reference_outputs",),
                 description="mean KL(Retrain ‖ predictor) on the forget set, nats (with Retrain's outputs)")
def kl_forget(ctx: MetricContext) -> float | None:
    return kl_divergence(ctx.reference_outputs.forget, ctx.outputs.forget)


@register_metric("kl_test", needs=("reference_outputs",),
                 description="mean KL(Retrain ‖ predictor) on the test part, nats (with Retrain's outputs)")
def kl_test(ctx: MetricContext) -> float | None:
    return kl_divergence(ctx.reference_outputs.test, ctx.outputs.test)


@register_metric("ua_bypass", needs=("controls",),
                 description="control, input-based only: UA with the input transform removed (%)")
def ua_bypass(ctx: MetricContext) -> float | None:
    return unlearning_accuracy(_bypass(ctx).forget)


@register_metric("ua_noise", needs=("controls",),
                 description="control, input-based only: UA with a random δ of the same ℓ2 norm (%)")
def ua_noise(ctx: MetricContext) -> float | None:
    return unlearning_accuracy(_noise(ctx).forget)


@register_metric("ra_noise", needs=("controls",),
                 description="control, input-based only: RA with a random δ of the same ℓ2 norm (%)")
def ra_noise(ctx: MetricContext) -> float | None:
    return accuracy(_noise(ctx).retain)


@register_metric("ta_noise", needs=("controls",),
                 description="control, input-based only: TA with a random δ of the same ℓ2 norm (%)")
def ta_noise(ctx: MetricContext) -> float | None:
    return accuracy(_noise(ctx).test)


@register_metric("mia_noise", needs=("controls",),
                 description="control, input-based only: MIA-Efficacy with a random δ of the same ℓ2 norm (%)")
def mia_noise(ctx: MetricContext) -> MIAResult:
    return attack(_noise(ctx), ctx.mia)


def _mia_with_feature(feature: str) -> Callable[[MetricContext], MIAResult]:
    def metric(ctx: MetricContext) -> MIAResult:
        return attack(ctx.outputs, dataclasses.replace(ctx.mia, feature=feature))

    return metric


for _feature, _name, _text in (("entropy", "mia_entropy", "the softmax entropy"),
                               ("m_entropy", "mia_m_entropy", "Song & Mittal's modified entropy"),
                               ("correctness", "mia_correctness", "top-1 correctness")):
    METRICS.add(_name, _mia_with_feature(_feature), default=False, requires=(), needs=(),
                description=f"MIA-Efficacy with {_text} as the attack feature (%)")

MIA_EXTRAS = tuple(e.name for e in METRICS.entries() if not e.meta["default"])


# ---------------------------------------------------------------------------------------------
# The MIA's extrapolation check (SPEC §5, known weakness): every record says whether its
# MIA-Efficacy rests on data or on where the SVC's fit ends up without any (mubench/mia.py).


@register_metric("mia_support", requires=("mia_efficacy",),
                 description="non-members the MIA was fit on at or below the forget samples' median confidence (count)")
def mia_support(ctx: MetricContext, **deps: Any) -> float | None:
    return deps["mia_efficacy"].support


@register_metric("mia_extrapolates", requires=("mia_efficacy",),
                 description="true when mia_support < max(5, 1% of n): MIA-Efficacy is the SVC's extrapolation")
def mia_extrapolates(ctx: MetricContext, **deps: Any) -> bool:
    return deps["mia_efficacy"].extrapolates
