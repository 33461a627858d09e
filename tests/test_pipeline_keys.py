"""Cache keys of originals (the Original job's key, the only key a stored original has): what
changes the model changes the key, and a stored model of another architecture is never loaded."""

import pytest
import torch

from mubench.data import LoadOptions
from mubench.jobs import RunContext
from mubench.models import MODELS, ModelSpec, build_model
from mubench.pipeline import architecture_key, get_original
from mubench.planner import original_job
from mubench.store import Store
from mubench.training import OptimSpec, Recipe

CPU = torch.device("cpu")


def _key(model="small_cnn", recipe=None, seed=0) -> str:
    return original_job("digits", LoadOptions(), model, recipe or {"epochs": 1}, "fp32", seed, CPU, 1).key


def test_editing_a_model_changes_the_original_key(monkeypatch):
    before = _key()
    original_builder = MODELS.get("small_cnn")

    def wider(spec: ModelSpec):
        net = original_builder(spec)
        net.append(torch.nn.Identity())  # any structural edit
        return net

    monkeypatch.setitem(MODELS._entries, "small_cnn", MODELS._entries["small_cnn"].__class__(
        "small_cnn", wider, "test", "test"))
    architecture_key.cache_clear()
    try:
        assert _key() != before
    finally:
        monkeypatch.undo()
        architecture_key.cache_clear()
    assert _key() == before


def test_key_depends_on_seed_recipe_and_model():
    keys = {_key(m, r, s) for m in ("small_cnn", "resnet8") for r in ({"epochs": 1}, {"epochs": 2}) for s in (0, 1)}
    assert len(keys) == 8


def test_a_stored_original_of_another_architecture_is_retrained_not_loaded(digits, tmp_path):
    ctx = RunContext(Store(tmp_path), CPU)
    job = original_job("digits", LoadOptions(), "small_cnn", {"epochs": 1, "batch_size": 128}, "fp32", 0, CPU, 1)
    first = job.load(ctx)
    # Corrupt the cache the way a code edit would: same key, weights of another architecture.
    other = build_model("resnet8", ModelSpec(10, 1, 8, digits.mean, digits.std))
    ctx.store.save_artifact("original", first.key, other.state_dict())
    with pytest.warns(UserWarning, match="does not fit model 'small_cnn'"):
        again = job.load(ctx)
    assert again.info["loaded"] is False


def test_a_stored_original_needs_its_jobs_key(digits, tmp_path):
    """One key rule per artifact: the store never keeps an original under a second recipe."""
    with pytest.raises(ValueError, match="needs its jobs.Original key"):
        get_original(Store(tmp_path), digits, "small_cnn", Recipe(epochs=1, optim=OptimSpec(lr=0.05)), 0, CPU)


def test_key_holds_the_device_class_and_the_cpu_threads():
    """CPU results depend on the torch thread count, so a cache must never serve a 2-thread
    original to a 1-thread run (before, the count was recorded but not keyed)."""
    one = original_job("digits", LoadOptions(), "small_cnn", {"epochs": 1}, "fp32", 0, CPU, 1)
    two = original_job("digits", LoadOptions(), "small_cnn", {"epochs": 1}, "fp32", 0, CPU, 2)
    assert one.compute == {"device": "cpu", "threads": 1}
    assert one.key != two.key
    from mubench.device import compute_signature

    # on a GPU the CPU threads do not change the numbers, so they are not in the key
    assert compute_signature(torch.device("cuda"), 1) == compute_signature(torch.device("cuda"), 8) == {"device": "cuda"}
    assert compute_signature(CPU, 1) != compute_signature(torch.device("cuda"), 1)


def test_digits_auto_precision_is_fixed_and_other_presets_follow_the_hardware():
    from mubench.device import resolve_precision
    from mubench.presets import run_precision

    assert run_precision("auto", "digits", CPU) == "fp32"  # the default grid: one table on every CPU
    assert run_precision("bf16", "digits", CPU) == "bf16"  # asked for, given
    assert run_precision("auto", "fashion-mnist", CPU) == resolve_precision("auto", CPU)
