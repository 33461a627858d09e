from mubench.predictor import Predictor


def test_task_has_forget_and_retain_but_no_test(make_task, class0_split):
    task = make_task(class0_split)
    assert len(task.forget_y) == len(class0_split.forget)
    assert set(task.forget_y.tolist()) == {0}
    assert 0 not in set(task.retain_y.tolist())
    assert not any("test" in f for f in vars(task))


def test_original_fits_digits(digits, digits_original, cpu):
    p = Predictor(digits_original)
    acc = (p.logits(digits.test_x, cpu).argmax(1) == digits.test_y).float().mean().item()
    assert acc > 0.95
