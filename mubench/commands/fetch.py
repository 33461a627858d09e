"""`mubench fetch NAME`: download a dataset with torchvision's downloader (needs internet)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("fetch", help="download a dataset into the data root (needs internet)",
                       description="Download a dataset through torchvision into --data-root "
                       "(default: $MUBENCH_DATA or ~/.cache/mubench/data).")
    p.add_argument("dataset", help="cifar10, cifar100, svhn or fashion-mnist")
    p.add_argument("--data-root", default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mubench.data import LoadOptions, load_dataset

    data = load_dataset(args.dataset, LoadOptions(data_root=args.data_root, download=True))
    print(f"{args.dataset}: {len(data.train_y)} train / {len(data.test_y)} test images ready")
    return 0
