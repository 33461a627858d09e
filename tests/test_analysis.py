"""Forget-vector analyses (issue 16): each on a constructed case whose answer is known."""

from __future__ import annotations

import dataclasses

import torch

from mubench.methods.forget_vector import ForgetVector, retain_subsample


def test_retain_subsample_keeps_forget_and_draws_a_seeded_fraction(make_task, class0_split):
    task = make_task(class0_split)
    assert retain_subsample(task, 1.0, 0) is task  # the default: today's behaviour
    half = retain_subsample(task, 0.5, 3)
    assert len(half.retain_y) == round(0.5 * len(task.retain_y))
    assert torch.equal(half.forget_y, task.forget_y)
    again = retain_subsample(task, 0.5, 3)
    other = retain_subsample(task, 0.5, 4)
    assert torch.equal(half.retain_y, again.retain_y)  # seeded
    assert not torch.equal(half.retain_x, other.retain_x)  # re-drawn each epoch


def test_budgeted_forget_vector_still_forgets_at_lower_cost(make_task, class0_split):
    from mubench.testing import task_logits

    task = make_task(class0_split)
    p = dataclasses.replace(ForgetVector.Params(), epochs=8, tol=0.0, retain_fraction=0.5)
    pred = ForgetVector(p).unlearn(task)
    logits = task_logits(pred, task)[: len(task.forget_y)]
    assert (logits.argmax(1) == task.forget_y).float().mean() < 0.5  # UA above 50
