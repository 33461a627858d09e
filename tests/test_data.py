"""Dataset loaders read every on-disk format for real.

Each test writes a tiny dataset in the genuine format (CIFAR pickle batches, IDX gz files,
SVHN .mat files, an ImageFolder of PNGs) into a temp dir, with pixel values chosen so that a
wrong axis order or label mapping shows up, and loads it through `load_dataset`.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from mubench import data as data_mod
from mubench.data import LoadOptions, load_dataset
from mubench.errors import DataNotFoundError, MubenchError, UnknownNameError

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def no_system_dirs(monkeypatch, tmp_path):
    """Keep real system folders out of the search so only the files a test writes are found."""
    monkeypatch.setattr(data_mod, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    monkeypatch.delenv("MUBENCH_DATA", raising=False)


def _opts(root: Path) -> LoadOptions:
    return LoadOptions(data_root=str(root))


def _images(n: int, c: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# Writers of the real formats


def write_cifar10(folder: Path, per_batch: int = 2, n_test: int = 4) -> dict:
    """cifar-10-batches-py: data_batch_1..5, test_batch, batches.meta (rows are R|G|B planes)."""
    base = folder / "cifar-10-batches-py"
    base.mkdir(parents=True)
    train_x, train_y = [], []
    for b in range(1, 6):
        x = _images(per_batch, 3, 32, 32, seed=b)
        y = [(b + i) % 10 for i in range(per_batch)]
        with open(base / f"data_batch_{b}", "wb") as f:
            pickle.dump({"batch_label": f"training batch {b} of 5", "data": x.reshape(per_batch, -1),
                         "labels": y, "filenames": [f"img{i}.png" for i in range(per_batch)]}, f)
        train_x.append(x)
        train_y += y
    test_x = _images(n_test, 3, 32, 32, seed=99)
    test_y = [9 - i for i in range(n_test)]
    with open(base / "test_batch", "wb") as f:
        pickle.dump({"data": test_x.reshape(n_test, -1), "labels": test_y}, f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": per_batch}, f)
    return {"train_x": np.concatenate(train_x), "train_y": train_y, "test_x": test_x, "test_y": test_y,
            "classes": names}


def write_cifar100(folder: Path, n_train: int = 6, n_test: int = 3) -> dict:
    """cifar-100-python: train, test (fine_labels + coarse_labels), meta (fine_label_names)."""
    base = folder / "cifar-100-python"
    base.mkdir(parents=True)
    train_x, test_x = _images(n_train, 3, 32, 32, 1), _images(n_test, 3, 32, 32, 2)
    train_y, test_y = [0, 17, 42, 99, 5, 63][:n_train], [99, 0, 50][:n_test]
    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        with open(base / name, "wb") as f:
            pickle.dump({"data": x.reshape(len(x), -1), "fine_labels": y,
                         "coarse_labels": [v // 5 for v in y]}, f)
    names = [f"class{i:02d}" for i in range(100)]
    with open(base / "meta", "wb") as f:
        pickle.dump({"fine_label_names": names, "coarse_label_names": [f"super{i}" for i in range(20)]}, f)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y, "classes": names}


def _idx_bytes(arr: np.ndarray) -> bytes:
    """IDX (MNIST) encoding of a uint8 array: magic 0x0000_08_<ndim>, big-endian sizes, data."""
    header = struct.pack(">I", 0x0800 | arr.ndim) + b"".join(struct.pack(">I", s) for s in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def fmnist_arrays(n_train: int = 12, n_test: int = 5) -> dict:
    rng = np.random.default_rng(3)
    return {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8)}


def write_idx(folder: Path, arrays: dict, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as f:
                f.write(_idx_bytes(arr))
        else:
            (folder / name).write_bytes(_idx_bytes(arr))


def write_svhn(folder: Path) -> dict:
    """SVHN's .mat files: X is H×W×C×N uint8, y is N×1 with label 10 for the digit 0."""
    from scipy.io import savemat

    folder.mkdir(parents=True)
    out = {}
    for split, labels in (("train", [10, 1, 2, 9, 10, 5]), ("test", [3, 10, 7])):
        x = _images(len(labels), 3, 32, 32, seed=len(labels))  # N, C, H, W
        savemat(folder / f"{split}_32x32.mat", {"X": x.transpose(2, 3, 1, 0),
                                                "y": np.array(labels, dtype=np.uint8)[:, None]})
        out[split] = (x, [0 if v == 10 else v for v in labels])
    return out


