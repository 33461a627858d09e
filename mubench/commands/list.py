"""`mubench list [datasets|models|scenarios|methods|metrics|resources|attacks]`: what is available, one line each."""

from __future__ import annotations

import argparse
import importlib

KINDS = ("datasets", "models", "scenarios", "methods", "metrics", "resources", "attacks")


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="list datasets, models, scenarios, methods, metrics, resources or attacks",
                       description="List what mubench can run, with one-line descriptions.")
    p.add_argument("kind", nargs="?", choices=KINDS, default=None, help="what to list (default: everything)")
    p.add_argument("--plugin", action="append", default=[], metavar="PATH",
                   help="also load methods, datasets, models, metrics or attacks from this file (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mubench.plugins import load_plugins

    load_plugins(args.plugin)  # a broken plugin is listed under methods as (unavailable)
    for kind in [args.kind] if args.kind else KINDS:
        print(f"{kind}:")
        for line in LISTERS[kind](args):
            print(f"  {line}")
        print()
    return 0


def _datasets(args):
    from mubench.data import DATASETS

    for e in DATASETS.entries():
        yield f"{e.name:<16} {e.description}"
    yield f"{'imagefolder:PATH':<16} any ImageFolder tree with train/ and val/ (224 px eval crop)"


def _models(args):
    from mubench.models import MODELS

    for e in MODELS.entries():
        yield f"{e.name:<16} {e.description}"
    yield f"{'vit_*':<16} a timm ViT (needs: pip install 'mubench[timm]')"


def _scenarios(args):
    from mubench.scenarios import FAMILY_KINDS, SCENARIO_KINDS

    yield from SCENARIO_KINDS.values()
    yield from FAMILY_KINDS.values()


def _methods(args):
    from mubench.params import fields_help
    from mubench.search import search_space
    from mubench.unlearning import METHODS

    for e in METHODS.entries():
        cls = e.obj
        yield f"{e.name:<16} {e.description}  (version {cls.version})"
        space = search_space(cls.Params)
        for name, tp, default, text in fields_help(cls.Params):
            searched = f"  [searched: {space[name]}]" if name in space else ""
            yield f"    {name:<14} {tp:<6} = {default!r:<12} {text}{searched}"
    for source, reason in METHODS.broken.items():
        yield f"{'(unavailable)':<16} {source}: {reason}"


def _metrics(args):
    try:
        metrics = importlib.import_module("mubench.metrics")
    except ModuleNotFoundError:
        return
    for e in metrics.METRICS.entries():
        default = "" if e.meta.get("default", True) else "  [extra]"
        yield f"{e.name:<20} {e.description}{default}"


def _resources(args):
    """Artifacts plugins build for the methods that require them, with their config table."""
    try:
        resources = importlib.import_module("mubench.resources")
    except ModuleNotFoundError:
        return
    for e in resources.RESOURCES.entries():
        section = getattr(e.obj, "section", "")
        yield f"{e.name:<16} {e.description}" + (f"  [{section}]" if section else "")


def _attacks(args):
    """Attacks with their instance table's fields and the report columns they add."""
    from mubench.attacks import ATTACKS
    from mubench.params import fields_help

    for e in ATTACKS.entries():
        cls = e.obj
        on = "  [always on]" if cls.always else f"  [evaluation.attacks.{e.name}]"
        yield f"{e.name:<16} {e.description}{on}"
        for name, tp, default, text in fields_help(cls.Params):
            yield f"    {name:<14} {tp:<6} = {default!r:<12} {text}"
        summary = [col.summary_header for col in cls.columns.values() if col.summary]
        if summary:
            yield f"    columns: {', '.join(summary)}"


LISTERS = {"datasets": _datasets, "models": _models, "scenarios": _scenarios,
           "methods": _methods, "metrics": _metrics, "resources": _resources, "attacks": _attacks}
