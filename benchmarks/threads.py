"""What the fixed CPU thread count costs a lone job, and what the thread count does to the bits.

mubench runs every CPU job with `[execution] threads_per_worker` torch threads (default 1),
whatever else is ready, because the count changes a job's numbers (issue 28). A grid stage with
at least as many ready jobs as cores loses nothing by it (one 1-thread worker per core); a stage
with one ready job leaves the other cores idle. This measures that loss, per model, as one
training epoch (fp32, mubench's loop) with 1 thread against `--compare` threads, interleaved,
medians; and it trains the same model from the same initialisation twice at 1 thread and once at
the compared count, and reports the largest weight difference (0 means bit-identical).

    python benchmarks/threads.py             # about 1 minute on a 2-core guest
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from _common import interleaved, parser, record, setup, table

from mubench.augment import Augment
from mubench.data import load_dataset
from mubench.models import ModelSpec, build_model
from mubench.training import OptimSpec, Recipe, fit_supervised


def digits_task():
    data = load_dataset("digits")
    return "small_cnn", data.train_x, data.train_y, ModelSpec(10, 1, 8, data.mean, data.std), 64

def resnet20_task():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (512, 3, 32, 32), dtype=np.uint8))
    y = torch.from_numpy(rng.integers(0, 10, 512)).long()
    return "resnet20", x, y, ModelSpec(10, 3, 32, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)), 128

def train(name, spec, x, y, batch, threads):
    """One fp32 epoch from seed 0's initialisation with `threads` torch threads; the weights."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_model(name, spec)
    recipe = Recipe(epochs=1, batch_size=batch, precision="fp32", optim=OptimSpec(lr=0.05, schedule="constant"))
    fit_supervised(net, x, y, recipe, Augment("crop_flip", pad=1 if spec.image_size == 8 else 4), 0, torch.device("cpu"),
                   progress=False)
    return [p.detach().clone() for p in net.state_dict().values() if p.is_floating_point()]

def max_difference(a, b) -> float:
    return max(float((u - v).abs().max()) for u, v in zip(a, b, strict=True))

def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--compare", type=int, default=2, help="the thread count compared with 1 (default 2)")
    args = p.parse_args()
    device = setup(args)
    rows, figures = [], {}
    for task in (digits_task, resnet20_task):
        name, x, y, spec, batch = task()
        ways = {t: functools.partial(train, name, spec, x, y, batch, t) for t in (1, args.compare)}
        seconds = interleaved({f"{t} threads": fn for t, fn in ways.items()}, args.repeats, device)
        one, again, many = ways[1](), ways[1](), ways[args.compare]()
        same, other = max_difference(one, again), max_difference(one, many)
        speedup = seconds["1 threads"] / seconds[f"{args.compare} threads"]
        figures[name] = {**seconds, "max_diff_same_threads": same, "max_diff_other_threads": other}
        rows.append([name, seconds["1 threads"], seconds[f"{args.compare} threads"], speedup, same, other])
        record("threads", args, device, figures[name], speedup, model=name, compare=args.compare)
    print(table(["model (one fp32 epoch)", "1 thread s", f"{args.compare} threads s", f"{args.compare} threads ×",
                 "max |Δw|, 1 thread twice", f"max |Δw|, 1 vs {args.compare} threads"], rows))

if __name__ == "__main__":
    main()
