"""`mubench run`: expand the experiment grid, run what is not cached, print the summary table."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run", help="run methods over datasets x scenarios x seeds (resumable)",
        description="Run unlearning methods over a grid of datasets, models, scenarios and seeds. "
        "Finished jobs are cached in the results root; rerunning resumes where a run stopped. "
        "With no options it runs the embedded default: digits, small_cnn, class:0 and random:10, "
        "seeds 0,1,2, every registered method.")
    add_experiment_arguments(p)
    p.set_defaults(func=run)


def add_experiment_arguments(p, seeds_help: str = "comma-separated seeds (default: 0,1,2)",
                             out_help: str = "results root (default: results)") -> dict:
    """The options that select and execute an experiment (shared by `run` and `tune`); returns
    the argument groups by name so a command can add its own options to them."""
    what = p.add_argument_group("what to run (flags override --config)")
    what.add_argument("--config", metavar="FILE", help="experiment TOML file (see experiments/)")
    what.add_argument("--methods", help="comma-separated names or patterns, or 'all' (default: all)")
    what.add_argument("--datasets", help="comma-separated dataset names (default: digits)")
    what.add_argument("--models", help="comma-separated model names (default: each dataset's preset model)")
    what.add_argument("--scenarios", help="e.g. class:0,random:10,classes:1,2,subset:1,2:50, or families of forget sets: class:all, "
                      "class:sample:K[:S], random:1+10+50 (default: class:0,random:10)")
    what.add_argument("--seeds", help=seeds_help)
    what.add_argument("--set", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                      help="override a hyper-parameter in every scenario (beats the config's tables), "
                      "e.g. --set salun.lr=0.02, --set recipe.epochs=5 or --set bank.epochs=30 (repeatable)")
    what.add_argument("--tuned", metavar="auto|none|FILE",
                      help="tuned hyper-parameters: auto (the shipped mubench/tuned/ file matching each dataset, "
                      "subset and model; default), none (method defaults), or a file written by `mubench tune`")
    what.add_argument("--plugin", action="append", default=None, metavar="PATH",
                      help="load methods, datasets, models or metrics from this file (repeatable)")
    where = p.add_argument_group("data and results")
    where.add_argument("--out", help=out_help)
    where.add_argument("--data-root", help="where datasets live (default: $MUBENCH_DATA or ~/.cache/mubench/data)")
    where.add_argument("--download", action="store_true", default=None, help="download missing datasets")
    where.add_argument("--train-subset", type=int, metavar="N",
                       help="use a fixed stratified subset of N training images (CPU-sized runs)")
    how = p.add_argument_group("execution")
    how.add_argument("--jobs", type=int, help="parallel workers (default: one per GPU, else one per CPU core)")
    how.add_argument("--threads", type=int, metavar="N",
                     help="torch threads of every CPU job (default 1; part of the jobs' keys, since CPU results "
                     "depend on it); the workers are cores / N. Share a machine between runs with --jobs")
    how.add_argument("--backend", choices=("loky", "dask", "sequential"), help="default: loky")
    how.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler, e.g. tcp://host:8786")
    how.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    how.add_argument("--precision", choices=("auto", "fp32", "bf16"), help="default: auto (bf16 on GPUs and on CPUs with AMX, else fp32)")
    how.add_argument("--dry-run", action="store_true", help="print the job graph and exit")
    how.add_argument("--quiet", action="store_true", help="no progress bars")
    return {"what": what, "where": where, "how": how}


def _csv(text: str | None):
    return None if text is None else tuple(x.strip() for x in text.split(",") if x.strip())


def parse_seeds(text: str | None) -> tuple[int, ...] | None:
    """`--seeds 0,1,2` → (0, 1, 2); None when the flag was not given."""
    from mubench.errors import ConfigError

    if text is None:
        return None
    try:
        return tuple(int(s) for s in _csv(text))
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers; got {text!r}") from None


def config_from_args(args: argparse.Namespace):
    from mubench.config import (
        ExperimentConfig,
        parse_set_options,
        split_scenarios,
        with_overrides,
        with_set_options,
    )
    from mubench.config_toml import load_config

    config = load_config(args.config) if args.config else ExperimentConfig()
    # --set beats [recipe], [bank], [methods.NAME] and its scenario tables
    config = with_set_options(config, parse_set_options(args.set))
    return with_overrides(
        config,
        methods=_csv(args.methods), datasets=_csv(args.datasets), models=_csv(args.models),
        scenarios=None if args.scenarios is None else split_scenarios(args.scenarios),
        seeds=parse_seeds(args.seeds), out=args.out, data_root=args.data_root,
        download=args.download, precision=args.precision, train_subset=args.train_subset,
        plugins=tuple(args.plugin) if args.plugin is not None else None, tuned=getattr(args, "tuned", None),
        execution_jobs=args.jobs, execution_threads_per_worker=args.threads,
        execution_backend=args.backend, execution_scheduler=args.scheduler,
        execution_device=args.device,
    )


def run(args: argparse.Namespace) -> int:
    from mubench.runner import build_plan, describe_plan, execute, settings_line
    from mubench.runs import write_run
    from mubench.store import Store
    from mubench.tuned import describe_tuned
    from mubench.validate import validate_config

    config = config_from_args(args)
    validate_config(config)  # before the results folder is touched (build_plan checks it again)
    store = Store(config.out)
    if not args.dry_run:
        store.check_writable()
    plan = build_plan(config, store)
    print(settings_line(config), flush=True)
    for line in describe_tuned(config):
        print(line, flush=True)
    if args.dry_run:
        for line in describe_plan(plan):
            print(line)
        return 0
    write_run(store.root, config)  # this run's resolved config, beside the earlier runs' (mubench/runs.py)
    result = execute(plan, config, progress=None if not args.quiet else False)
    print(summary_text(result.records + result.failed))
    print(f"\n{result.ran} jobs run, {result.cached} cached, {len(result.failed)} failed "
          f"in {result.seconds:.1f} s; results in {store.root}/ (python -m mubench report --results {store.root})")
    if result.failed:
        print(f"{len(result.failed)} job(s) failed; tracebacks under {store.root}/logs/", file=sys.stderr)
        return 1
    return 0


def summary_text(records: list[dict]) -> str:
    """The summary table of a run (mean ± std over seeds) as Markdown."""
    from mubench.report import records_frame, summary_markdown

    return summary_markdown(records_frame(records))
