"""The forget-vector bank as a resource: its stacked forward pass stays within a memory budget,
and its settings come from [bank], never from the forget vector's own overrides."""

from __future__ import annotations

import torch

from mubench.methods._fv_bank import MAX_STACK_VALUES, bank_settings, classes_per_group


def test_stacked_groups_shrink_with_the_image_size():
    # CIFAR-10 at batch 256: 16 classes fit the budget (all 10 in one pass).
    assert classes_per_group(256, (3, 32, 32)) == 16
    # ImageNet-10 at 224 px: one class at a time, never 10 × 256 images in one forward.
    assert classes_per_group(256, (3, 224, 224)) == 1
    assert classes_per_group(128, (3, 224, 224)) == 1
    # Tiny digits: many classes per pass.
    assert classes_per_group(256, (1, 8, 8)) == MAX_STACK_VALUES // (256 * 64)


def test_bank_settings_are_class_wise_and_read_only_the_bank_table():
    cpu = torch.device("cpu")
    plain = bank_settings("cifar10", {}, cpu, "fp32")
    assert plain["params"]["beta"] == 5.0 and plain["batched"] is False  # class-wise beta, resolved
    assert bank_settings("cifar10", {"beta": 3.0}, cpu, "fp32")["params"]["beta"] == 3.0
    assert bank_settings("cifar10", {}, torch.device("cuda"), "bf16")["batched"] is True


def _original_in_store(store, digits, digits_original, digits_recipe):
    """The session's digits original, stored under its Original job's key (nothing retrains)."""
    import dataclasses

    from mubench.jobs import Original
    from mubench.pipeline import architecture_key, data_key, spec_for

    job = Original(dataset="digits", data=data_key(digits), model="small_cnn",
                   arch=architecture_key("small_cnn", spec_for(digits)), recipe=dataclasses.asdict(digits_recipe),
                   seed=0, compute={"device": "cpu", "threads": 1})
    store.save_artifact("original", job.key, {k: v.cpu() for k, v in digits_original.state_dict().items()})
    store.write_record("original", job.key, {"key": job.key, "train_acc": 100.0, "test_acc": 98.0})
    return job


def test_bank_resource_is_built_once_stored_and_keyed_by_its_settings(tmp_path, digits, digits_original,
                                                                      digits_recipe, cpu):
    from mubench.jobs import Resource, RunContext
    from mubench.store import Store

    store = Store(tmp_path)
    original = _original_in_store(store, digits, digits_original, digits_recipe)
    settings = bank_settings("digits", {"epochs": 1, "batch_size": 256, "tol": 0.0}, cpu, "fp32")
    job = Resource(name="fv_bank", settings=settings, resource_version="1", original=original)
    assert not job.done(store)
    record = job.run(RunContext(store, cpu))
    assert job.done(store) and record["seconds"] > 0 and record["epochs_run"] == [1] * 10
    vectors, facts = job.load(store, cpu)
    assert tuple(vectors.shape) == (10, *digits.input_shape) and facts == {"bank_s": record["seconds"]}
    others = [Resource(name="fv_bank", settings={**settings, "batched": True}, resource_version="1", original=original),
              Resource(name="fv_bank", settings={**settings, "precision": "bf16"}, resource_version="1",
                       original=original),
              Resource(name="fv_bank", settings=settings, resource_version="2", original=original)]
    assert len({job.key, *(o.key for o in others)}) == 4
