"""The content-addressed store: stable keys, atomic files, corrupt artifacts recomputed."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import pytest
import torch

from mubench.errors import MubenchError
from mubench.store import Store, stable_hash, write_json_atomic


def test_stable_hash_ignores_dict_key_order():
    a = {"model": "resnet18", "seed": 0, "params": {"lr": 0.1, "epochs": 5}}
    b = {"params": {"epochs": 5, "lr": 0.1}, "seed": 0, "model": "resnet18"}
    assert stable_hash(a) == stable_hash(b)
    assert len(stable_hash(a)) == 20 and len(stable_hash(a, length=8)) == 8


def test_stable_hash_sees_every_value():
    base = {"model": "resnet18", "seed": 0, "params": {"lr": 0.1}}
    assert stable_hash(base) != stable_hash({**base, "seed": 1})
    assert stable_hash(base) != stable_hash({**base, "params": {"lr": 0.01}})
    assert stable_hash([1, 2]) != stable_hash([2, 1])  # lists keep their order


def test_stable_hash_of_dataclasses_and_tuples():
    @dataclasses.dataclass(frozen=True)
    class P:
        lr: float = 0.1
        milestones: tuple = (0.5, 0.75)

    assert stable_hash(P()) == stable_hash({"milestones": [0.5, 0.75], "lr": 0.1})
    assert stable_hash(P()) != stable_hash(P(lr=0.2))


def test_stable_hash_is_pinned():
    # Keys must not depend on the process (Python's hash() is salted) or change between
    # versions: a different value here orphans every stored artifact. Change it deliberately.
    assert stable_hash({"b": [1, 2.5, "x"], "a": {"z": None, "y": True}}) == "e36f9aaa907c2cb2dbd1"


def test_artifact_round_trip_with_weights_only(tmp_path):
    store = Store(tmp_path)
    state = {"w": torch.arange(6.0).view(2, 3), "meta": {"classes": [1, 2], "name": "x"}, "n": 3}
    path = store.save_artifact("original", "abc", state)
    assert path == tmp_path / "artifacts" / "original" / "abc.pt" and store.has_artifact("original", "abc")
    back = store.load_artifact("original", "abc")
    assert torch.equal(back["w"], state["w"]) and back["meta"] == state["meta"] and back["n"] == 3
    assert store.load_artifact("original", "missing") is None
    # no temp files left behind next to the artifact
    assert [p.name for p in path.parent.iterdir()] == ["abc.pt"]


def test_artifacts_refuse_arbitrary_pickles(tmp_path):
    """weights_only loading: an artifact holding an arbitrary object is not executed but recomputed."""
    store = Store(tmp_path)
    path = store.artifact_path("original", "evil")
    path.parent.mkdir(parents=True)
    torch.save({"obj": argparse.Namespace(a=1)}, path)  # loadable only with weights_only=False
    with pytest.warns(UserWarning, match="corrupt") as caught:
        assert store.load_artifact("original", "evil") is None
    assert "\n" not in str(caught[0].message)  # one line, though torch's message runs to pages


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_artifact_is_reported_moved_aside_and_recomputed(tmp_path, damage):
    store = Store(tmp_path)
    path = store.save_artifact("split", "k1", {"forget": torch.arange(100)})
    blob = path.read_bytes()
    path.write_bytes({"truncated": blob[: len(blob) // 2], "garbage": b"not a torch file", "empty": b""}[damage])
    with pytest.warns(UserWarning, match=r"artifact .*k1\.pt is corrupt.*recomputing"):
        assert store.load_artifact("split", "k1") is None
    assert not path.exists() and path.with_name("k1.pt.corrupt").is_file()
    assert not store.has_artifact("split", "k1")  # so the caller recomputes it
    store.save_artifact("split", "k1", {"forget": torch.arange(3)})
    assert store.load_artifact("split", "k1")["forget"].tolist() == [0, 1, 2]


def test_a_failed_write_leaves_no_file(tmp_path):
    store = Store(tmp_path)
    store.save_artifact("original", "k", {"v": torch.zeros(2)})

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        store.save_artifact("original", "k", {"v": Unsaveable()})
    # the previous complete file is intact and no temp file is left
    assert torch.equal(store.load_artifact("original", "k")["v"], torch.zeros(2))
    assert [p.name for p in store.artifact_path("original", "k").parent.iterdir()] == ["k.pt"]


def test_records_round_trip_and_iterate(tmp_path):
    store = Store(tmp_path)
    rec = {"method": "salun", "ua": 12.5, "params": {"sparsity": 0.5}, "tags": ["a", "b"], "ok": True}
    store.write_record("unlearn", "k1", rec)
    store.write_record("unlearn", "k2", {**rec, "ua": 1.0})
    store.write_record("original", "o1", {"train_acc": 99.5})
    assert store.read_record("unlearn", "k1") == rec
    assert store.read_record("unlearn", "nope") is None
    assert [r["ua"] for r in store.iter_records("unlearn")] == [12.5, 1.0]
    assert len(list(store.iter_records())) == 3
    assert json.loads(store.record_path("unlearn", "k1").read_text()) == rec


def test_unreadable_record_is_treated_as_missing(tmp_path):
    store = Store(tmp_path)
    path = store.write_record("unlearn", "k", {"a": 1})
    path.write_text('{"a": 1')  # cut off
    with pytest.warns(UserWarning, match="will run again"):
        assert store.read_record("unlearn", "k") is None
    with pytest.warns(UserWarning, match="skipping unreadable record"):
        assert list(store.iter_records("unlearn")) == []


def test_write_json_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_json_atomic(path, {"x": list(range(1000))})
    write_json_atomic(path, {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    assert os.listdir(path.parent) == ["r.json"]


def test_logs(tmp_path):
    store = Store(tmp_path)
    assert store.write_log("k", "Traceback ...\n").read_text() == "Traceback ...\n"


def test_check_writable(tmp_path):
    Store(tmp_path / "new" / "results").check_writable()  # creates it
    assert (tmp_path / "new" / "results").is_dir()
    assert list((tmp_path / "new" / "results").iterdir()) == []  # the probe is removed
    blocker = tmp_path / "file"
    blocker.write_text("a regular file")
    with pytest.raises(MubenchError) as info:
        Store(blocker / "results").check_writable()
    msg = str(info.value)
    assert str(blocker / "results") in msg and "--out" in msg and "\n" not in msg


def test_files_follow_the_umask(tmp_path):
    """A shared results folder must stay readable by others (mkstemp would make files 0600)."""
    old = os.umask(0o022)
    try:
        store = Store(tmp_path)
        paths = [store.save_artifact("original", "k", {"v": torch.zeros(1)}),
                 store.write_record("original", "k", {"a": 1}), store.write_log("k", "x")]
    finally:
        os.umask(old)
    assert [oct(p.stat().st_mode & 0o777) for p in paths] == ["0o644"] * 3
