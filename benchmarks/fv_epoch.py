"""What one forget-vector epoch costs, way by way, beside one fine-tuning epoch (issue 27).

Fashion-MNIST-shaped inputs (3,000 images of 1×28×28, as `fashion-mnist[3000]`), small_cnn,
one thread: a forget-vector epoch (frozen model in eval mode, no weight gradients, gradient to δ
only, mubench's loss) against a fine-tuning epoch over the 2,700 retain images (batch 64, weight
gradients, SGD step). Ways: batch size, bf16 autocast of the frozen layers after the fp32 input
layer (`frozen_precision`), the dataset's augmentation on or off, and `torch.compile` of the
frozen network (its compile time reported apart). Interleaved, medians.

    python benchmarks/fv_epoch.py                # about 2 minutes on a 2-core guest
"""

from __future__ import annotations

import functools
import time

import torch
from _common import interleaved, parser, record, setup, table

from mubench.augment import Augment
from mubench.methods.forget_vector import PerturbationParams, forget_vector_loss
from mubench.models import ModelSpec, build_model

N, RETAIN = 3000, 2700


def fv_epoch(net, x, y, forget, batch: int, bf16: bool, augment: Augment | None, generator: torch.Generator):
    p = PerturbationParams(beta=5.0)
    delta = torch.zeros((1, *x.shape[1:]), requires_grad=True)
    optim = torch.optim.SGD([delta], lr=0.1, momentum=0.9)
    for start in range(0, len(y), batch):
        xb = x[start:start + batch]
        if augment is not None:
            xb = augment(xb, generator)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(xb + delta)
        loss = forget_vector_loss(logits, y[start:start + batch], forget[start:start + batch], delta.norm(), p)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()


def ft_epoch(net, x, y, batch: int):
    net.train()
    for q in net.parameters():
        q.requires_grad_(True)
    optim = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for start in range(0, RETAIN, batch):
        loss = torch.nn.functional.cross_entropy(net(x[start:start + batch]), y[start:start + batch])
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
    net.eval()
    for q in net.parameters():
        q.requires_grad_(False)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the frozen network")
    args = p.parse_args()
    device = setup(args)
    g = torch.Generator().manual_seed(0)
    x = torch.rand((N, 1, 28, 28), generator=g)
    y = torch.randint(0, 10, (N,), generator=g)
    forget = y == 0
    net = build_model("small_cnn", ModelSpec(10, 1, 28, (0.29,), (0.35,))).to(memory_format=torch.channels_last).eval()
    for q in net.parameters():
        q.requires_grad_(False)
    aug = Augment("crop_flip", pad=2)
    ways = {f"FV batch {b}{', bf16' if bf16 else ''}{', no aug' if a is None else ''}":
            functools.partial(fv_epoch, net, x, y, forget, b, bf16, a, g)
            for b in (32, 128) for bf16 in (False, True) for a in (aug, None)}
    ways["FT batch 64 (2,700 retain images)"] = functools.partial(ft_epoch, net, x, y, 64)
    compile_s = None
    if args.compile:
        compiled = torch.compile(net)
        start = time.perf_counter()
        fv_epoch(compiled, x, y, forget, 128, False, aug, g)  # first epoch: tracing and code generation
        compile_s = time.perf_counter() - start
        ways["FV batch 128, torch.compile"] = functools.partial(fv_epoch, compiled, x, y, forget, 128, False, aug, g)
    seconds = interleaved(ways, args.repeats, device)
    base = seconds["FV batch 128"]
    rows = [[name, s, base / s] for name, s in seconds.items()]
    print(table(["way", "epoch s (median)", "× FV batch 128 fp32 with aug"], rows))
    if compile_s is not None:
        print(f"torch.compile: first epoch (compile + run) {compile_s:.1f} s")
    record("fv_epoch", args, device, {**seconds, "compile_first_epoch_s": compile_s},
           base / seconds["FV batch 128, bf16, no aug"])


if __name__ == "__main__":
    main()
