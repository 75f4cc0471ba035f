"""The device-resident data path: torch augmentation against the albumentations presets, the resident split and
the trainer's choice of path. Tests run on whatever device torch picks for tensors made here (the CPU), and the
trainer's device is whatever ``device=auto`` resolves to."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
import torch

from segstudio.datasets.registry import open_dataset
from segstudio.engine.augment import Augmenter, Op, preset_names
from segstudio.engine.config import AugmentConfig, ConfigError, DataConfig, TrainConfig
from segstudio.engine.data import SegmentationData
from segstudio.engine.distributed import EpochSampler
from segstudio.engine.resident import ResidentData, choose_path, resident_nbytes
from segstudio.engine.task import IGNORE, Task, resolve_task
from segstudio.engine.torch_augment import GEOMETRIC, TorchAugmenter, _Draw
from segstudio.engine.torch_pixel import clahe, clahe_cv2, clahe_lab, equalize, haze
from segstudio.engine.train import _Trainer, train

from .conftest import make_dataset, tiny_config

SEM = Task("multiclass", (0, 1, 2), ("background", "left lung", "right lung"))
ML = Task("multilabel", (0, 1, 2), ("left lung", "right lung", "c"))
SWAP = (("left lung", "right lung"),)
SIZE = 128


def _batch(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Loader pairs -> resident layout: ``(B, C, S, S) uint8`` and label codes (class + 1, 0 unlabelled)."""
    x = torch.stack([torch.from_numpy(np.ascontiguousarray(i[None] if i.ndim == 2 else i.transpose(2, 0, 1)))
                     for i, _ in pairs])
    codes = [np.where(t == IGNORE, 0, t + 1).astype(np.uint8) if t.ndim == 2 else t.transpose(2, 0, 1) for _, t in pairs]
    return x, torch.from_numpy(np.ascontiguousarray(np.stack(codes)))


def _only(aug: TorchAugmenter, kinds: set[str]) -> TorchAugmenter:
    """The same augmenter with its preset cut down to ``kinds`` (every remaining op drawn as before)."""
    steps = []
    for s in aug.steps:
        ops = getattr(s, "ops", (s,))
        if all(o.kind in kinds for o in ops):
            steps.append(s)
    aug.steps = tuple(steps)
    return aug


@pytest.fixture(scope="module")
def lungs(montgomery):
    """Eight Montgomery pairs at 128² (gray images, int16 targets with 0 / 1 left lung / 2 right lung)."""
    ds = open_dataset(montgomery)
    task = resolve_task(ds.schema)
    data = SegmentationData(ds, ds.samples[:8], task=task, image_size=SIZE, in_channels=1)
    return task, [data.load_pair(i) for i in range(8)]


# presets -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("multilabel", [False, True])
@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_keeps_shapes_dtypes_and_labels(preset, multilabel, channels):
    task = ML if multilabel else SEM
    aug = TorchAugmenter(AugmentConfig(preset=preset, hflip_swap=SWAP), task, seed=3)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, channels, 64, 64), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 2, (6, 3, 64, 64), dtype=torch.uint8, generator=g) if multilabel else (
        torch.randint(0, 4, (6, 64, 64), dtype=torch.uint8, generator=g))
    for _ in range(4):
        xo, yo = aug(x, y)
        assert xo.shape == x.shape and xo.dtype == torch.uint8 and yo.shape == y.shape and yo.dtype == y.dtype
        assert set(yo.unique().tolist()) <= ({0, 1} if multilabel else {0, 1, 2, 3})
    assert torch.equal(x, aug(x, y)[0]) == (preset == "none")


