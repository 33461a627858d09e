"""Datasets as tensors: a registry of loaders that return `ImageData`.

Every dataset yields train/test images as tensors in (N, C, H, W) — uint8 for real image data
(compact, converted to floats in [0, 1] per batch), float32 in [0, 1] where the source is not
8-bit (digits) — integer labels, class names, and the per-channel mean/std that the model's
first layer uses. Files are read through torchvision's own dataset classes.

Where data is looked for (SPEC §1): `--data-root`, else `$MUBENCH_DATA`, else
`~/.cache/mubench/data`, then system folders such as Debian's `/usr/share/datasets/<name>`.
Nothing is downloaded unless `download=True`.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .augment import Augment, center_crop
from .errors import DataNotFoundError, MubenchError
from .registry import Registry

DATASETS = Registry("dataset")
SYSTEM_DATA_DIRS = (Path("/usr/share/datasets"),)


@dataclass
class ImageData:
    """A dataset's train/test tensors plus what models and training need to know about it."""

    name: str
    train_x: torch.Tensor  # (N, C, H, W) uint8 or float in [0, 1]
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Augment  # training augmentation (applied to float batches)
    eval_size: int  # side of evaluated images; train images may be stored larger (rrc data)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.eval_size, self.eval_size)

    def fingerprint(self) -> dict:
        """What identifies this data in a content hash (name, sizes, a checksum of labels)."""
        return {
            "name": self.name,
            "train": list(self.train_x.shape),
            "test": list(self.test_x.shape),
            "labels": _label_checksum(self.train_y),
            "test_labels": _label_checksum(self.test_y),  # splits pick test indices by label
            "mean": list(self.mean),  # normalisation is part of every model trained on this data
            "std": list(self.std),
        }


def _label_checksum(y: torch.Tensor) -> int:
    """A position-weighted sum of labels: changes when any label or their order changes."""
    return int(torch.sum(y * torch.arange(1, len(y) + 1) % 1_000_003))


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images → float in [0, 1]; float images pass through."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def eval_view(data: ImageData, x: torch.Tensor) -> torch.Tensor:
    """Un-augmented float images as evaluation sees them (centre crop if stored larger)."""
    return center_crop(to_float(x), data.eval_size)


