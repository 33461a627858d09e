"""Cache keys of originals: what changes the model changes the key."""

import torch

from mubench.models import MODELS, ModelSpec, build_model
from mubench.pipeline import architecture_key, get_original, original_key
from mubench.store import Store
from mubench.training import OptimSpec, Recipe


def test_editing_a_model_changes_the_original_key(digits, monkeypatch):
    recipe = Recipe(epochs=1, batch_size=64, optim=OptimSpec(lr=0.05))
    before = original_key(digits, "small_cnn", recipe, 0, "cpu")
    original_builder = MODELS.get("small_cnn")

    def wider(spec: ModelSpec):
        net = original_builder(spec)
        net.append(torch.nn.Identity())  # any structural edit
        return net

    monkeypatch.setitem(MODELS._entries, "small_cnn", MODELS._entries["small_cnn"].__class__(
        "small_cnn", wider, "test", "test"))
    architecture_key.cache_clear()
    try:
        assert original_key(digits, "small_cnn", recipe, 0, "cpu") != before
    finally:
        monkeypatch.undo()
        architecture_key.cache_clear()
    assert original_key(digits, "small_cnn", recipe, 0, "cpu") == before


def test_key_depends_on_seed_recipe_and_model(digits):
    r1 = Recipe(epochs=1)
    r2 = Recipe(epochs=2)
    keys = {original_key(digits, m, r, s, "cpu") for m in ("small_cnn", "resnet8") for r in (r1, r2) for s in (0, 1)}
    assert len(keys) == 8


def test_a_stored_original_of_another_architecture_is_retrained_not_loaded(digits, tmp_path):
    store = Store(tmp_path)
    recipe = Recipe(epochs=1, batch_size=128, optim=OptimSpec(lr=0.05))
    first = get_original(store, digits, "small_cnn", recipe, 0, torch.device("cpu"), progress=False)
    # Corrupt the cache the way a code edit would: same key, weights of another architecture.
    other = build_model("resnet8", ModelSpec(10, 1, 8, digits.mean, digits.std))
    store.save_artifact("original", first.key, other.state_dict())
    again = get_original(store, digits, "small_cnn", recipe, 0, torch.device("cpu"), progress=False)
    assert again.info["loaded"] is False
