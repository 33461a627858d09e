"""Scenario strings → splits: disjoint, covering, sized as asked, deterministic, validated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mubench.errors import ConfigError
from mubench.scenarios import Scenario, Split, make_split, parse_scenario

# 50,000 labels, 5,000 per class, in a shuffled order (CIFAR-10's training-set shape)
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 5000))
TEST_LABELS = np.repeat(np.arange(10), 1000)


def _check_partition(split: Split, n_train: int, n_test: int) -> None:
    assert len(np.intersect1d(split.forget, split.retain)) == 0
    assert np.array_equal(np.union1d(split.forget, split.retain), np.arange(n_train))
    assert len(np.intersect1d(split.test, split.test_forgotten)) == 0
    assert set(split.test) | set(split.test_forgotten) <= set(range(n_test))
    for arr in (split.forget, split.retain, split.test, split.test_forgotten):
        assert arr.dtype == np.int64 and np.all(np.diff(arr) > 0)  # sorted, no repeats


def test_class_scenario():
    split = make_split(LABELS, TEST_LABELS, "class:3", seed=0)
    _check_partition(split, 50000, 10000)
    assert len(split.forget) == 5000 and set(LABELS[split.forget]) == {3}
    assert 3 not in set(LABELS[split.retain])
    # TA on the remaining classes only; the forgotten class's test images are kept apart
    assert len(split.test) == 9000 and 3 not in set(TEST_LABELS[split.test])
    assert len(split.test_forgotten) == 1000 and set(TEST_LABELS[split.test_forgotten]) == {3}
    assert split.forgotten_classes == (3,) and split.scenario == "class:3"


def test_classes_scenario():
    split = make_split(LABELS, TEST_LABELS, "classes:1, 7", seed=0)
    _check_partition(split, 50000, 10000)
    assert set(LABELS[split.forget]) == {1, 7} and len(split.forget) == 10000
    assert len(split.test) == 8000 and set(TEST_LABELS[split.test_forgotten]) == {1, 7}
    assert split.forgotten_classes == (1, 7) and split.scenario == "classes:1,7"


def test_random_scenario_size_and_full_test_set():
    split = make_split(LABELS, TEST_LABELS, "random:10", seed=0)
    _check_partition(split, 50000, 10000)
    assert len(split.forget) == 5000 and len(split.retain) == 45000
    assert len(split.test) == 10000 and len(split.test_forgotten) == 0 and split.forgotten_classes == ()
    # uniform: every class holds roughly a tenth of the forget set
    counts = np.bincount(LABELS[split.forget], minlength=10)
    assert counts.min() > 400 and counts.max() < 600


def test_subset_scenario():
    split = make_split(LABELS, TEST_LABELS, "subset:2,5:20", seed=0)
    _check_partition(split, 50000, 10000)
    assert len(split.forget) == 2000 and set(LABELS[split.forget]) == {2, 5}
    assert len(split.test) == 10000 and split.forgotten_classes == ()  # no class is gone entirely


def test_split_is_deterministic_and_seeds_differ():
    a = make_split(LABELS, TEST_LABELS, "random:10", seed=0)
    b = make_split(LABELS, TEST_LABELS, "random:10", seed=0)
    c = make_split(LABELS, TEST_LABELS, "random:10", seed=1)
    assert np.array_equal(a.forget, b.forget) and a.hash == b.hash
    assert not np.array_equal(a.forget, c.forget) and a.hash != c.hash
    s1 = make_split(LABELS, TEST_LABELS, "subset:2,5:20", seed=0)
    s2 = make_split(LABELS, TEST_LABELS, "subset:2,5:20", seed=3)
    assert not np.array_equal(s1.forget, s2.forget)


def test_split_accepts_tensors(digits):
    split = make_split(digits.train_y, digits.test_y, "class:0", seed=0)
    assert len(split.forget) == int((digits.train_y == 0).sum())


def test_hash_is_stable_and_content_sensitive():
    split = make_split(LABELS, TEST_LABELS, "class:3", seed=0)
    # Stable across processes and versions unless the split's content changes
    assert split.hash == make_split(LABELS, TEST_LABELS, "class:3", seed=0).hash
    assert len(split.hash) == 20
    other_fp = make_split(LABELS, TEST_LABELS, "class:3", seed=0, data_fingerprint="other")
    assert other_fp.hash != split.hash
    # the same arrays under another seed label are another split
    assert make_split(LABELS, TEST_LABELS, "class:3", seed=1).hash != split.hash


def test_state_round_trip_through_torch_save(tmp_path):
    split = make_split(LABELS, TEST_LABELS, "class:3", seed=4, data_fingerprint="fp")
    torch.save(split.to_state(), tmp_path / "s.pt")
    back = Split.from_state(torch.load(tmp_path / "s.pt", weights_only=True))
    assert back.hash == split.hash
    assert (back.scenario, back.seed, back.forgotten_classes, back.data_fingerprint) == ("class:3", 4, (3,), "fp")
    for name in ("forget", "retain", "test", "test_forgotten"):
        assert np.array_equal(getattr(back, name), getattr(split, name))
        assert getattr(back, name).dtype == np.int64


def test_restricted_subset_runs_inside_the_listed_classes():
    """The paper's subset task: pool, retain and test limited to the listed classes (SPEC §2)."""
    full = make_split(LABELS, TEST_LABELS, "subset:2,5:20", seed=0)
    split = make_split(LABELS, TEST_LABELS, "subset:2, 5:20:restricted", seed=0)
    assert split.scenario == "subset:2,5:20:restricted" and split.form == "restricted" and full.form == "full"
    assert np.array_equal(split.forget, full.forget)  # the same forget set as the full form
    listed = np.flatnonzero(np.isin(LABELS, (2, 5)))
    assert len(np.intersect1d(split.forget, split.retain)) == 0
    assert np.array_equal(np.union1d(split.forget, split.retain), listed)  # retain: the rest of the pool
    assert len(split.retain) == 8000 and set(LABELS[split.retain]) == {2, 5}
    assert len(split.test) == 2000 and set(TEST_LABELS[split.test]) == {2, 5}
    assert len(split.test_forgotten) == 0 and split.forgotten_classes == ()
    assert split.hash != full.hash
    back = Split.from_state(split.to_state())
    assert back.form == "restricted" and back.hash == split.hash
    old = {k: v for k, v in full.to_state().items() if k != "form"}  # stored before the form existed
    assert Split.from_state(old).form == "full" and Split.from_state(old).hash == full.hash