COLOURS = {"cat": (200, 30, 40), "dog": (10, 220, 90)}


def write_imagefolder(root: Path, per_class: int = 2, size=(20, 14)) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for cls, colour in COLOURS.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", size, colour).save(root / split / cls / f"{i}.png")
    # a greyscale PNG must come out as 3 channels
    Image.new("L", size, 128).save(root / "train" / "cat" / "grey.png")


# ---------------------------------------------------------------------------------------------
# Formats


def test_digits_is_a_stratified_75_25_split():
    d = load_dataset("digits")
    assert (len(d.train_y), len(d.test_y)) == (1347, 450)
    assert d.train_x.shape[1:] == (1, 8, 8) and d.train_x.dtype == torch.float32
    assert 0.0 <= float(d.train_x.min()) and float(d.train_x.max()) <= 1.0
    # stratified: every class is ~25% test (sklearn's digits has 174-183 images per class)
    train_counts = torch.bincount(d.train_y, minlength=10).float()
    test_counts = torch.bincount(d.test_y, minlength=10).float()
    frac = test_counts / (train_counts + test_counts)
    assert torch.all((frac - 0.25).abs() < 0.01), frac
    assert d.num_classes == 10 and d.input_shape == (1, 8, 8)


def test_digits_split_seed_changes_split_and_is_deterministic():
    a, b = load_dataset("digits"), load_dataset("digits")
    c = load_dataset("digits", LoadOptions(split_seed=1))
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert a.fingerprint() != c.fingerprint()