def channel_stats(x: torch.Tensor, chunk: int = 1000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) std of images in [0, 1], from at most 20,000 training
    images taken at an even stride (ImageFolder data is sorted by class: a prefix would see only
    the first classes).

    Summed in chunks: converting 20,000 uint8 ImageNet-sized images to floats at once would
    take 12 GB.
    """
    x = x[:: -(-len(x) // 20000)] if len(x) > 20000 else x
    channels = x.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(x), chunk):
        xs = to_float(x[start : start + chunk])
        total += xs.sum(dim=(0, 2, 3)).double()
        squares += xs.square().sum(dim=(0, 2, 3)).double()
    n = x.numel() // channels
    mean = total / n
    std = ((squares - n * mean.square()) / max(n - 1, 1)).clamp(min=0).sqrt().clamp(min=1e-3)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


# ---------------------------------------------------------------------------------------------
# Where data lives


def default_data_root() -> Path:
    return Path(os.environ.get("MUBENCH_DATA") or Path.home() / ".cache" / "mubench" / "data")


def search_dirs(data_root: str | Path | None) -> list[Path]:
    """Folders searched, in order: explicit root (or $MUBENCH_DATA / cache), then system folders."""
    first = Path(data_root).expanduser() if data_root else default_data_root()
    return [first, *SYSTEM_DATA_DIRS]


def _missing(name: str, places: list[Path], fetch: str, reason: str = "not found") -> DataNotFoundError:
    where = ", ".join(str(p) for p in places)
    return DataNotFoundError(f"dataset {name!r} {reason} (looked in: {where}); fetch it with: {fetch}")


def _fetch_hint(name: str) -> str:
    return f"python -m mubench fetch {name} [--data-root DIR]"


# ---------------------------------------------------------------------------------------------
# Loaders


@dataclass(frozen=True)
class LoadOptions:
    data_root: str | None = None  # None → $MUBENCH_DATA or ~/.cache/mubench/data
    download: bool = False  # fetch from the internet when missing (torchvision's downloaders)
    split_seed: int = 0  # digits: seed of the fixed stratified 75/25 split; seed of train_subset
    train_subset: int = 0  # >0: keep a fixed stratified subset of this many training images (CPU presets)
    validation: float = 0.0  # >0: hold this fraction of the training set out as the test split (tuning)


def load_dataset(name: str, options: LoadOptions | None = None) -> ImageData:
    """Load a registered dataset by name (`imagefolder:PATH` takes a folder)."""
    options = options or LoadOptions()
    if name.startswith("imagefolder:"):
        data = load_imagefolder(Path(name.split(":", 1)[1]).expanduser(), name=name)
    else:
        loader: Callable[[LoadOptions], ImageData] = DATASETS.get(name)
        data = loader(options)
    data = subsample_train(data, options.train_subset, options.split_seed) if options.train_subset else data
    return hold_out_validation(data, options.validation, options.split_seed) if options.validation else data


def hold_out_validation(data: ImageData, fraction: float, seed: int) -> ImageData:
    """The tuning view of a dataset (SPEC §3): a stratified, seeded `fraction` of the training
    set becomes its test split and the rest its training set, so a search that reads "test"
    numbers (TA, the MIA's non-members) reads held-out training images, never the test set.

    The name gets a `{val}` suffix and the channel statistics are those of what remains, so
    every original, Retrain and method run of a tuning cell is its own job, trained without
    the held-out images.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise MubenchError(f"validation must be a fraction in (0, 1); got {fraction}")
    keep, held = train_test_split(np.arange(len(data.train_y)), test_size=fraction,
                                  stratify=data.train_y.numpy(), random_state=seed)
    keep, held = torch.from_numpy(np.sort(keep)), torch.from_numpy(np.sort(held))
    mean, std = channel_stats(data.train_x[keep])
    return dataclasses.replace(data, name=f"{data.name}{{val{fraction:g}}}", train_x=data.train_x[keep].contiguous(),
                               train_y=data.train_y[keep], test_x=data.train_x[held].contiguous(), test_y=data.train_y[held],
                               mean=mean, std=std)


def subsample_train(data: ImageData, n: int, seed: int) -> ImageData:
    """A fixed, class-stratified subset of n training images (the test set is kept whole).

    For CPU-sized grids on real data; the name gets a `[n]` suffix so records and tables can
    never mistake it for the full dataset.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < n < len(data.train_y):
        raise MubenchError(f"train_subset must be in (0, {len(data.train_y)}) for {data.name!r}; got {n}")
    keep, _ = train_test_split(np.arange(len(data.train_y)), train_size=n,
                               stratify=data.train_y.numpy(), random_state=seed)
    keep = torch.from_numpy(np.sort(keep))
    mean, std = channel_stats(data.train_x[keep])
    return dataclasses.replace(data, name=f"{data.name}[{n}]", train_x=data.train_x[keep].contiguous(),
                               train_y=data.train_y[keep], mean=mean, std=std)


@DATASETS.register("digits", description="scikit-learn's bundled 8x8 digits (1,797 images); the embedded default")
def load_digits(options: LoadOptions) -> ImageData:
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32)[:, None]  # values 0..16 → [0, 1]
    y = torch.tensor(bunch.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=0.25, stratify=bunch.target, random_state=options.split_seed
    )
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    mean, std = channel_stats(x[idx_train])
    return ImageData(
        name="digits",
        train_x=x[idx_train],
        train_y=y[idx_train],
        test_x=x[idx_test],
        test_y=y[idx_test],
        classes=tuple(str(c) for c in range(10)),
        mean=mean,
        std=std,
        augment=Augment("crop", pad=1),  # no flips: a mirrored digit is another symbol
        eval_size=8,
    )


_FMNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _stage_idx_files(name: str, folder_name: str, options: LoadOptions) -> Path:
    """Find MNIST-style IDX files and lay them out as torchvision expects (<root>/<Cls>/raw).

    Accepts torchvision's own layout (also with only the downloaded .gz files in raw/), or the
    four files (plain or .gz) directly in a folder such as Debian's
    /usr/share/datasets/fashion-mnist; .gz files are decompressed once into the data root.
    """
    places = search_dirs(options.data_root)
    stage_root = places[0]
    for base in places:
        raw = base / folder_name / "raw"
        if all((raw / f).is_file() for f in _FMNIST_FILES):
            return base
        for flat in (base / name, base, raw):
            if all((flat / f).is_file() or (flat / f"{f}.gz").is_file() for f in _FMNIST_FILES):
                _unpack_idx(name, places, flat, stage_root / folder_name / "raw")
                return stage_root
    if options.download:
        return stage_root
    raise _missing(name, [*places, *[p / name for p in places]], f"apt-get install dataset-fashion-mnist, or {_fetch_hint(name)}")


def _unpack_idx(name: str, places: list[Path], flat: Path, target: Path) -> None:
    """Copy (or decompress) the four IDX files from `flat` into `target`, each file atomically."""
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataNotFoundError(f"dataset {name!r}: cannot unpack {flat} into {target} "
                                f"({err.strerror or err}); pass a writable --data-root") from err
    for f in _FMNIST_FILES:
        if (target / f).is_file():
            continue
        tmp = target / f"{f}.tmp{os.getpid()}"
        source = flat / f if (flat / f).is_file() else flat / f"{f}.gz"
        try:
            if source.suffix != ".gz":
                shutil.copyfile(source, tmp)
            else:
                with gzip.open(source, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        except (OSError, EOFError, zlib.error) as err:  # truncated or garbled gzip streams
            tmp.unlink(missing_ok=True)
            raise _missing(name, places, _fetch_hint(name), f"is corrupt or unreadable ({source}: {err})") from err
        os.replace(tmp, target / f)


@DATASETS.register("fashion-mnist", description="Fashion-MNIST 28x28 grey, 60k/10k (torchvision reader; Debian dataset-fashion-mnist)")
def load_fashion_mnist(options: LoadOptions) -> ImageData:
    from torchvision.datasets import FashionMNIST

    root = _stage_idx_files("fashion-mnist", "FashionMNIST", options)
    try:
        train = FashionMNIST(str(root), train=True, download=options.download)
        test = FashionMNIST(str(root), train=False, download=options.download)
    # torchvision's IDX reader fails with assert/TypeError/KeyError on a damaged header
    except (RuntimeError, OSError, ValueError, AssertionError, TypeError, KeyError) as err:
        raise _missing("fashion-mnist", [root], _fetch_hint("fashion-mnist"), f"could not be read ({err})") from err
    return _from_tensors("fashion-mnist", train.data[:, None], train.targets, test.data[:, None],
                         test.targets, tuple(train.classes), Augment("crop_flip", pad=2))


def _from_tensors(name, train_x, train_y, test_x, test_y, classes, augment) -> ImageData:
    train_x = torch.as_tensor(train_x).contiguous()
    mean, std = channel_stats(train_x)
    return ImageData(
        name=name,
        train_x=train_x,
        train_y=torch.as_tensor(train_y, dtype=torch.int64),
        test_x=torch.as_tensor(test_x).contiguous(),
        test_y=torch.as_tensor(test_y, dtype=torch.int64),
        classes=tuple(classes),
        mean=mean,
        std=std,
        augment=augment,
        eval_size=int(train_x.shape[-1]),
    )


def _lenient(cls):
    """A torchvision CIFAR class that checks files exist instead of their md5 sums.

    torchvision refuses any file whose md5 differs from the official release, which would also
    refuse the small files tests write in the same format; a corrupt file still fails when it is
    unpickled, and that is reported as corrupt.
    """

    class Lenient(cls):
        def _check_integrity(self) -> bool:
            base = Path(self.root) / self.base_folder
            return all((base / f).is_file() for f, _ in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    Lenient.__name__ = cls.__name__
    return Lenient


def _load_cifar(name: str, folder: str, tv_class_name: str, options: LoadOptions) -> ImageData:
    import torchvision.datasets as tvd

    cls = _lenient(getattr(tvd, tv_class_name))
    places = search_dirs(options.data_root)
    candidates = [p for base in places for p in (base, base / name)]
    root = next((p for p in candidates if (p / folder).is_dir()), None)
    if root is None:
        if not options.download:
            raise _missing(name, candidates, _fetch_hint(name))
        root = places[0]
    try:
        train = cls(str(root), train=True, download=options.download)
        test = cls(str(root), train=False, download=options.download)
    except (RuntimeError, OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError) as err:
        raise _missing(name, [root / folder], _fetch_hint(name), f"is missing files or corrupt ({err})") from err
    to_nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    return _from_tensors(name, to_nchw(train.data), train.targets, to_nchw(test.data), test.targets,
                         train.classes, Augment("crop_flip", pad=4))


@DATASETS.register("cifar10", description="CIFAR-10 32x32 colour, 50k/10k (torchvision reader)")
def load_cifar10(options: LoadOptions) -> ImageData:
    return _load_cifar("cifar10", "cifar-10-batches-py", "CIFAR10", options)


@DATASETS.register("cifar100", description="CIFAR-100 32x32 colour, 50k/10k, 100 classes (torchvision reader)")
def load_cifar100(options: LoadOptions) -> ImageData:
    return _load_cifar("cifar100", "cifar-100-python", "CIFAR100", options)


@DATASETS.register("svhn", description="SVHN 32x32 digits, 73k/26k (torchvision reader of the .mat files)")
def load_svhn(options: LoadOptions) -> ImageData:
    from torchvision.datasets import SVHN

    class LenientSVHN(SVHN):  # same reason as _lenient: existence, not md5
        def _check_integrity(self) -> bool:
            return (Path(self.root) / self.filename).is_file()

    places = search_dirs(options.data_root)
    candidates = [p for base in places for p in (base / "svhn", base)]
    root = next((p for p in candidates if (p / "train_32x32.mat").is_file()), None)
    if root is None:
        if not options.download:
            raise _missing("svhn", candidates, _fetch_hint("svhn"))
        root = places[0] / "svhn"
    try:
        train = LenientSVHN(str(root), split="train", download=options.download)
        test = LenientSVHN(str(root), split="test", download=options.download)
    except (RuntimeError, OSError, ValueError, KeyError) as err:
        raise _missing("svhn", [root], _fetch_hint("svhn"), f"is missing files or corrupt ({err})") from err
    classes = tuple(str(c) for c in range(10))
    return _from_tensors("svhn", torch.from_numpy(train.data), train.labels, torch.from_numpy(test.data),
                         test.labels, classes, Augment("crop", pad=4))  # no flips for digits


IMAGEFOLDER_STORE_SIZE = 256  # train images kept at 256² so random-resized crops have room
IMAGEFOLDER_EVAL_SIZE = 224


def load_imagefolder(root: Path, name: str | None = None, eval_size: int = IMAGEFOLDER_EVAL_SIZE) -> ImageData:
    """An ImageFolder tree with `train/` and `val/` (or `test/`) subfolders of class folders.

    Train images are resized (short side 256) and centre-cropped to 256² and get
    random-resized-crop + flip to 224 in training; evaluation uses the central 224² crop, as the
    standard ImageNet protocol does.
    """
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    name = name or f"imagefolder:{root}"
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise _missing(name, [root], f"put an ImageFolder tree at {root}/train and {root}/val")
    resize = max(eval_size, round(eval_size * 256 / 224))
    store = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(resize), transforms.PILToTensor()])
    evaluate = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(eval_size), transforms.PILToTensor()])

    def read(folder: Path, transform) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        try:
            ds = ImageFolder(str(folder), transform=transform, loader=lambda p: _rgb(p))
            images = [ds[i] for i in range(len(ds))]
        except (OSError, RuntimeError, FileNotFoundError) as err:
            raise _missing(name, [folder], f"check the images under {folder}", f"could not be read ({err})") from err
        xs = torch.stack([im for im, _ in images])
        ys = torch.tensor([label for _, label in images], dtype=torch.int64)
        return xs, ys, ds.classes

    train_x, train_y, classes = read(root / "train", store)
    test_x, test_y, test_classes = read(test_dir, evaluate)
    if list(test_classes) != list(classes):
        raise MubenchError(f"dataset {name!r}: {test_dir} has classes {test_classes}, train has {classes}")
    mean, std = channel_stats(center_crop(train_x, eval_size))  # uint8 view; floats per chunk
    return ImageData(name=name, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                     classes=tuple(classes), mean=mean, std=std,
                     augment=Augment("rrc_flip", out_size=eval_size), eval_size=eval_size)


def _rgb(path: str):
    from PIL import Image

    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


@DATASETS.register("imagenet10", description="ImageNet-10 (an ImageFolder root with 10 classes; 224 px eval crop)")
def load_imagenet10(options: LoadOptions) -> ImageData:
    places = search_dirs(options.data_root)
    candidates = [base / "imagenet10" for base in places]
    root = next((p for p in candidates if (p / "train").is_dir()), None)
    if root is None:
        raise _missing("imagenet10", candidates,
                       "place an ImageFolder tree (train/, val/ with 10 class folders) at DATA_ROOT/imagenet10")
    data = load_imagefolder(root, name="imagenet10")
    return data
