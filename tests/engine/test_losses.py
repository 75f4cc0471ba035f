from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.errors import UnknownKeyError
from segstudio.engine.config import LossConfig, LossTerm
from segstudio.engine.losses import build_loss, loss_names, make_loss_term, signed_distance
from segstudio.engine.task import IGNORE, Task

TASKS = {
    "binary": Task("binary", (0, 1), ("background", "lesion")),
    "multiclass": Task("multiclass", (0, 1, 2), ("background", "left", "right")),
    "multilabel": Task("multilabel", (0, 1, 2), ("a", "b", "c")),
}


def _target(task: Task, n: int = 2, s: int = 24) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    a = ((yy - 8) ** 2 + (xx - 7) ** 2 < 25)
    b = (abs(yy - 14) < 4) & (abs(xx - 17) < 4)
    if task.mode == "multilabel":
        c = abs(yy - 12) < 2
        return torch.stack([a, b, c]).float().unsqueeze(0).repeat(n, 1, 1, 1)
    t = torch.zeros(s, s, dtype=torch.long)
    t[a] = 1
    if task.num_classes > 2:
        t[b] = 2
    return t.unsqueeze(0).repeat(n, 1, 1)


def _logits_for(task: Task, target: torch.Tensor, *, good: bool) -> torch.Tensor:
    """Confident logits that agree (good) or disagree (bad) with the target."""
    if task.mode == "multilabel":
        sign = target * 2 - 1
    else:
        oh = torch.nn.functional.one_hot(target.clamp_min(0), task.num_classes).permute(0, 3, 1, 2).float()
        sign = oh * 2 - 1
        if task.mode == "binary":
            sign = sign[:, 1:]
    return 4.0 * (sign if good else -sign)


def _aux_for(task: Task, target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return logits.clone()  # a dense aux head output (FCN/SegNet style)


@pytest.mark.parametrize("mode", list(TASKS))
@pytest.mark.parametrize("name", loss_names())
def test_loss_contract(name, mode):
    """Every loss in every mode: finite scalar, gradients flow, a right prediction scores below a wrong one."""
    task = TASKS[mode]
    target = _target(task)
    fn = make_loss_term(name, task)
    good = _logits_for(task, target, good=True).requires_grad_(True)
    bad = _logits_for(task, target, good=False)
    lg = fn(good, target, _aux_for(task, target, good))
    lb = fn(bad, target, _aux_for(task, target, bad))
    assert lg.dim() == 0 and torch.isfinite(lg) and torch.isfinite(lb)
    lg.backward()
    assert good.grad is not None and torch.isfinite(good.grad).all()
    assert float(lg.detach()) < float(lb)


@pytest.mark.parametrize("name", ["ce", "dice", "dice_image", "focal", "lovasz", "tversky", "jaccard", "boundary"])
def test_ignored_pixels_do_not_count(name):
    task = TASKS["multiclass"]
    target = _target(task)
    target[:, :5] = IGNORE
    fn = make_loss_term(name, task)
    logits = torch.randn(2, 3, 24, 24)
    changed = logits.clone()
    changed[:, :, :5] = torch.randn(2, 3, 5, 24) * 10
    assert torch.allclose(fn(logits, target, None), fn(changed, target, None), atol=1e-5)


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_per_image_dice_weighs_a_missed_small_region_as_much_as_its_image(mode):
    """Two images, one with a large region, one with a small one, and a prediction that gets the large one right and
    misses the small one: smp's pooled Dice barely notices (the batch's pixels are nearly all right), the per-image
    Dice loses about half (one of two images is wholly wrong)."""
    task = TASKS[mode]
    target = torch.zeros(2, 32, 32, dtype=torch.long)
    target[0, 2:30, 2:30] = 1
    target[1, 10:13, 10:13] = 1
    perfect = _logits_for(task, target, good=True) * 3
    missed = perfect.clone()
    missed[1] = _logits_for(task, torch.zeros_like(target[1:]), good=True)[0] * 3
    pooled, per_image = make_loss_term("dice", task), make_loss_term("dice_image", task)
    assert float(per_image(perfect, target, None)) < 0.01
    lost = float(per_image(missed, target, None)) - float(per_image(perfect, target, None))
    assert lost > 0.3 if mode == "binary" else lost > 0.15  # multiclass: the background classes average in
    assert lost > 5 * (float(pooled(missed, target, None)) - float(pooled(perfect, target, None)))


def test_per_image_dice_skips_classes_an_image_does_not_hold():
    """A class absent from an image's labels is not scored on it (as smp's Dice skips a class absent from the
    batch): an image of background only, predicted as background, costs nothing."""
    task = TASKS["multiclass"]
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    assert float(make_loss_term("dice_image", task)(_logits_for(task, target, good=True) * 3, target, None)) < 0.01


def test_class_weights_make_errors_on_heavy_classes_cost_more():
    task = TASKS["multiclass"]
    target = _target(task)
    logits = torch.zeros(2, 3, 24, 24)
    logits[:, 0] = 3.0  # everything predicted background: wrong on classes 1 and 2
    plain = make_loss_term("ce", task)(logits, target, None)
    weighted = make_loss_term("ce", task, class_weights=torch.tensor([0.1, 1.0, 5.0]))(logits, target, None)
    assert float(weighted) > float(plain)


def test_aux_presence_head():
    task = TASKS["multiclass"]
    target = _target(task)
    fn = make_loss_term("aux", task)
    right = torch.tensor([[5.0, 5.0, 5.0]] * 2)  # all three classes are present
    wrong = -right
    assert float(fn(None, target, right)) < float(fn(None, target, wrong))


def test_weighted_sum_equals_the_parts():
    task = TASKS["multiclass"]
    cfg = LossConfig(terms=(LossTerm("dice", 0.01), LossTerm("boundary", 0.99), LossTerm("aux", 0.3)))
    loss = build_loss(cfg, task)
    target = _target(task)
    logits = torch.randn(2, 3, 24, 24)
    aux = torch.randn(2, 3)
    total, parts = loss((logits, aux), target)
    assert set(parts) == {"dice", "boundary", "aux"}
    expected = 0.01 * parts["dice"] + 0.99 * parts["boundary"] + 0.3 * parts["aux"]
    assert torch.isclose(total, expected, atol=1e-5)
    # in evaluation the model has no aux output: the aux term drops out instead of failing
    total_eval, parts_eval = loss(logits, target)
    assert "aux" not in parts_eval


def test_learnable_weights_train():
    task = TASKS["binary"]
    loss = build_loss(LossConfig(terms=(LossTerm("bce"), LossTerm("dice")), learnable_weights=True), task)
    params = list(loss.parameters())
    assert len(params) == 1 and params[0].shape == (2,)
    total, _ = loss(torch.randn(2, 1, 24, 24), _target(task))
    total.backward()
    assert params[0].grad is not None and params[0].grad.abs().sum() > 0


def test_signed_distance_is_negative_inside_positive_outside():
    m = np.zeros((9, 9), bool)
    m[3:6, 3:6] = True
    d = signed_distance(m)
    assert (d[m] <= 0).all() and (d[~m] > 0).all()
    assert d[0, 0] > d[2, 2]
    assert not signed_distance(np.zeros((4, 4), bool)).any()


def test_unknown_loss():
    with pytest.raises(UnknownKeyError) as e:
        make_loss_term("dicee", TASKS["binary"])
    assert "boundary" in str(e.value)
