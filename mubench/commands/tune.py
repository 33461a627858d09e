"""`mubench tune`: grid-search each method's hyper-parameters per scenario (SPEC §3) on tuning
seeds, print every candidate, and write a config that `mubench run --config` reads."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    from mubench.commands.run import add_experiment_arguments
    from mubench.config import TUNING_SEEDS

    p = sub.add_parser(
        "tune", help="grid-search hyper-parameters per scenario for the smallest Avg. Gap to Retrain",
        description="Run every candidate of each method's grid as ordinary (cached, resumable, "
        "parallel) jobs on tuning seeds, choose per (dataset, model, scenario) the candidate with the "
        "smallest mean Avg. Gap to Retrain, print all candidates, and write OUT/tune/tune.md and "
        "OUT/tune/tuned-DATASET-MODEL.toml for `mubench run --config`. Takes the same experiment "
        "options as `run`. Details: docs/tuning.md.")
    groups = add_experiment_arguments(
        p, seeds_help=f"tuning seeds (default: [tune] seeds of --config, else {','.join(map(str, TUNING_SEEDS))}: "
        "disjoint from the reporting seeds, which stay those of --config)",
        out_help="results root the tuned config reports into; the search itself goes under OUT/tune "
        "(default: results)")
    groups["what"].add_argument(
        "--grid", action="append", default=[], metavar="METHOD.FIELD=V1,V2,...",
        help="candidate values of one hyper-parameter, e.g. --grid finetune.lr=0.01,0.03,0.1 "
        "(repeatable; several fields of a method → their product; overrides [tune.grid.METHOD] of "
        "--config; a method without a grid searches its default lr x 1/3, 1, 3)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mubench import tune_output, tuning
    from mubench.commands.run import config_from_args, parse_seeds
    from mubench.config import SET_TABLES, parse_set_options
    from mubench.runner import describe_plan, execute
    from mubench.store import Store

    # --seeds here are the tuning seeds; the config keeps its own (reporting) seeds.
    config = config_from_args(argparse.Namespace(**{**vars(args), "seeds": None}))
    seeds = parse_seeds(args.seeds) or config.tune.seeds
    sets = {owner: values for owner, values in parse_set_options(args.set).items()
            if owner not in SET_TABLES}  # config tables ([recipe], [bank]) are not methods to tune
    tp = tuning.plan_tune(config, seeds, tuning.parse_grid_options(args.grid), sets)
    for method, words in tp.grids.items():
        print(f"{method}: {words}")
    overlap = sorted(set(seeds) & set(config.seeds))
    if overlap:
        print(f"mubench: note: tuning seeds {', '.join(map(str, overlap))} are also reporting seeds: numbers "
              "reported on them are ones the selection saw", file=sys.stderr)
    if args.dry_run:
        n = sum(len(c.candidates) for c in tp.cells)
        print(f"{n} candidates in {len(tp.cells)} (dataset, model, scenario, method) cells, "
              f"seeds {', '.join(map(str, seeds))}")
        for line in describe_plan(tp.plan):
            print(line)
        return 0
    Store(tp.config.out).check_writable()
    result = execute(tp.plan, tp.config, progress=None if not args.quiet else False)
    outcomes = tuning.select(tp)
    paths = tune_output.write_outputs(tp, outcomes, config)
    print(tune_output.tune_markdown(tp, outcomes, config.seeds))
    print(f"{result.ran} jobs run, {result.cached} cached, {len(result.failed)} failed in {result.seconds:.1f} s; "
          f"candidates in {tp.config.out}/ (tune.md, tune.json)")
    for path in paths:
        if path.suffix == ".toml":
            print(f"tuned config: {path}\n    python -m mubench run --config {path}")
    unchosen = [o for o in outcomes if o.winner is None]
    if result.failed or unchosen:
        print(f"{len(result.failed)} job(s) failed, {len(unchosen)} cell(s) without a choice; "
              f"tracebacks under {tp.config.out}/logs/", file=sys.stderr)
        return 1
    return 0
