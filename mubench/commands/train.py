"""`mubench train`: train (or load from the store) the original model of a dataset."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train or load the original model of (dataset, model, seed)",
                       description="Train the original model with its dataset's preset recipe, or "
                       "load it from the results store if it was trained before.")
    p.add_argument("--dataset", default="digits", help="dataset name (default: digits)")
    p.add_argument("--model", default=None, help="model name (default: the dataset preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--out", default="results", help="results root holding the store (default: results)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads on a CPU (default 1, as `mubench run`; part of the key)")
    p.add_argument("--data-root", default=None, help="where datasets live (default: $MUBENCH_DATA or ~/.cache/mubench/data)")
    p.add_argument("--plugin", action="append", default=[], metavar="PATH",
                   help="load datasets or models from this file (repeatable)")
    p.set_defaults(func=run)


def validate_args(args: argparse.Namespace) -> None:
    """The same one-line checks as `mubench run`, before any data is read."""
    from mubench import validate
    from mubench.errors import ConfigError
    from mubench.plugins import load_plugins

    load_plugins(args.plugin, strict_plugins=True)
    validate.check_datasets((args.dataset,), "--dataset")
    if args.model is not None:
        validate.check_models((args.model,), "--model")
    validate.check_seeds((args.seed,), "--seed")
    if args.epochs is not None:
        validate.check_recipe({"epochs": args.epochs}, "--epochs")
    validate.check_device(args.device, "--device")
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1; got {args.threads}")


def run(args: argparse.Namespace) -> int:
    from mubench.data import LoadOptions
    from mubench.jobs import RunContext
    from mubench.planner import original_job
    from mubench.presets import preset_for
    from mubench.store import Store
    from mubench.workers import configure_worker

    validate_args(args)
    device = configure_worker(args.device, args.threads)
    store = Store(args.out)
    store.check_writable()
    recipe = {} if args.epochs is None else {"epochs": args.epochs}
    # The same Original job `mubench run` plans, so a model trained here is reused there.
    job = original_job(args.dataset, LoadOptions(data_root=args.data_root), args.model or preset_for(args.dataset).model,
                       recipe, "auto", args.seed, device, args.threads)
    original = job.load(RunContext(store, device))
    info = original.info
    how = "loaded from the store" if info["loaded"] else f"trained in {info['seconds']:.1f} s"
    print(f"original {args.dataset}/{info['model']}/seed {args.seed}: train accuracy "
          f"{info['train_acc']:.2f}%, test accuracy {info['test_acc']:.2f}% ({how}; key {original.key})")
    return 0