def test_cifar10_pickle_batches(tmp_path):
    ref = write_cifar10(tmp_path)
    d = load_dataset("cifar10", _opts(tmp_path))
    assert d.train_x.shape == (10, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.test_x.shape == (4, 3, 32, 32)
    assert torch.equal(d.train_x, torch.from_numpy(ref["train_x"]))
    assert torch.equal(d.test_x, torch.from_numpy(ref["test_x"]))
    assert d.train_y.tolist() == ref["train_y"] and d.test_y.tolist() == ref["test_y"]
    assert d.train_y.dtype == torch.int64
    assert d.classes == tuple(ref["classes"]) and d.num_classes == 10
    assert d.eval_size == 32 and d.augment.kind == "crop_flip" and d.augment.pad == 4
    expected_mean = ref["train_x"].astype(np.float64).mean(axis=(0, 2, 3)) / 255
    np.testing.assert_allclose(d.mean, expected_mean, atol=1e-5)


def test_cifar10_found_in_a_named_subfolder(tmp_path):
    write_cifar10(tmp_path / "cifar10")
    assert len(load_dataset("cifar10", _opts(tmp_path)).train_y) == 10


def test_cifar100_fine_labels(tmp_path):
    ref = write_cifar100(tmp_path)
    d = load_dataset("cifar100", _opts(tmp_path))
    assert torch.equal(d.train_x, torch.from_numpy(ref["train_x"]))
    assert d.train_y.tolist() == ref["train_y"] and d.test_y.tolist() == ref["test_y"]
    assert d.num_classes == 100 and d.classes[42] == "class42"


@pytest.mark.parametrize("layout", ["debian_flat_gz", "named_flat_gz", "torchvision_raw", "raw_gz"])
def test_fashion_mnist_idx_layouts(tmp_path, layout):
    arrays = fmnist_arrays()
    root = tmp_path / "data"
    if layout == "debian_flat_gz":  # a system folder like /usr/share/datasets/fashion-mnist
        write_idx(tmp_path / "system" / "fashion-mnist", arrays, gz=True)
    elif layout == "named_flat_gz":
        write_idx(root / "fashion-mnist", arrays, gz=True)
    elif layout == "torchvision_raw":
        write_idx(root / "FashionMNIST" / "raw", arrays, gz=False)
    else:  # torchvision's raw folder holding only the downloaded .gz files
        write_idx(root / "FashionMNIST" / "raw", arrays, gz=True)
    d = load_dataset("fashion-mnist", _opts(root))
    assert d.train_x.shape == (12, 1, 28, 28) and d.train_x.dtype == torch.uint8
    assert torch.equal(d.train_x[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert torch.equal(d.test_x[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    assert d.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert d.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert d.classes[0] == "T-shirt/top" and d.num_classes == 10
    if layout == "debian_flat_gz":  # decompressed copies go to the data root, never the system dir
        assert (root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
        assert not (tmp_path / "system" / "FashionMNIST").exists()


def test_svhn_mat_files(tmp_path):
    ref = write_svhn(tmp_path / "svhn")
    d = load_dataset("svhn", _opts(tmp_path))
    x_train, y_train = ref["train"]
    assert d.train_x.shape == (6, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert torch.equal(d.train_x, torch.from_numpy(x_train))
    assert torch.equal(d.test_x, torch.from_numpy(ref["test"][0]))
    assert d.train_y.tolist() == y_train == [0, 1, 2, 9, 0, 5]  # label 10 means the digit 0
    assert d.test_y.tolist() == [3, 0, 7]
    assert d.augment.kind == "crop"  # no flips for digits


def test_imagefolder_pngs(tmp_path):
    write_imagefolder(tmp_path / "tiny")
    d = load_dataset(f"imagefolder:{tmp_path / 'tiny'}")
    assert d.classes == ("cat", "dog")
    assert d.train_x.shape == (5, 3, 256, 256) and d.train_x.dtype == torch.uint8
    assert d.test_x.shape == (4, 3, 224, 224)
    assert d.eval_size == 224 and d.input_shape == (3, 224, 224) and d.augment.kind == "rrc_flip"
    assert sorted(d.train_y.tolist()) == [0, 0, 0, 1, 1]
    for x, y in zip(d.test_x, d.test_y, strict=True):
        colour = COLOURS[d.classes[int(y)]]
        assert x[:, 112, 112].tolist() == list(colour)  # a solid image stays solid when resized
    grey = [x for x in d.train_x if int(x[0, 5, 5]) == int(x[1, 5, 5]) == 128]
    assert len(grey) == 1


def test_imagenet10_is_an_imagefolder_under_the_data_root(tmp_path):
    write_imagefolder(tmp_path / "imagenet10", per_class=1)
    d = load_dataset("imagenet10", _opts(tmp_path))
    assert d.name == "imagenet10" and d.classes == ("cat", "dog") and d.eval_size == 224


def test_imagefolder_with_different_classes_in_val_is_an_error(tmp_path):
    write_imagefolder(tmp_path / "t", per_class=1)
    (tmp_path / "t" / "val" / "dog").rename(tmp_path / "t" / "val" / "wolf")
    with pytest.raises(MubenchError, match="classes"):
        load_dataset(f"imagefolder:{tmp_path / 't'}")


def test_channel_stats_by_hand():
    # channel 0: pixels 0 and 255 → mean 0.5, unbiased std sqrt(4·0.25/3) = 0.57735
    x = torch.tensor([[[[0, 255]], [[51, 51]]], [[[255, 0]], [[51, 51]]]], dtype=torch.uint8)
    mean, std = data_mod.channel_stats(x, chunk=1)
    assert mean == (0.5, 0.2) and std[0] == pytest.approx(0.57735, abs=1e-5)
    assert std[1] == 1e-3  # a constant channel is clamped, so normalising never divides by 0
    floats = torch.rand(50, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    mean, std = data_mod.channel_stats(floats, chunk=7)
    np.testing.assert_allclose(mean, floats.mean(dim=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(std, floats.std(dim=(0, 2, 3)), atol=1e-6)


def test_imagefolder_stats_never_convert_the_whole_train_set(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "t", per_class=3)
    sizes = []
    real = data_mod.to_float
    monkeypatch.setattr(data_mod, "to_float", lambda x: sizes.append(len(x)) or real(x))
    d = load_dataset(f"imagefolder:{tmp_path / 't'}")
    assert sizes and max(sizes) <= 1000  # chunks, not 13,000 ImageNet images as 10 GB of floats
    # 3 cats (200, 30, 40), 3 dogs (10, 220, 90) and one grey 128, all solid colours
    expected = [(3 * cat + 3 * dog + 128) / 7 / 255 for cat, dog in zip(*COLOURS.values(), strict=True)]
    np.testing.assert_allclose(d.mean, expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Where data is looked for


def test_mubench_data_env_var_is_the_default_root(tmp_path, monkeypatch):
    root = tmp_path / "from-env"
    write_cifar10(root)
    monkeypatch.setenv("MUBENCH_DATA", str(root))
    assert data_mod.search_dirs(None)[0] == root
    assert len(load_dataset("cifar10").train_y) == 10
    # an explicit --data-root wins over the environment
    with pytest.raises(DataNotFoundError):
        load_dataset("cifar10", _opts(tmp_path / "elsewhere"))


def test_default_root_without_env_is_the_user_cache(monkeypatch):
    monkeypatch.delenv("MUBENCH_DATA", raising=False)
    assert data_mod.default_data_root() == Path.home() / ".cache" / "mubench" / "data"


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "fashion-mnist", "imagenet10"])
def test_missing_dataset_names_dataset_places_and_fetch_command(tmp_path, name):
    empty = tmp_path / "empty"
    with pytest.raises(DataNotFoundError) as info:
        load_dataset(name, _opts(empty))
    msg = str(info.value)
    assert f"'{name}'" in msg
    assert str(empty) in msg and str(tmp_path / "system") in msg
    if name == "imagenet10":
        assert "ImageFolder" in msg
    else:
        assert f"python -m mubench fetch {name}" in msg
    assert "\n" not in msg  # one sentence for the CLI's one stderr line


def test_missing_imagefolder_names_the_layout(tmp_path):
    with pytest.raises(DataNotFoundError, match="train"):
        load_dataset(f"imagefolder:{tmp_path / 'nothing'}")


def test_unknown_dataset_suggests_names():
    with pytest.raises(UnknownNameError, match="cifar10"):
        load_dataset("cifar11")


# ---------------------------------------------------------------------------------------------
# Corrupt files are reported, not crashed on


def test_truncated_cifar_pickle(tmp_path):
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(DataNotFoundError, match="cifar10.*corrupt"):
        load_dataset("cifar10", _opts(tmp_path))


def test_cifar_with_a_missing_batch(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_5").unlink()
    with pytest.raises(DataNotFoundError, match="cifar10"):
        load_dataset("cifar10", _opts(tmp_path))


def test_truncated_idx_gz(tmp_path):
    write_idx(tmp_path / "fashion-mnist", fmnist_arrays(), gz=True)
    gz = tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:200])
    with pytest.raises(DataNotFoundError, match="corrupt.*train-images-idx3-ubyte.gz"):
        load_dataset("fashion-mnist", _opts(tmp_path))
    assert not list((tmp_path / "FashionMNIST" / "raw").glob("*.tmp*"))  # no half-written copy


def test_garbled_idx_gz(tmp_path):
    """A gz whose deflate stream is damaged fails in zlib, not with an OSError."""
    arrays = fmnist_arrays()
    # compressible pixels, so gzip writes Huffman blocks that flipped bits make undecodable
    arrays["train-images-idx3-ubyte"] = (np.arange(12 * 28 * 28) % 7).astype(np.uint8).reshape(12, 28, 28)
    write_idx(tmp_path / "fashion-mnist", arrays, gz=True)
    gz = tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    blob = bytearray(gz.read_bytes())
    blob[40:80] = bytes(b ^ 0xFF for b in blob[40:80])  # past the 34-byte header with the file name
    gz.write_bytes(bytes(blob))
    with pytest.raises(zlib.error):  # what the reader would have crashed with
        gzip.decompress(gz.read_bytes())
    with pytest.raises(DataNotFoundError, match="fashion-mnist.*corrupt"):
        load_dataset("fashion-mnist", _opts(tmp_path))


def test_unwritable_data_root_for_unpacking(tmp_path):
    write_idx(tmp_path / "system" / "fashion-mnist", fmnist_arrays(), gz=True)
    blocker = tmp_path / "file"
    blocker.write_text("a regular file, not a folder")
    with pytest.raises(DataNotFoundError, match="cannot unpack .* writable --data-root"):
        load_dataset("fashion-mnist", _opts(blocker / "data"))


@pytest.mark.parametrize("damage", ["truncated", "int16", "int8", "no_such_type"])
def test_damaged_idx_file(tmp_path, damage):
    """torchvision's IDX reader fails in different ways (RuntimeError, TypeError, KeyError)."""
    raw = tmp_path / "FashionMNIST" / "raw"
    write_idx(raw, fmnist_arrays(), gz=False)
    f = raw / "t10k-images-idx3-ubyte"
    if damage == "truncated":
        f.write_bytes(f.read_bytes()[:1000])
    else:  # a header byte flipped: element type other than 0x08 (uint8)
        kind = {"int16": 0x0B, "int8": 0x09, "no_such_type": 0x0A}[damage]
        f.write_bytes(struct.pack(">I", kind << 8 | 3) + f.read_bytes()[4:])
    with pytest.raises(DataNotFoundError, match="fashion-mnist"):
        load_dataset("fashion-mnist", _opts(tmp_path))


def test_truncated_svhn_mat(tmp_path):
    write_svhn(tmp_path / "svhn")
    mat = tmp_path / "svhn" / "test_32x32.mat"
    mat.write_bytes(mat.read_bytes()[:300])
    with pytest.raises(DataNotFoundError, match="svhn"):
        load_dataset("svhn", _opts(tmp_path))


def test_corrupt_png_in_imagefolder(tmp_path):
    write_imagefolder(tmp_path / "t", per_class=1)
    (tmp_path / "t" / "val" / "dog" / "0.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataNotFoundError, match="could not be read"):
        load_dataset(f"imagefolder:{tmp_path / 't'}")


def test_train_subset_is_stratified_and_named(tmp_path):
    full = load_dataset("digits")
    d = load_dataset("digits", LoadOptions(train_subset=500))
    assert len(d.train_y) == 500 and d.name == "digits[500]"
    assert torch.equal(d.test_y, full.test_y)  # the test set is kept whole
    counts = torch.bincount(d.train_y, minlength=10)
    assert counts.min() >= 48 and counts.max() <= 52
    assert d.fingerprint() != full.fingerprint()
    with pytest.raises(MubenchError, match="train_subset"):
        load_dataset("digits", LoadOptions(train_subset=5000))


# ---------------------------------------------------------------------------------------------
# The real Debian Fashion-MNIST


@pytest.mark.skipif(not DEBIAN_FMNIST.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_debian_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "SYSTEM_DATA_DIRS", (DEBIAN_FMNIST.parent,))
    d = load_dataset("fashion-mnist", _opts(tmp_path))
    assert d.train_x.shape == (60000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    assert d.train_x.dtype == torch.uint8
    assert torch.bincount(d.train_y).tolist() == [6000] * 10
    assert torch.bincount(d.test_y).tolist() == [1000] * 10
    assert abs(d.mean[0] - 0.286) < 0.01 and abs(d.std[0] - 0.353) < 0.01  # the known FMNIST stats


def test_the_tuning_view_holds_a_stratified_slice_of_train_out_as_its_test_split():
    from mubench.data import LoadOptions, load_dataset

    full = load_dataset("digits")
    view = load_dataset("digits", LoadOptions(validation=0.1))
    assert view.name == "digits{val0.1}" and len(view.test_y) == 135 and len(view.train_y) == 1347 - 135
    # every held-out image is a training image (none is from the test set), and none is still trained on
    rows = {tuple(x.flatten().tolist()) for x in full.train_x}
    assert all(tuple(x.flatten().tolist()) in rows for x in view.test_x)
    kept = {tuple(x.flatten().tolist()) for x in view.train_x}
    held = [tuple(x.flatten().tolist()) for x in view.test_x]
    assert sum(h in kept for h in held) <= 2  # digits has a few duplicate images, no more
    # stratified: each class keeps its share within one image
    share = torch.bincount(view.test_y, minlength=10).float() / torch.bincount(full.train_y, minlength=10).float()
    assert (share - 0.1).abs().max() < 0.01
    assert view.mean != full.mean  # statistics of what is trained on


def test_the_fingerprint_tells_test_labels_apart():
    """Splits hold test indices chosen by test label (class-wise TA): two datasets with the same
    training set but other test labels must not share data keys (and so Split keys)."""
    import dataclasses

    d = load_dataset("digits")
    permuted = dataclasses.replace(d, test_y=d.test_y[torch.randperm(len(d.test_y), generator=torch.Generator().manual_seed(0))])
    assert d.fingerprint() != permuted.fingerprint()
