"""Inference engine: modes (resize / tile / native), TTA, ensembles, outputs, cancel, cache, failures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segstudio.core.errors import UnknownKeyError
from segstudio.engine.cancel import CancelToken
from segstudio.engine.infer import InferenceOptions, Prediction, PredictionFailed, Predictor, predict
from segstudio.engine.predictor import InferenceError, tile_starts
from segstudio.workspace.workspace import Workspace

from .conftest import make_dataset
from .inferkit import pointwise_checkpoint, train_tiny


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    torch.set_num_threads(1)
    return train_tiny(tmp_path_factory.mktemp("run"))


def _probs(pred: Predictor, image: np.ndarray) -> np.ndarray:
    return pred.probabilities([image])[0].numpy()


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w), dtype=np.uint8)


def test_tile_starts_cover_the_image_and_end_flush():
    assert tile_starts(100, 32, 16) == [0, 16, 32, 48, 64, 68]
    assert tile_starts(32, 32, 16) == [0]
    assert tile_starts(20, 32, 16) == [0]


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
@pytest.mark.parametrize("shape", [(100, 77), (32, 32), (20, 45)])
def test_tiling_a_pointwise_net_equals_the_whole_image(overlap, shape):
    # a 1x1 conv sees one pixel: blending, padding, crop-back and whole-image normalisation must be exact
    ckpt = pointwise_checkpoint(normalize="zscore", size=32)
    img = _image(*shape)
    native = _probs(Predictor([ckpt], options=InferenceOptions(mode="native", device="cpu")), img)
    tiled = _probs(Predictor([ckpt], options=InferenceOptions(mode="tile", overlap=overlap, device="cpu")), img)
    assert tiled.shape == (3, *shape)
    np.testing.assert_allclose(tiled, native, atol=2e-6)


def test_tiling_equals_whole_image_for_a_real_unet(tiny_ckpt):
    ds = make_dataset(n=1, size=64, seed=5)
    img = ds.load_image(ds.samples[0])
    whole = Predictor.load([tiny_ckpt], options=InferenceOptions(mode="native", device="cpu"))
    tiled = Predictor.load([tiny_ckpt], options=InferenceOptions(mode="tile", tile_size=64, device="cpu"))
    resized = Predictor.load([tiny_ckpt], options=InferenceOptions(mode="resize", device="cpu"))
    # one window covers the image: the three ways are the same computation
    p_whole, p_tile, p_res = _probs(whole, img), _probs(tiled, img), _probs(resized, img)
    np.testing.assert_allclose(p_tile, p_whole, atol=1e-5)
    np.testing.assert_allclose(p_res, p_whole, atol=1e-5)
    # a larger image in overlapping windows agrees with one whole-image pass on nearly every pixel
    big = np.tile(img, (2, 2))
    m_whole = whole.hard_mask(whole.probabilities([big])[0])
    small_tiles = Predictor.load([tiny_ckpt], options=InferenceOptions(mode="tile", tile_size=64, overlap=0.5, device="cpu"))
    m_tile = small_tiles.hard_mask(small_tiles.probabilities([big])[0])
    assert (m_whole == m_tile).mean() > 0.97


def test_tile_scale_resizes_before_tiling_and_answers_at_full_size():
    ckpt = pointwise_checkpoint(normalize="unit", size=32)
    img = np.kron(_image(12, 12), np.ones((8, 8), np.uint8))  # 96² of 8x8 blocks: halving keeps their middles
    pred = Predictor([ckpt], options=InferenceOptions(mode="tile", scale=0.5, device="cpu"))
    p = _probs(pred, img)
    assert p.shape == (3, 96, 96)
    ref = _probs(Predictor([ckpt], options=InferenceOptions(mode="native", device="cpu")), img)
    # the middle of each block is unchanged by the (antialiased) halving and the bilinear way back
    for off in (3, 4):
        np.testing.assert_allclose(p[:, off::8, off::8], ref[:, off::8, off::8], atol=1e-4)


def test_outputs_multiclass_probabilities_mask_and_uncertainty(tiny_ckpt):
    ds = make_dataset(n=3, size=48, seed=2)  # another size than training: resized there and back
    pred = Predictor.load([tiny_ckpt], options=InferenceOptions(probabilities=True, uncertainty=True, device="cpu"))
    results = list(predict(ds, pred))
    assert [r.index for r in results] == [0, 1, 2] and all(r.total == 3 for r in results)
    for r in results:
        assert isinstance(r, Prediction) and not r.cached
        assert r.probabilities is not None and r.uncertainty is not None
        assert r.probabilities.shape == (3, 48, 48) and r.mask.shape == (48, 48) and r.mask.dtype == np.uint8
        np.testing.assert_allclose(r.probabilities.sum(0), 1.0, atol=1e-5)
        np.testing.assert_array_equal(r.mask, r.probabilities.argmax(0))
        p = np.clip(r.probabilities, 1e-7, 1)
        np.testing.assert_allclose(r.uncertainty, -(p * np.log(p)).sum(0) / math.log(3), atol=1e-4)
        assert 0.0 <= r.uncertainty.min() and r.uncertainty.max() <= 1.0
    # the trained model found the objects: most pixels right
    acc = np.mean([(r.mask == ds.load_gt(r.sample_id)).mean() for r in results])
    assert acc > 0.8


def test_binary_and_multilabel_masks_follow_thresholds():
    img = _image(20, 20)
    b = pointwise_checkpoint(("background", "lesion"), normalize="unit")
    pb = Predictor([b], options=InferenceOptions(mode="native", device="cpu"))
    probs = pb.probabilities([img])[0]
    assert probs.shape == (2, 20, 20)
    np.testing.assert_array_equal(pb.hard_mask(probs), (probs[1] >= 0.5).numpy().astype(np.uint8))
    np.testing.assert_array_equal(pb.hard_mask(probs, thresholds=[0.8]), (probs[1] >= 0.8).numpy().astype(np.uint8))

    m = pointwise_checkpoint(("a", "b", "c"), multilabel=True, normalize="unit", overrides=("model.thresholds=[0.3,0.5,0.7]",))
    pm = Predictor([m], options=InferenceOptions(mode="native", device="cpu"))
    probs = pm.probabilities([img])[0].numpy()
    mask = pm.hard_mask(torch.from_numpy(probs))
    assert mask.dtype == np.uint64
    for bit, t in enumerate((0.3, 0.5, 0.7)):
        np.testing.assert_array_equal((mask >> np.uint64(bit)) & np.uint64(1), probs[bit] >= t)


def test_flip_tta_averages_flipped_passes(tiny_ckpt):
    img = make_dataset(n=1, size=64, seed=7).load_image("img0.png")
    plain = Predictor.load([tiny_ckpt], options=InferenceOptions(device="cpu"))
    tta = Predictor.load([tiny_ckpt], options=InferenceOptions(tta=("hflip", "vflip"), device="cpu"))
    expected = (_probs(plain, img) + _probs(plain, img[:, ::-1].copy())[:, :, ::-1] + _probs(plain, img[::-1].copy())[:, ::-1]) / 3
    np.testing.assert_allclose(_probs(tta, img), expected, atol=1e-5)


def test_hflip_tta_swaps_sided_classes():
    # lungs-lr style: mirroring swaps left and right; for a pointwise net hflip commutes with the model, so the
    # swapped average makes the two sided classes equally likely everywhere
    ckpt = pointwise_checkpoint(overrides=('augment.hflip_swap=[["left","right"]]',))
    p = _probs(Predictor([ckpt], options=InferenceOptions(mode="native", tta=("hflip",), device="cpu")), _image(16, 16))
    np.testing.assert_allclose(p[1], p[2], atol=1e-6)
    # trained without mirroring and without a swap: hflip TTA would mislead such a model, so it is skipped
    no_mirror = pointwise_checkpoint(overrides=("augment.hflip=false",))
    img = _image(16, 16, seed=3)
    skipped = _probs(Predictor([no_mirror], options=InferenceOptions(mode="native", tta=("hflip",), device="cpu")), img)
    np.testing.assert_allclose(skipped, _probs(Predictor([no_mirror], options=InferenceOptions(mode="native", device="cpu")), img))


def test_tta_transforms_are_the_symmetries_of_a_square():
    from segstudio.engine.config import INFER_TTA
    from segstudio.engine.predictor import TTA, expand_tta

    assert tuple(TTA) == INFER_TTA
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    seen = {tuple(x.flatten().tolist())}
    for t in TTA.values():
        y = t.apply(x)
        torch.testing.assert_close(t.invert(y), x)  # mapped back exactly
        seen.add(tuple(y.flatten().tolist()))
    assert len(seen) == 8  # identity and seven distinct transforms: the whole dihedral group
    img = x[0, 0].numpy()
    as_numpy = {"hflip": img[:, ::-1], "vflip": img[::-1], "rot90": np.rot90(img, 1), "rot180": np.rot90(img, 2),
                "rot270": np.rot90(img, 3), "transpose": img.T, "antitranspose": np.rot90(img, 2).T}
    for name, want in as_numpy.items():
        np.testing.assert_array_equal(TTA[name].apply(x)[0, 0].numpy(), want, err_msg=name)
    assert expand_tta(("hflip", "d4")) == ("hflip", *[n for n in TTA if n != "hflip"])
    # a non-square input turns too (native mode): the transform and its inverse restore its shape
    r = torch.rand(1, 2, 32, 64)
    assert TTA["rot90"].apply(r).shape == (1, 2, 64, 32)
    torch.testing.assert_close(TTA["transpose"].invert(TTA["transpose"].apply(r)), r)


def test_d4_tta_averages_every_turned_pass(tiny_ckpt):
    img = make_dataset(n=1, size=64, seed=7).load_image("img0.png")
    plain = Predictor.load([tiny_ckpt], options=InferenceOptions(device="cpu"))
    d4 = Predictor.load([tiny_ckpt], options=InferenceOptions(tta=("d4",), device="cpu"))
    assert d4.options.tta == ("hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "antitranspose")
    total = np.zeros_like(_probs(plain, img))
    for k in range(4):
        for mirror in (False, True):
            src = np.rot90(img[:, ::-1] if mirror else img, k).copy()
            back = np.rot90(_probs(plain, src), -k, axes=(1, 2))
            total += back[:, :, ::-1] if mirror else back
    np.testing.assert_allclose(_probs(d4, img), total / 8, atol=1e-5)


def test_quarter_turns_are_skipped_for_sided_classes_and_half_turns_swap():
    # left/right classes: a quarter turn makes them top and bottom, so it is not used; half a turn mirrors
    # left-right as hflip does, so it swaps them (a pointwise net: every transform commutes with it)
    ckpt = pointwise_checkpoint(overrides=('augment.hflip_swap=[["left","right"]]',))
    img = _image(16, 16, seed=5)
    plain = _probs(Predictor([ckpt], options=InferenceOptions(mode="native", device="cpu")), img)
    turned = _probs(Predictor([ckpt], options=InferenceOptions(mode="native", tta=("rot90", "transpose"),
                                                               device="cpu")), img)
    np.testing.assert_allclose(turned, plain, atol=1e-6)
    half = _probs(Predictor([ckpt], options=InferenceOptions(mode="native", tta=("rot180",), device="cpu")), img)
    np.testing.assert_allclose(half[1], half[2], atol=1e-6)
    assert not np.allclose(plain[1], plain[2])


def test_ensemble_is_the_mean_of_its_members():
    a, b = pointwise_checkpoint(seed=1), pointwise_checkpoint(seed=2)
    img = _image(24, 24)
    opts = InferenceOptions(mode="native", device="cpu")
    both = _probs(Predictor([a, b], options=opts), img)
    np.testing.assert_allclose(both, (_probs(Predictor([a], options=opts), img) + _probs(Predictor([b], options=opts), img)) / 2, atol=1e-6)
    with pytest.raises(InferenceError):
        Predictor([a, pointwise_checkpoint(("background", "lesion"))], options=opts)


def test_options_are_validated():
    with pytest.raises(UnknownKeyError):
        InferenceOptions(mode="sliding")
    with pytest.raises(UnknownKeyError):
        InferenceOptions(tta=("rotate",))
    with pytest.raises(InferenceError):
        InferenceOptions(overlap=1.0)


def test_cancel_stops_between_batches(tiny_ckpt):
    ds = make_dataset(n=8, size=64)
    token = CancelToken()
    got = []
    for r in predict(ds, Predictor.load([tiny_ckpt], options=InferenceOptions(batch_size=2, device="cpu")), cancel=token):
        got.append(r)
        token.cancel()
    assert 1 <= len(got) <= 2  # the rest of the batch in hand, nothing after


def test_image_list_with_an_unreadable_file(tiny_ckpt, tmp_path):
    import cv2

    good = tmp_path / "a.png"
    cv2.imwrite(str(good), make_dataset(n=1, size=64).load_image("img0.png"))
    bad = tmp_path / "b.png"
    bad.write_bytes(b"not an image")
    results = list(predict([good, bad, good], Predictor.load([tiny_ckpt], options=InferenceOptions(device="cpu"))))
    assert [type(r) for r in results] == [Prediction, PredictionFailed, Prediction]
    assert "b.png" in results[1].message or results[1].sample_id.endswith("b.png")
    np.testing.assert_array_equal(results[0].mask, results[2].mask)


def test_workspace_caches_per_sample_and_checkpoint(tiny_ckpt, tmp_path):
    ds = make_dataset(n=3, size=64)
    with Workspace(tmp_path / "ws") as ws:
        first = list(predict(ds, Predictor.load([tiny_ckpt], options=InferenceOptions(device="cpu")), workspace=ws))
        assert not any(r.cached for r in first)
        assert len(ws.predictions.entries()) == 3
        again = list(predict(ds, Predictor.load([tiny_ckpt], options=InferenceOptions(device="cpu")), workspace=ws))
        assert all(r.cached for r in again)
        for a, b in zip(first, again, strict=True):
            np.testing.assert_array_equal(a.mask, b.mask)
        # other options give other masks: not served from the cache of the plain run
        tta = list(predict(ds, Predictor.load([tiny_ckpt], options=InferenceOptions(tta=("vflip",), device="cpu")), workspace=ws))
        assert not any(r.cached for r in tta)


def _padded(content: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``content`` at the top left of a black film of ``shape``: a band below it and one to its right."""
    out = np.zeros(shape + content.shape[2:], content.dtype)
    out[: content.shape[0], : content.shape[1]] = content
    return out


