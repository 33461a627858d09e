"""`mubench tune`: the fair search of SPEC §3 — an equal budget of candidates per method drawn
from each method's search space, run on tuning seeds and (by default) a validation split held
out of the training set, scored by mean + std of the Avg. Gap — and the tuned settings file it
writes for `mubench run`."""

from __future__ import annotations

import argparse
import shlex
import sys


def add_parser(sub) -> None:
    from mubench.commands.run import add_experiment_arguments
    from mubench.config import CRITERIA, PROTOCOLS, TUNING_SEEDS, TuneConfig

    p = sub.add_parser(
        "tune", help="search every method's hyper-parameters with an equal budget, never on reported numbers",
        description="Draw --budget candidates per method and scenario kind from each method's search "
        "space, run them as ordinary (cached, resumable, parallel) jobs on tuning seeds and, by default, on "
        "a validation split held out of the training set (the test set is never read), choose per "
        "(dataset, model, scenario kind) by mean + std of the Avg. Gap to Retrain, print all candidates, and "
        "write OUT/tune/tune.md and a tuned settings file OUT/tune/tuned-DATASET-MODEL.toml for "
        "`mubench run --tuned FILE`. Takes the same experiment options as `run`. Details: docs/tuning.md.")
    groups = add_experiment_arguments(
        p, seeds_help=f"tuning seeds (default: [tune] seeds of --config, else {','.join(map(str, TUNING_SEEDS))}); "
        "they must be disjoint from the reporting seeds, which stay those of --config",
        out_help="results root; the search goes under OUT/tune (default: results)")
    d = TuneConfig()
    what = groups["what"]
    what.add_argument("--tune-scenarios", metavar="LIST",
                      help="forget sets to select on (scenarios or families, e.g. class:sample:5,random:10); they may "
                      "not forget a class that --scenarios reports (default: drawn from the classes no reported "
                      "scenario forgets; random forget sets are drawn from the tuning seeds)")
    what.add_argument("--budget", type=int, help=f"candidates per method and scenario kind (default: {d.budget})")
    what.add_argument("--protocol", choices=PROTOCOLS,
                      help="heldout: select on a validation split held out of the training set (default); "
                      "test: the references' protocol, select on the test set (labelled so in every output)")
    what.add_argument("--validation", type=float, metavar="FRACTION",
                      help=f"held-out fraction of the training set under --protocol heldout (default: {d.validation:g})")
    what.add_argument("--criterion", choices=CRITERIA,
                      help="mean+std of the Avg. Gap over the tuning runs (default) or its mean (the references')")
    what.add_argument("--grid", action="append", default=[], metavar="METHOD.FIELD=V1,V2,...",
                      help="explicit candidates of one hyper-parameter instead of the method's drawn ones, e.g. "
                      "--grid finetune.lr=0.01,0.03,0.1 (repeatable; several fields → their product; the outputs "
                      "then say the budgets are unequal)")
    what.add_argument("--write", metavar="FILE",
                      help="also write the tuned settings file here (one dataset and model only), e.g. "
                      "mubench/tuned/digits.toml to ship it")
    p.set_defaults(func=run)


def search_settings(args: argparse.Namespace, config):
    """[tune] of --config with the command's flags on top (seeds here are the tuning seeds)."""
    import dataclasses

    from mubench.commands.run import parse_seeds
    from mubench.config import split_scenarios

    tune_scenarios = split_scenarios(args.tune_scenarios) if args.tune_scenarios is not None else None
    given = {"seeds": parse_seeds(args.seeds), "scenarios": tune_scenarios, "budget": args.budget, "protocol": args.protocol,
             "validation": args.validation, "criterion": args.criterion}
    return dataclasses.replace(config.tune, **{k: v for k, v in given.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from mubench import tune_output, tuning
    from mubench.commands.run import config_from_args
    from mubench.config import SET_TABLES, parse_set_options
    from mubench.errors import ConfigError
    from mubench.runner import describe_plan, execute
    from mubench.store import Store
    from mubench.validate import check_tune

    config = config_from_args(argparse.Namespace(**{**vars(args), "seeds": None}))
    search = search_settings(args, config)
    check_tune(dataclasses.replace(config, tune=search))
    sets = {owner: values for owner, values in parse_set_options(args.set).items()
            if owner not in SET_TABLES}  # config tables ([recipe], [bank]) are not methods to tune
    tp = tuning.plan_tune(config, search, tuning.parse_grid_options(args.grid), sets)
    if args.write and len({(c.dataset, c.model) for c in tp.cells}) != 1:
        raise ConfigError("--write takes one tuned settings file: select one dataset and one model")
    print(f"protocol {search.protocol}: {tuning.protocol_words(search)}")
    for method, words in tp.spaces.items():
        print(f"{method}: {words}")
    if not tp.equal_budget:
        print("mubench: note: budgets are unequal (an explicit --grid replaced some draws)", file=sys.stderr)
    if args.dry_run:
        n = sum(len(c.candidates) for c in tp.cells)
        print(f"{n} candidates in {len(tp.cells)} (dataset, model, scenario kind, method) cells, "
              f"seeds {', '.join(map(str, search.seeds))}")
        for line in describe_plan(tp.plan):
            print(line)
        return 0
    Store(tp.config.out).check_writable()
    result = execute(tp.plan, tp.config, progress=None if not args.quiet else False)
    outcomes = tuning.select(tp)
    typed = getattr(args, "argv", None) or []
    command = "python -m mubench " + shlex.join(typed if typed[:1] == ["tune"] else ["tune"])
    paths = tune_output.write_outputs(tp, outcomes, config, command, args.write)
    print(tune_output.tune_markdown(tp, outcomes, config.seeds))
    print(f"{result.ran} jobs run, {result.cached} cached, {len(result.failed)} failed in {result.seconds:.1f} s; "
          f"candidates in {tp.config.out}/ (tune.md, tune.json)")
    for path in paths:
        if path.suffix == ".toml":
            print(f"tuned settings: {path}\n    python -m mubench run --tuned {path}")
    unchosen = [o for o in outcomes if o.winner is None]
    if result.failed or unchosen:
        print(f"{len(result.failed)} job(s) failed, {len(unchosen)} cell(s) without a choice; "
              f"tracebacks under {tp.config.out}/logs/", file=sys.stderr)
        return 1
    return 0
