"""Training throughput: mubench's loop against a reference-style loop, per model and precision.

The reference-style loop is what research code for CIFAR unlearning usually does: a
torchvision DataLoader over PIL images with RandomCrop(32, padding=4) + RandomHorizontalFlip +
ToTensor + Normalize, num_workers=0, fp32, NCHW. mubench's loop (`training.fit_supervised`)
keeps uint8 tensors on the device and augments whole batches there; on top of that it runs
channels-last and the device's default precision. Ways, all on the same synthetic CIFAR-shaped
uint8 data (10 classes), each timed as one epoch, interleaved, medians over repeats:

    reference       DataLoader + PIL transforms, fp32, NCHW
    mubench fp32    tensor-resident data + batched augmentation, fp32, NCHW (the data path alone)
    mubench bf16    the default (channels-last) with bf16 autocast: is bf16 worth defaulting to here?
    mubench default Recipe()'s defaults: channels-last, precision "auto" for the device

Then an accuracy check of the defaults on real data: the digits original (preset recipe) with
NCHW fp32, the default, and bf16, so a faster default is never a less accurate one.

    python benchmarks/training.py            # about 4 minutes on one Zen 4 / Sapphire Rapids core
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from _common import interleaved, parser, record, setup, table
from torch import nn

from mubench.augment import Augment
from mubench.device import resolve_precision
from mubench.models import ModelSpec, build_model
from mubench.training import OptimSpec, Recipe, fit_supervised

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
# model → (images per timed epoch, batch size): sized so each model takes a few seconds an epoch.
SIZES = {"small_cnn": (2048, 256), "resnet20": (512, 128), "resnet18": (128, 64)}


class PILImages(torch.utils.data.Dataset):
    """CIFAR-style dataset: uint8 HWC arrays turned into PIL images per item, as torchvision's CIFAR10."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def reference_epoch(net: nn.Module, loader, optimizer) -> float:
    """One epoch of the reference-style loop (fp32, loss.item() per step as research code logs it)."""
    net.train()
    total = 0.0
    for x, y in loader:
        loss = nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total


def measure_model(name: str, args, device: torch.device) -> dict:
    from torchvision import transforms as T

    n, batch = SIZES[name]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    spec = ModelSpec(10, 3, 32, MEAN, STD)

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    loader = torch.utils.data.DataLoader(PILImages(images, labels, transform), batch_size=batch, shuffle=True,
                                         num_workers=0)
    torch.manual_seed(0)
    ref_net = build_model(name, spec).body.to(device)  # the same network; normalisation is in the transform
    ref_opt = torch.optim.SGD(ref_net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(labels).long()
    default = Recipe(epochs=1, batch_size=batch, optim=OptimSpec(lr=0.01, schedule="constant"))
    recipes = {
        "mubench fp32": dataclasses.replace(default, precision="fp32", channels_last=False),
        "mubench bf16": dataclasses.replace(default, precision="bf16"),
        "mubench default": default,
    }
    nets = {}
    for way in recipes:
        torch.manual_seed(0)
        nets[way] = build_model(name, spec)
    aug = Augment("crop_flip", pad=4)
    ways = {"reference": lambda: reference_epoch(ref_net, loader, ref_opt)}
    for way, recipe in recipes.items():
        ways[way] = (lambda w=way, r=recipe: fit_supervised(nets[w], x, y, r, aug, 0, device, progress=False))
    seconds = interleaved(ways, args.repeats, device)
    rate = {way: n / s for way, s in seconds.items()}
    figures = {"images": n, "batch_size": batch, "images_per_s": {k: round(v, 1) for k, v in rate.items()},
               "default_precision": resolve_precision("auto", device),
               "default_channels_last": Recipe().channels_last}
    speedup = rate["mubench default"] / rate["reference"]
    record("training", args, device, figures, speedup, model=name)
    return {"model": name, **rate, "speedup": speedup}


def accuracy_check(args, device: torch.device) -> list[list]:
    """The digits original trained three ways: the defaults must not cost accuracy."""
    from mubench.data import eval_view
    from mubench.pipeline import cached_dataset, fresh_model
    from mubench.presets import preset_for
    from mubench.training import accuracy

    data = cached_dataset("digits")
    base = preset_for("digits").recipe
    variants = {"fp32 NCHW": dataclasses.replace(base, precision="fp32", channels_last=False),
                "default": base,
                "bf16 + channels-last": dataclasses.replace(base, precision="bf16", channels_last=True)}
    rows, figures = [], {}
    for label, recipe in variants.items():
        accs, secs = [], []
        for seed in (0, 1):
            model = fresh_model(data, "small_cnn", seed)
            result = fit_supervised(model, data.train_x, data.train_y, recipe, data.augment, seed, device, progress=False)
            accs.append(accuracy(model, data.test_x, data.test_y, device, prepare=lambda b: eval_view(data, b)))
            secs.append(result.seconds)
        figures[label] = {"test_acc": accs, "seconds": secs}
        rows.append([label, f"{accs[0]:.1f} / {accs[1]:.1f}", float(np.mean(secs))])
    record("training_accuracy", args, device, figures,
           float(np.mean(figures["fp32 NCHW"]["seconds"]) / np.mean(figures["default"]["seconds"])),
           dataset="digits", model="small_cnn", recipe=dataclasses.asdict(base))
    return rows


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(SIZES), help="comma-separated models to measure")
    p.add_argument("--skip-accuracy", action="store_true", help="skip the digits accuracy check")
    args = p.parse_args()
    device = setup(args)
    rows = []
    for name in args.models.split(","):
        r = measure_model(name, args, device)
        rows.append([r["model"], r["reference"], r["mubench fp32"], r["mubench bf16"], r["mubench default"],
                     r["mubench fp32"] / r["reference"], r["mubench bf16"] / r["reference"], r["speedup"]])
        print(f"{name}: done", flush=True)
    print(f"\nTraining throughput, images/s ({device}, {args.threads} thread(s), medians of {args.repeats}; "
          f"default = channels-last, precision {resolve_precision('auto', device)})")
    print(table(["model", "reference", "mubench fp32 NCHW", "mubench bf16 + channels-last", "mubench default",
                 "data path ×", "bf16 ×", "default ×"], rows))
    if not args.skip_accuracy:
        print("\nDigits original (small_cnn, preset recipe), test accuracy for seeds 0 / 1 and mean training seconds")
        print(table(["way", "test acc %", "seconds"], accuracy_check(args, device)))


if __name__ == "__main__":
    main()