@pytest.mark.parametrize("mode", ["resize", "native", "tile"])
@pytest.mark.parametrize(("names", "multilabel"), [(("background", "left", "right"), False),
                                                   (("background", "lesion"), False), (("a", "b", "c"), True)])
def test_a_content_cropped_model_sees_the_picture_and_answers_background_on_the_bands(mode, names, multilabel):
    content = _image(40, 56, seed=3)
    film = _padded(content, (60, 64))
    opts = InferenceOptions(mode=mode, device="cpu")
    plain = Predictor([pointwise_checkpoint(names, multilabel=multilabel, size=32)], options=opts)
    cropped = Predictor([pointwise_checkpoint(names, multilabel=multilabel, size=32, crop="content")], options=opts)
    p = _probs(cropped, film)
    assert p.shape[1:] == (60, 64)
    # inside the box: exactly what the model answers for the picture alone (normalised on the picture alone)
    np.testing.assert_allclose(p[:, :40, :56], _probs(plain, content), atol=1e-6)
    # on the bands: background, or no class at all for a multi-label model
    expected = np.zeros(p.shape[0], np.float32)
    if not multilabel:
        expected[0] = 1.0
    for band in (p[:, 40:, :], p[:, :, 56:]):
        np.testing.assert_array_equal(band, np.broadcast_to(expected[:, None, None], band.shape))
    mask = cropped.hard_mask(torch.from_numpy(p))
    assert (mask[40:] == 0).all()
    # without bands, cropping changes nothing
    np.testing.assert_allclose(_probs(cropped, content), _probs(plain, content), atol=1e-6)


