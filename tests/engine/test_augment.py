from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from segstudio.core.errors import UnknownKeyError
from segstudio.engine.augment import Augmenter, copy_paste, cutmix, preset_names
from segstudio.engine.config import AugmentConfig, ConfigError
from segstudio.engine.task import IGNORE, Task

SEM = Task("multiclass", (0, 1, 2), ("background", "left lung", "right lung"))
ML = Task("multilabel", (0, 1, 2), ("a", "b", "c"))


def _pair(multilabel: bool, s: int = 64):
    yy, xx = np.mgrid[:s, :s]
    left = (yy - 32) ** 2 + (xx - 16) ** 2 < 100
    right = (abs(yy - 32) < 10) & (abs(xx - 48) < 8)
    img = np.full((s, s), 20, np.uint8)
    img[left] = 220
    img[right] = 220
    if multilabel:
        bar = abs(yy - 32) < 3
        img[bar] = 220
        return img, np.stack([left, right, bar], axis=2).astype(np.uint8)
    t = np.zeros((s, s), np.int16)
    t[left], t[right] = 1, 2
    return img, t


@pytest.mark.filterwarnings("ignore:HueSaturationValue.*grayscale:UserWarning")
@pytest.mark.parametrize("multilabel", [False, True])
@pytest.mark.parametrize("preset", preset_names())
def test_preset_contract(preset, multilabel):
    """Every preset: shapes and dtypes kept, mask values stay labels, image and mask move together."""
    task = ML if multilabel else SEM
    aug = Augmenter(AugmentConfig(preset=preset), task, seed=1)
    img, tgt = _pair(multilabel)
    agree = []
    for seed in range(6):
        aug.reseed(seed)
        out_img, out_t = aug(img.copy(), tgt.copy())
        assert out_img.shape == img.shape and out_img.dtype == np.uint8
        assert out_t.shape == tgt.shape and out_t.dtype == tgt.dtype
        if multilabel:
            assert set(np.unique(out_t)) <= {0, 1}
            fg = out_t.any(axis=2)
        else:
            assert set(np.unique(out_t).tolist()) <= {0, 1, 2, IGNORE}
            fg = out_t > 0
        bright = out_img > np.median(out_img[~fg]) + 40 if (~fg).any() else out_img > 0
        agree.append((bright == fg).mean())
    # photometric changes and cutout holes aside, the mask must still sit on the bright shapes
    assert np.mean(agree) > 0.85


def _mirror_only(aug: Augmenter) -> Augmenter:
    aug.pipeline = A.Compose([])
    return aug


def test_hflip_swaps_left_and_right_labels():
    aug = _mirror_only(Augmenter(AugmentConfig(preset="light", hflip_swap=(("Left_Lung", "right lung"),)), SEM))
    img, tgt = _pair(False)
    flipped = 0
    for seed in range(10):
        aug.reseed(seed)
        out_img, out_t = aug(img, tgt)
        if np.array_equal(out_img, img):
            assert np.array_equal(out_t, tgt)
            continue
        flipped += 1
        assert np.array_equal(out_img, img[:, ::-1])
        # the former left structure now lies on the other side and carries the other label
        assert np.array_equal(out_t == 2, (tgt == 1)[:, ::-1])
        assert np.array_equal(out_t == 1, (tgt == 2)[:, ::-1])
    assert flipped > 0


def test_hflip_swaps_multilabel_channels():
    aug = _mirror_only(Augmenter(AugmentConfig(preset="light", hflip_swap=(("a", "b"),)), ML))
    img, tgt = _pair(True)
    for seed in range(10):
        aug.reseed(seed)
        out_img, out_t = aug(img, tgt)
        if not np.array_equal(out_img, img):
            assert np.array_equal(out_t[..., 0], tgt[:, ::-1, 1])
            assert np.array_equal(out_t[..., 2], tgt[:, ::-1, 2])
            return
    pytest.fail("no mirror in 10 draws")


def test_hflip_can_be_switched_off():
    aug = _mirror_only(Augmenter(AugmentConfig(preset="light", hflip=False), SEM))
    img, tgt = _pair(False)
    for seed in range(10):
        aug.reseed(seed)
        assert np.array_equal(aug(img, tgt)[0], img)


