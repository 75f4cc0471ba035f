"""Post-processing registry: keep largest k, fill holes, minimum area, per-class thresholds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.errors import UnknownKeyError
from segstudio.engine.infer import InferenceOptions, Predictor, predict
from segstudio.engine.postprocess import PostContext, PostprocessError, PostStep, apply_steps, parse_step

from .inferkit import pointwise_checkpoint


def _ctx(names=("background", "left", "right"), *, multilabel=False, thresholds=None):
    ckpt = pointwise_checkpoint(names, multilabel=multilabel)
    pred = Predictor([ckpt], options=InferenceOptions(mode="native", device="cpu"))
    return PostContext(schema=ckpt.schema, task=ckpt.task, hard_mask=lambda p, t: pred.hard_mask(p, thresholds=t),
                       thresholds=tuple(thresholds or pred.thresholds))


def _blobs() -> np.ndarray:
    m = np.zeros((40, 40), np.uint8)
    m[2:12, 2:12] = 1  # 100 px
    m[20:24, 2:6] = 1  # 16 px
    m[30:31, 30:32] = 1  # 2 px
    m[2:20, 20:38] = 2  # 324 px with a hole
    m[8:12, 26:30] = 0
    m[30:34, 2:6] = 2  # 16 px
    return m


def test_keep_largest_k_per_class():
    out = apply_steps(_blobs(), probs=None, steps=[PostStep("keep_largest", {"k": 1})], ctx=_ctx())
    assert (out == 1).sum() == 100 and (out == 2).sum() == 324 - 16
    out2 = apply_steps(_blobs(), probs=None, steps=[parse_step("keep_largest:k=2")], ctx=_ctx())
    assert (out2 == 1).sum() == 116 and (out2 == 2).sum() == 324 - 16 + 16
    # only the named class
    only_left = apply_steps(_blobs(), probs=None, steps=[parse_step("keep_largest:classes=left")], ctx=_ctx())
    assert (only_left == 1).sum() == 100 and (only_left == 2).sum() == (_blobs() == 2).sum()


def test_min_area_and_fill_holes():
    m = _blobs()
    out = apply_steps(m, probs=None, steps=[parse_step("min_area:pixels=10")], ctx=_ctx())
    assert (out == 1).sum() == 116 and out[30, 30] == 0
    filled = apply_steps(m, probs=None, steps=[PostStep("fill_holes")], ctx=_ctx())
    assert (filled[8:12, 26:30] == 2).all() and (filled == 2).sum() == (m == 2).sum() + 16
    assert np.array_equal(m, _blobs())  # the input is never modified


def test_multilabel_planes_are_processed_bit_by_bit():
    bits = np.zeros((30, 30), np.uint64)
    bits[2:10, 2:10] |= np.uint64(1)
    bits[20:22, 20:22] |= np.uint64(1)
    bits[0:30, 5:7] |= np.uint64(2)  # overlaps bit 0
    out = apply_steps(bits, probs=None, steps=[parse_step("keep_largest")], ctx=_ctx(("a", "b"), multilabel=True))
    assert not (out[20:22, 20:22] & np.uint64(1)).any()
    assert ((out >> np.uint64(1)) & np.uint64(1)).sum() == 60  # bit 1 untouched, overlap kept
    assert (out[2:10, 5:7] == 3).all()


def test_thresholds_step_rethresholds_probabilities():
    probs = torch.linspace(0, 1, 100).view(1, 10, 10)
    probs = torch.cat([1 - probs, probs])
    ctx = _ctx(("background", "lesion"))
    base = ctx.hard_mask(probs, ctx.thresholds)
    out = apply_steps(base, probs=probs, steps=[parse_step("thresholds:lesion=0.8")], ctx=ctx)
    np.testing.assert_array_equal(out, (probs[1] >= 0.8).numpy().astype(np.uint8))
    with pytest.raises(PostprocessError):  # softmax models pick the likeliest class: no thresholds
        apply_steps(_blobs(), probs=probs, steps=[parse_step("thresholds:left=0.3")], ctx=_ctx())


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownKeyError, match="keep_largest"):
        parse_step("largest")
    with pytest.raises(UnknownKeyError, match="left"):
        apply_steps(_blobs(), probs=None, steps=[parse_step("fill_holes:classes=heart")], ctx=_ctx())
    with pytest.raises(PostprocessError):
        parse_step("min_area:500")


def test_steps_run_inside_predict():
    ckpt = pointwise_checkpoint(("background", "lesion"), normalize="unit")
    with torch.no_grad():  # lesion where the image is brighter than half
        ckpt.model.conv.weight.fill_(10.0)
        ckpt.model.conv.bias.fill_(-5.0)
    img = np.zeros((40, 40), np.uint8)
    img[2:12, 2:12] = img[20:24, 20:24] = img[30:33, 5:8] = 255
    from segstudio.core.types import ClassSchema
    from segstudio.datasets.base import Dataset, Sample

    ds = Dataset(root=ckpt.path, format_name="test", schema=ClassSchema.from_names(("background", "lesion")),
                 samples=[Sample("x.png", ckpt.path / "x.png")], read_image=lambda d, s: img, read_gt=lambda d, s: None)
    plain = next(predict(ds, Predictor([ckpt], options=InferenceOptions(mode="native", device="cpu"))))
    kept = next(predict(ds, Predictor([ckpt], options=InferenceOptions(mode="native", device="cpu",
                                                                        post=(parse_step("keep_largest"),)))))
    import cv2

    n_plain = cv2.connectedComponents(plain.mask, connectivity=8)[0] - 1
    n_kept = cv2.connectedComponents(kept.mask, connectivity=8)[0] - 1
    assert n_plain == 3 and n_kept == 1 and (kept.mask == 1).sum() == 100
