"""train_subset: a fixed, stratified, clearly named subset of the training set."""

import pytest

from mubench.data import LoadOptions, load_dataset
from mubench.errors import MubenchError


def test_subset_is_stratified_fixed_and_named():
    full = load_dataset("digits")
    a = load_dataset("digits", LoadOptions(train_subset=500))
    b = load_dataset("digits", LoadOptions(train_subset=500))
    assert a.name == "digits[500]"
    assert len(a.train_y) == 500 and len(a.test_y) == len(full.test_y)  # the test set is kept whole
    expected = full.train_y.bincount(minlength=10).float() * 500 / len(full.train_y)
    counts = a.train_y.bincount(minlength=10).float()
    assert (counts - expected).abs().max() <= 1  # stratified: class proportions kept
    assert a.train_x.equal(b.train_x)  # fixed
    c = load_dataset("digits", LoadOptions(train_subset=500, split_seed=1))
    assert not a.train_x.equal(c.train_x)


def test_subset_larger_than_the_training_set_is_an_error():
    with pytest.raises(MubenchError, match="train_subset"):
        load_dataset("digits", LoadOptions(train_subset=10**6))