def test_a_content_crop_is_kept_in_the_checkpoint_and_older_checkpoints_crop_nothing(tmp_path):
    import json

    from segstudio.engine.checkpoint import CheckpointError, load_checkpoint
    from segstudio.engine.train import train

    from .conftest import tiny_config

    ds = make_dataset(n=4)
    read_i, read_g = ds.read_image, ds.read_gt
    ds.read_image = lambda d, s: _padded(read_i(d, s), (48, 40))
    ds.read_gt = lambda d, s: _padded(read_g(d, s), (48, 40))
    fin = list(train(tiny_config("data.crop=content"), ds, run_dir=tmp_path / "run"))[-1]
    ckpt = fin.last_checkpoint
    assert load_checkpoint(ckpt).preprocessing.crop == "content"
    doc = json.loads((ckpt / "config.json").read_text())
    assert doc["preprocessing"]["crop"] == "content"
    pred = Predictor.load([ckpt], options=InferenceOptions(device="cpu"))
    mask = pred.hard_mask(pred.probabilities([ds.load_image(ds.samples[0])])[0])
    assert mask.shape == (48, 40) and (mask[32:] == 0).all() and (mask[:, 32:] == 0).all()
    # a checkpoint written before the setting existed
    del doc["preprocessing"]["crop"]
    (ckpt / "config.json").write_text(json.dumps(doc))
    assert load_checkpoint(ckpt).preprocessing.crop == "none"
    doc["preprocessing"]["crop"] = "borders"
    (ckpt / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="preprocessing.crop"):
        load_checkpoint(ckpt)


def test_an_unknown_crop_is_refused_with_the_choices():
    from segstudio.engine.config import TrainConfig, validate

    with pytest.raises(UnknownKeyError, match="content"):
        validate(TrainConfig().with_overrides(["data.crop=borders"]))


@pytest.mark.parametrize(("dtype", "band"), [(np.uint16, 4095), (np.float32, -1000.0)])
def test_a_content_crop_scales_deep_images_as_training_did(dtype, band):
    # training takes the whole image to 8 bits, then crops: a band at the image's extreme still sets the scale
    from segstudio.engine.preprocess import to_uint8

    rng = np.random.default_rng(4)
    film = np.full((60, 64), band, dtype)
    film[:40, :56] = rng.integers(0, 3000, (40, 56)).astype(dtype)
    opts = InferenceOptions(mode="resize", device="cpu")
    plain = Predictor([pointwise_checkpoint(normalize="unit", size=32)], options=opts)
    cropped = Predictor([pointwise_checkpoint(normalize="unit", size=32, crop="content")], options=opts)
    np.testing.assert_allclose(_probs(cropped, film)[:, :40, :56], _probs(plain, to_uint8(film)[:40, :56]), atol=1e-6)