def test_geometry_moves_masks_with_images_on_real_masks(lungs):
    """An image whose pixel values encode the labels, warped by every geometric op of ``strong`` and ``xray``
    (flips, affine, elastic, grid): wherever the image is unambiguous its value names the mask's label, and the
    mask warped beside another image is the same mask (geometry never depends on the content)."""
    _, pairs = lungs
    _, y = _batch(pairs)
    encoded = (y.unsqueeze(1).int() * 80).to(torch.uint8)  # 0 outside, 80 background, 160 / 240 the lungs
    for preset in ("strong", "xray", "dermoscopy"):
        for seed in range(3):
            aug = _only(TorchAugmenter(AugmentConfig(preset=preset, hflip_swap=()), SEM, seed=seed), set(GEOMETRIC))
            xo, yo = aug(encoded, y)
            aug.reseed(seed)
            _, y_alone = aug(torch.zeros_like(encoded), y)
            assert torch.equal(yo, y_alone)
            value = xo[:, 0].int()
            clean = value % 80 == 0  # bilinear blends only at label edges
            assert (value[clean] // 80 == yo[clean].int()).float().mean() > 0.999
            assert clean.float().mean() > 0.9
            assert not torch.equal(yo, y)  # something moved


def test_mirror_swaps_the_montgomery_lungs(lungs):
    task, pairs = lungs
    x, y = _batch(pairs)
    aug = _only(TorchAugmenter(AugmentConfig(preset="xray", hflip_swap=SWAP), task, seed=0), {"hflip"})
    flipped = 0
    for seed in range(4):
        aug.reseed(seed)
        xo, yo = aug(x, y)
        for n in range(len(x)):
            if torch.equal(xo[n], x[n]):
                assert torch.equal(yo[n], y[n])
                continue
            flipped += 1
            assert torch.equal(xo[n], x[n].flip(-1))
            left, right = y[n] == 2, y[n] == 3  # codes: class + 1
            # the former left lung now lies on the other side and carries the right lung's label
            assert torch.equal(yo[n] == 3, left.flip(-1)) and torch.equal(yo[n] == 2, right.flip(-1))
            def side(m: torch.Tensor) -> float:  # column centroid relative to the middle
                return float((m.float().sum(0) * torch.arange(SIZE)).sum() / m.sum()) - SIZE / 2

            # the structure moved to the other side; the "left lung" label stayed on the left lung's side
            assert side(left) * side(yo[n] == 3) < 0 and side(left) * side(yo[n] == 2) > 0
    assert flipped > 0


def test_mirror_swaps_multilabel_planes():
    aug = _only(TorchAugmenter(AugmentConfig(preset="light", hflip_swap=SWAP), ML, seed=0), {"hflip"})
    y = torch.zeros(8, 3, 16, 16, dtype=torch.uint8)
    y[:, 0, :, :4] = 1
    y[:, 2, 8:] = 1
    x = torch.arange(16, dtype=torch.uint8).view(1, 1, 1, 16).expand(8, 1, 16, 16).contiguous()
    xo, yo = aug(x, y)
    mirrored = (xo[:, 0, 0, 0] == 15).nonzero().squeeze(1)
    assert len(mirrored) > 0
    assert torch.equal(yo[mirrored, 1], y[mirrored, 0].flip(-1)) and torch.equal(yo[mirrored, 2], y[mirrored, 2].flip(-1))


def test_value_ranges_and_photometric_statistics_match_albumentations(lungs):
    """The same Montgomery images through each preset 32 times: mean and spread of the augmented images agree
    with albumentations' to within 6 gray levels (mean) and 4 (standard deviation); values stay 0..255."""
    task, pairs = lungs
    x, y = _batch(pairs)
    for preset in ("light", "medical", "xray", "chest", "strong"):
        cfg = AugmentConfig(preset=preset, hflip_swap=SWAP)
        alb, mine = Augmenter(cfg, task, seed=0), TorchAugmenter(cfg, task, seed=0)
        a, t = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(32):
                a += [(o.mean(), o.std()) for o in (alb(i.copy(), tg.copy())[0] for i, tg in pairs)]
                xo, yo = mine(x, y)
                assert xo.dtype == torch.uint8 and set(yo.unique().tolist()) <= {0, 1, 2, 3}
                t += [(float(v.float().mean()), float(v.float().std())) for v in xo]
        a_arr, t_arr = np.array(a), np.array(t)
        assert abs(a_arr[:, 0].mean() - t_arr[:, 0].mean()) < 6, preset
        assert abs(a_arr[:, 1].mean() - t_arr[:, 1].mean()) < 4, preset
        assert abs(a_arr[:, 0].std() - t_arr[:, 0].std()) < 6, preset  # brightness spread as wide


def test_clahe_and_equalize_equal_opencv(lungs):
    _, pairs = lungs
    img = pairs[0][0]
    v = torch.from_numpy(img).float()[None, None]
    assert np.array_equal(equalize(v[:, 0])[0].numpy().astype(np.uint8), cv2.equalizeHist(img))
    for clip in (1.0, 1.6, 3.0):
        ref = cv2.createCLAHE(clipLimit=clip, tileGridSize=(8, 8)).apply(img)
        assert np.array_equal(clahe(v, torch.tensor([clip]))[0, 0].numpy().astype(np.uint8), ref)
        assert np.array_equal(clahe_cv2(v, torch.tensor([clip]))[0, 0].numpy().astype(np.uint8), ref)


def test_haze_equals_the_loader_path_and_only_whitens(lungs):
    """The opacity haze of the ``chest`` preset: the torch op gives the loader op's pixels for the same draw (to
    one gray level: float32 exp on two libraries), pulls pixels towards white and never past it, most at its
    centre, and leaves the label alone (the lung is still lung under an opacity)."""
    from segstudio.engine.augment_ops import Haze, apply_haze, haze_profile

    task, pairs = lungs
    img, target = pairs[1]
    draw = {"amount": 0.6, "cy": 0.6, "cx": 0.3, "ry": 0.15, "rx": 0.1}
    ref = apply_haze(img, draw["amount"], haze_profile(SIZE, SIZE, draw["cy"], draw["cx"], draw["ry"], draw["rx"]))
    v = torch.from_numpy(img).float()[None, None]
    mine = haze(v, *(torch.tensor([draw[k]]) for k in ("amount", "cy", "cx", "ry", "rx")))[0, 0].numpy()
    assert np.abs(mine - ref.astype(np.float32)).max() <= 1
    gain = ref.astype(np.int16) - img.astype(np.int16)
    assert gain.min() >= 0 and ref.max() <= 255
    cy, cx = int(0.6 * SIZE), int(0.3 * SIZE)
    assert gain[cy, cx] >= 0.5 * (255 - int(img[cy, cx])) and gain[5, SIZE - 5] == 0
    # through the albumentations transform, p=1: the label is untouched
    out = Haze((0.6, 0.6), (0.15, 0.15), (0.5, 0.5), p=1.0)(image=img, mask=target)
    assert np.array_equal(out["mask"], target) and (out["image"] >= img).all() and (out["image"] > img).any()
    # through the presets: chest hazes a share of the images, which only ever get brighter
    cfg = AugmentConfig(preset="chest", hflip=False)
    aug = _only(TorchAugmenter(cfg, task, seed=3), {"haze"})
    x, y = _batch(pairs)
    xo, yo = aug(x, y)
    brighter = [(a.int() - b.int()).min() >= 0 and bool((a > b).any()) for a, b in zip(xo, x, strict=True)]
    assert torch.equal(yo, y) and 0 < sum(brighter) < len(pairs)  # p = 0.5: some, not all (seeded)
    assert all((a.int() - b.int()).min() >= 0 for a, b in zip(xo, x, strict=True))


def test_colour_clahe_on_lightness_is_close_to_opencv_lab(ph2):
    """RGB CLAHE (the CUDA path) works on Lab's L as OpenCV does; OpenCV's 8-bit Lab rounds a and b, so the two
    agree to about one gray level on average."""
    from segstudio.engine.preprocess import to_uint8

    ds = open_dataset(ph2)
    img = cv2.resize(to_uint8(ds.load_image(ds.samples[0]))[..., :3], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    v = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()[None]
    diff = (clahe_lab(v, torch.tensor([2.0])) - clahe_cv2(v, torch.tensor([2.0]))).abs()
    assert float(diff.mean()) < 2.0 and float((diff > 8).float().mean()) < 0.02


def test_affine_equals_opencv_warp_with_albumentations_matrix(lungs):
    """A fixed scale / rotation / translation gives cv2.warpAffine's image (±1 gray level) and mask exactly."""
    from albumentations.augmentations.geometric import functional as fgeometric

    _, pairs = lungs
    img, tgt = pairs[1]
    aug = TorchAugmenter(AugmentConfig(preset="xray"), SEM)
    params = {"sx": 1.1, "sy": 0.9, "angle": 13.0, "tx": 5.0, "ty": -4.0}
    d = _Draw(Op("affine"), torch.tensor([True]), {k: torch.tensor([v], dtype=torch.float64) for k, v in params.items()})
    m = fgeometric.create_affine_transformation_matrix({"x": 5, "y": -4}, {"x": 0, "y": 0}, {"x": 1.1, "y": 0.9}, 13.0,
                                                       fgeometric.center((SIZE, SIZE)))
    grid = aug._grid([d], torch.tensor([0]), SIZE, torch.device("cpu"))
    out = torch.nn.functional.grid_sample(torch.from_numpy(img).float()[None, None], grid, align_corners=False)
    ref = cv2.warpAffine(img, m[:2], (SIZE, SIZE), flags=cv2.INTER_LINEAR)
    assert np.abs(out.round()[0, 0].numpy() - ref).max() <= 1
    codes = torch.from_numpy(np.where(tgt == IGNORE, 0, tgt + 1).astype(np.float32))[None, None]
    mask = torch.nn.functional.grid_sample(codes, grid, mode="nearest", align_corners=False)[0, 0].numpy()
    ref_mask = cv2.warpAffine(codes[0, 0].numpy(), m[:2], (SIZE, SIZE), flags=cv2.INTER_NEAREST)
    assert (mask != ref_mask).mean() < 0.002  # ties at exact half pixels may round either way


def test_seeded_batches_repeat_and_reseed():
    aug = TorchAugmenter(AugmentConfig(preset="strong", hflip_swap=SWAP), SEM, seed=5)
    x = torch.randint(0, 256, (4, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (4, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    first = [aug(x, y) for _ in range(3)]
    aug.reseed(5)
    again = [aug(x, y) for _ in range(3)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][0], first[1][0])


# the resident split ---------------------------------------------------------------------------------------------


def _resident(ds, *, preset="light", seed=0, weights=None, bs=2):
    task = resolve_task(ds.schema)
    data = SegmentationData(ds, ds.samples, task=task, image_size=32, in_channels=3)
    sampler = EpochSampler(len(data), batch_size=bs, seed=seed, weights=weights)
    return data, ResidentData(data, device=torch.device("cpu"), sampler=sampler,
                              augmenter=TorchAugmenter(AugmentConfig(preset=preset), task, seed=seed))


def test_resident_batches_match_the_loader_items_and_repeat_per_epoch():
    ds = make_dataset(n=5)
    data, res = _resident(ds, preset="none")
    batches = list(res.epoch(3))
    assert not data.cache and data.cache_used == 0  # the decoded pairs moved to the resident split
    assert [len(b[0]) for b in batches] == [2, 2]  # a lone last sample is left out (BatchNorm needs two)
    order = res.sampler.order(3).tolist()
    assert sorted(order) == list(range(5))
    x, y = batches[0]
    for k, i in enumerate(order[:2]):
        xi, yi = data[i]
        assert torch.equal(x[k], xi) and torch.equal(y[k], yi) and y.dtype == torch.int64
    again = list(_resident(ds, preset="none")[1].epoch(3))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, again, strict=True))


def test_resident_multilabel_targets_are_planes():
    ds = make_dataset(n=4, names=("a", "b", "c"), multilabel=True)
    data, res = _resident(ds)
    x, y = next(iter(res.epoch(0)))
    assert y.dtype == torch.uint8 and y.shape == (2, 3, 32, 32) and set(y.unique().tolist()) <= {0, 1}


def test_resident_weights_draw_favourites_more_often():
    ds = make_dataset(n=8)
    w = torch.ones(8, dtype=torch.double)
    w[2] = 50.0
    _, res = _resident(ds, weights=w, bs=1)
    drawn = res.sampler.order(0).tolist()
    assert len(drawn) == 8 and drawn.count(2) > 4


# choosing the path ----------------------------------------------------------------------------------------------


def test_choice_follows_setting_budget_and_cache():
    task, cpu = SEM, torch.device("cpu")
    need = resident_nbytes(100, image_size=256, in_channels=1, task=task)
    assert need == 100 * 256 * 256 * 2
    small = DataConfig(image_size=256, resident_budget_mb=1)
    assert not choose_path(small, n=100, task=task, in_channels=1, device=cpu).resident  # 12.5 MB > 1 MB
    assert "resident_budget_mb" in choose_path(small, n=100, task=task, in_channels=1, device=cpu).reason
    assert choose_path(DataConfig(image_size=256, resident_budget_mb=64), n=100, task=task, in_channels=1,
                       device=cpu).resident
    assert choose_path(DataConfig(resident="on", resident_budget_mb=1, image_size=256), n=100, task=task,
                       in_channels=1, device=cpu).resident
    assert not choose_path(DataConfig(resident="off"), n=2, task=task, in_channels=1, device=cpu).resident
    assert not choose_path(DataConfig(cache_mb=0), n=2, task=task, in_channels=1, device=cpu).resident
    assert not choose_path(DataConfig(), n=2, task=task, in_channels=1, device=torch.device("mps")).resident


def test_config_checks_the_new_keys():
    with pytest.raises(ConfigError, match="data.resident"):
        TrainConfig().with_overrides(["data.resident=sometimes"])
    with pytest.raises(ConfigError):
        TrainConfig().with_overrides(["resident_budget_mb=-1"])
    assert TrainConfig().with_overrides(["resident=off"]).data.resident == "off"


def test_cpu_trainer_keeps_a_small_set_resident_under_auto(tmp_path):
    trainer = _Trainer(tiny_config("device=cpu"), make_dataset(n=6), run_dir=tmp_path, cancel=None, corrections=None,
                       resume=False)
    assert trainer.data_path.resident and trainer.resident is not None
    assert trainer.resident.images.device == trainer.device


def test_trainer_falls_back_to_the_loader_over_budget(tmp_path):
    cfg = tiny_config("image_size=1024", "resident_budget_mb=1")  # 4 samples x 1024² x 2 bytes > 1 MB
    trainer = _Trainer(cfg, make_dataset(n=6), run_dir=tmp_path, cancel=None, corrections=None, resume=False)
    assert not trainer.data_path.resident and trainer.resident is None
    assert isinstance(trainer.batches.train_epoch(0), torch.utils.data.DataLoader)


@pytest.mark.parametrize("mode", ["on", "off"])
def test_short_training_runs_finish_on_both_paths(tmp_path, mode):
    cfg = tiny_config("epochs=2", "augment.preset=strong", "augment.cutmix_p=0.5", f"data.resident={mode}")
    events = list(train(cfg, make_dataset(n=6), run_dir=tmp_path))
    fin = events[-1]
    assert fin.epochs_completed == 2 and not fin.cancelled
    assert json.loads((tmp_path / "run.json").read_text())["data_path"] == ("resident" if mode == "on" else "loader")