def test_restricted_subset_errors():
    with pytest.raises(ConfigError, match="nothing would remain"):
        make_split(np.array([0, 0, 1, 1]), np.array([0, 1]), "subset:0:80:restricted", seed=0)  # 1.6 rounds to both
    with pytest.raises(ConfigError, match="no test images"):
        make_split(np.array([0, 0, 0, 1]), np.array([1, 1]), "subset:0:50:restricted", seed=0)
    with pytest.raises(ConfigError, match="no restricted form"):
        parse_scenario(Scenario("random", (), 10.0, True))


def test_parse_canonical_spec():
    assert parse_scenario(" random:10.0 ").spec == "random:10"
    assert parse_scenario("random:2.5").percent == 2.5
    assert parse_scenario("subset:3,1:50") == Scenario("subset", (3, 1), 50.0)
    restricted = parse_scenario(" subset:3,1:50.0:restricted ")
    assert restricted == Scenario("subset", (3, 1), 50.0, True) and restricted.form == "restricted"
    assert restricted.spec == "subset:3,1:50:restricted" and parse_scenario(restricted.spec) == restricted
    assert not restricted.is_classwise and parse_scenario("subset:3,1:50").form == "full"
    assert parse_scenario("class:4").is_classwise and not parse_scenario("random:5").is_classwise
    assert str(parse_scenario("classes:0,9")) == "classes:0,9"
    sc = parse_scenario("class:2")
    assert parse_scenario(sc) is sc


@pytest.mark.parametrize("text, fragment", [
    ("class:10", "out of range 0..9"),
    ("classes:2,12", "out of range"),
    ("subset:1,10:50", "out of range"),
    ("random:0", "percentage must be in (0, 100)"),
    ("random:100", "percentage must be in (0, 100)"),
    ("random:-5", "percentage must be in (0, 100); got -5"),
    ("random:150", "percentage must be in (0, 100)"),
    ("random:nan", "percentage"),
    ("subset:1:0", "percentage"),
    ("forget:3", "malformed"),
    ("class:", "malformed"),
    ("class:a", "malformed"),
    ("class:-1", "malformed"),
    ("classes:1,,2", "malformed"),
    ("random:ten", "malformed"),
    ("subset:1,2", "subset needs a percentage after the class list"),
    ("subset:1,2:restricted", "subset needs a percentage after the class list"),
    ("subset:1,2:50:restrict", "malformed"),
    ("random:10:restricted", "malformed"),
    ("class:1,2", "several classes"),
    ("classes:3,3", "repeats a class"),
    ("classes:0,1,2,3,4,5,6,7,8,9", "nothing would remain"),
])
def test_invalid_scenarios_are_config_errors(text, fragment):
    with pytest.raises(ConfigError) as info:
        make_split(LABELS, TEST_LABELS, text, seed=0)
    msg = str(info.value)
    assert fragment in msg
    assert "\n" not in msg


def test_malformed_message_lists_accepted_forms():
    with pytest.raises(ConfigError, match=r"expected class:C, classes:C1,C2, random:P or subset:C1,C2:P\[:restricted\]"):
        parse_scenario("klass:1")


def test_empty_forget_set_is_an_error():
    # 0.001% of 50,000 rounds to no image at all
    with pytest.raises(ConfigError, match="empty forget set"):
        make_split(LABELS, TEST_LABELS, "random:0.0001", seed=0)
    # a class with no training images
    labels = np.array([0, 0, 1, 1, 3, 3])
    with pytest.raises(ConfigError, match="empty forget set"):
        make_split(labels, np.array([0, 1, 2, 3]), "class:2", seed=0)


def test_a_split_is_saved_once_under_its_jobs_key_and_reused(tmp_path, digits):
    from mubench.jobs import Split as SplitJob
    from mubench.pipeline import data_key, get_split
    from mubench.store import Store

    store = Store(tmp_path)

    def job(seed):
        return SplitJob(dataset="digits", data=data_key(digits), scenario="random:10", seed=seed)

    first = job(0).load(store)
    files = list((tmp_path / "artifacts" / "split").iterdir())
    assert [f.stem for f in files] == [job(0).key]
    again = job(0).load(store)
    assert again.hash == first.hash and np.array_equal(again.forget, first.forget)
    assert len(first.forget) == round(0.1 * len(digits.train_y))
    assert job(1).load(store).hash != first.hash
    with pytest.raises(ValueError, match="needs its jobs.Split key"):  # one key rule per artifact
        get_split(store, digits, "random:10", 0)