def test_bad_names():
    with pytest.raises(UnknownKeyError):
        Augmenter(AugmentConfig(preset="heavy"), SEM)
    with pytest.raises(ConfigError):
        Augmenter(AugmentConfig(hflip_swap=(("left", "right"),)), SEM)


def test_pipeline_built_on_first_use_draws_as_one_built_at_once():
    """The Albumentations pipeline is built when first used (a resident run never uses it); built after a reseed,
    it draws what a pipeline built at once and then reseeded draws."""
    img, tgt = _pair(False)
    eager, lazy = Augmenter(AugmentConfig(preset="strong"), SEM), Augmenter(AugmentConfig(preset="strong"), SEM)
    assert eager.pipeline is not None  # built now
    assert lazy._pipeline is None
    for seed in (3, 11):
        eager.reseed(seed)
        lazy.reseed(seed)
        a, b = eager(img.copy(), tgt.copy()), lazy(img.copy(), tgt.copy())
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert lazy._pipeline is not None


def test_a_resident_run_does_not_import_albumentations(tmp_path):
    """Start-up: the device-resident path augments in torch, so building its trainer leaves albumentations
    unimported (about a second of the run's start on a 2-core CPU)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from pathlib import Path
        from segstudio.core.types import ClassSchema
        from segstudio.datasets.base import Dataset, Sample
        from segstudio.engine.config import TrainConfig
        from segstudio.engine.train import _Trainer

        rng = np.random.default_rng(0)
        images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
        gts = [rng.integers(0, 3, (32, 32), dtype=np.uint8) for _ in range(4)]
        ds = Dataset(root=Path("."), format_name="memory", schema=ClassSchema.from_names(["background", "a", "b"]),
                     samples=[Sample(id=f"m{{i}}", image=Path(f"m{{i}}"), gt=i) for i in range(4)],
                     read_image=lambda d, s: images[s.gt], read_gt=lambda d, s: gts[s.gt])
        cfg = TrainConfig().with_overrides(["model.encoder=resnet18", "image_size=32", "batch_size=2", "epochs=1",
                                            "val_fraction=0", "device=cpu", "data.resident=on",
                                            "augment.preset=strong"])
        t = _Trainer(cfg, ds, run_dir=Path({str(tmp_path)!r}), cancel=None, corrections=None, resume=False)
        assert t.resident, t.data_path
        next(iter(t.batches.train_epoch(0)))
        print("albumentations" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def _batch(multilabel: bool):
    """Sample n's image is the constant n, so a pixel's value tells which sample it came from."""
    imgs, tgts = zip(*[_pair(multilabel) for _ in range(4)], strict=True)
    x = torch.arange(4).float().view(4, 1, 1, 1).repeat(1, 1, 64, 64)
    t = torch.from_numpy(np.stack(tgts))
    y = t.permute(0, 3, 1, 2).float() if multilabel else t.long()
    for n in range(1, 4):  # different masks per sample
        y[n] = torch.roll(y[n], shifts=7 * n, dims=-1)
    return x, y


@pytest.mark.parametrize("multilabel", [False, True])
def test_cutmix_moves_image_and_mask_together(multilabel):
    x, y = _batch(multilabel)
    mixed = False
    for seed in range(5):
        x2, y2 = cutmix(x, y, gen=torch.Generator().manual_seed(seed))
        assert x2.shape == x.shape and y2.shape == y.shape
        src = x2[:, 0].long()  # (N, H, W): the sample each pixel came from
        mixed |= bool((src != torch.arange(4).view(4, 1, 1)).any())
        for n in range(4):
            expect = torch.gather(y, 0, src[n].expand(*y.shape[1:]).unsqueeze(0)
                                  if y.dim() == 3 else src[n].expand(y.shape[1], -1, -1).unsqueeze(0))[0]
            assert torch.equal(y2[n], expect)
    assert mixed


@pytest.mark.parametrize("multilabel", [False, True])
def test_copy_paste_pastes_labels_with_pixels(multilabel):
    x, y = _batch(multilabel)
    gen = torch.Generator().manual_seed(3)
    x2, y2 = copy_paste(x, y, gen=gen)
    changed = (x2 != x).any(1)
    assert changed.any()
    lab_changed = (y2 != y).any(1) if multilabel else (y2 != y)
    # a label can only change where pasted pixels landed
    assert not (lab_changed & ~changed).any()
