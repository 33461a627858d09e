"""`mubench analyze`: forget-vector analyses (transfer, geometry, data shift, recovery attacks,
relearning attack, sensitivity) of a
finished grid, from its stored predictors; results cached under DIR/analysis/cache."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from mubench.analysis.relearn import LR, RETAIN_MIX, SAMPLES, STEPS
    from mubench.analysis.report import ANALYSES

    p = sub.add_parser("analyze", help="forget-vector analyses of a finished grid (figures + Markdown)",
                       description="Transfer of class-wise forget vectors, geometry of x + δ, every predictor "
                       "under data shift, under input-space recovery attacks and under a relearning attack "
                       "(Retrain as the control), and the forget vector's sensitivity to β, λ, τ and epochs. Reads the "
                       "stored predictors of DIR; the sensitivity sweep runs (cached) forget-vector jobs in DIR.")
    p.add_argument("--results", default="results", metavar="DIR", help="results root of `mubench run`")
    p.add_argument("--only", default=",".join(ANALYSES), metavar="LIST",
                   help=f"comma-separated analyses among {', '.join(ANALYSES)} (default: all)")
    p.add_argument("--max-samples", type=int, default=2000, metavar="N",
                   help="data shift, recovery, relearn: at most N samples per part (seeded subset; default 2000)")
    p.add_argument("--epsilons", default=None, metavar="LIST",
                   help="recovery: ℓ∞ budgets in 1/255 pixel steps, e.g. 0,4,16 (default: 0,2,4,8,16,32)")
    p.add_argument("--relearn-samples", default=",".join(map(str, SAMPLES)), metavar="LIST",
                   help="relearn: sizes of the attacker's labelled forget sample, each its own seeded attack "
                   "(default: %(default)s)")
    p.add_argument("--relearn-steps", default=",".join(map(str, STEPS)), metavar="LIST",
                   help="relearn: SGD step counts to score after; step 0 is always scored (default: %(default)s)")
    p.add_argument("--relearn-lr", type=float, default=LR, metavar="LR",
                   help="relearn: learning rate of the plain-SGD fine-tuning (default: %(default)s)")
    p.add_argument("--relearn-retain", default=",".join(map(str, RETAIN_MIX)), metavar="LIST",
                   help="relearn: retain samples the attacker adds to every step's batch, each its own attack; 0 is "
                   "the forget sample alone, which on a class-wise forget set also collapses a model onto the class "
                   "(default: %(default)s)")
    p.add_argument("--sweep", default=None, metavar="LIST",
                   help="sensitivity: parameters to sweep among beta, lam, tau, epochs, select (default: all)")
    p.add_argument("--scenarios", default=None, metavar="LIST",
                   help="sensitivity: the grid's scenarios to sweep, e.g. class:0 (default: all of them)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mubench.analysis.report import ANALYSES, write_analysis
    from mubench.errors import ConfigError

    only = tuple(a.strip() for a in args.only.split(",") if a.strip())
    unknown = [a for a in only if a not in ANALYSES]
    if unknown:
        raise ConfigError(f"--only: unknown analysis {unknown[0]!r}; choose among {', '.join(ANALYSES)}")
    from mubench.analysis.sensitivity import SWEPT
    from mubench.config import split_scenarios

    swept = tuple(a.strip() for a in args.sweep.split(",") if a.strip()) if args.sweep else None
    bad = [a for a in swept or () if a not in SWEPT]
    if bad:
        raise ConfigError(f"--sweep: unknown parameter {bad[0]!r}; choose among {', '.join(SWEPT)}")
    scenarios = split_scenarios(args.scenarios) if args.scenarios else ()
    print(write_analysis(args.results, only, max_samples=args.max_samples, swept=swept, scenarios=scenarios,
                         epsilons=_epsilons(args.epsilons), relearn=_relearn(args)))
    return 0


def _epsilons(text: str | None) -> tuple[float, ...] | None:
    """--epsilons '0,4,16' → (0, 4/255, 16/255); None → the analysis's default."""
    from mubench.errors import ConfigError

    if text is None:
        return None
    try:
        steps = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        steps = []
    if not steps or any(not 0 <= v <= 255 for v in steps):
        raise ConfigError(f"--epsilons: expected comma-separated budgets in 1/255 steps between 0 and 255, "
                          f"e.g. 0,4,16; got {text!r}")
    return tuple(v / 255 for v in steps)


def _relearn(args: argparse.Namespace):
    """--relearn-samples / --relearn-steps / --relearn-lr / --relearn-retain → relearn.RelearnSettings."""
    from mubench.analysis.relearn import RelearnSettings
    from mubench.errors import ConfigError

    def counts(flag: str, text: str, low: int) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            values = ()
        if not values or min(values) < low:
            raise ConfigError(f"{flag}: expected comma-separated whole numbers of at least {low}, e.g. {low},5,20; "
                              f"got {text!r}")
        return tuple(sorted(set(values)))

    if not args.relearn_lr > 0:
        raise ConfigError(f"--relearn-lr: expected a positive learning rate, e.g. 0.01; got {args.relearn_lr}")
    return RelearnSettings(counts("--relearn-samples", args.relearn_samples, 1),
                           counts("--relearn-steps", args.relearn_steps, 1), args.relearn_lr,
                           counts("--relearn-retain", args.relearn_retain, 0))
