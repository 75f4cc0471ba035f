"""``segstudio --selftest``: prove that an installation works end to end, in about ten seconds, without a network.

It runs the parts an installer can break, in order, each timed:

``sample``      open the bundled sample dataset (format registry, image + mask decoding)
``window``      render the main window with the sample open (Qt platform plugin, fonts, icons, styles)
``model``       build a small smp U-Net and run one forward pass on the sample; torchvision's compiled ops
``train``       one optimiser step with the default loss (autograd, albumentations augmentation)
``checkpoint``  write a checkpoint directory (config.json + model.safetensors), reload it, same outputs

and prints one line: ``selftest ok: sample 0.1s, window 0.9s, ... (device cpu, torch 2.14.1+cu130, CUDA)`` —
or ``selftest FAILED at <part>: <reason>`` with exit status ``10 + index of the part``, so a script can tell
which part broke. A part after a failed one is not run (it would fail for the same reason).

The user's settings, logs and caches are redirected to a temporary folder while it runs: a self-test must not
change the installation it tests.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PARTS: tuple[str, ...] = ("sample", "window", "model", "train", "checkpoint")
#: Exit status of a failure in ``PARTS[i]`` is ``FAILURE_BASE + i``; 1 stays "could not even start".
FAILURE_BASE = 10
#: A part needs the state the part before it leaves; asking for a part runs what it needs first.
NEEDS: dict[str, str] = {"model": "sample", "train": "model", "checkpoint": "train"}
IMAGE_SIZE = 64
ENCODER = "resnet18"


@dataclass(frozen=True)
class PartResult:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class SelftestReport:
    parts: tuple[PartResult, ...]
    environment: str = ""

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.parts)

    @property
    def failed(self) -> PartResult | None:
        return next((p for p in self.parts if not p.ok), None)

    @property
    def exit_code(self) -> int:
        bad = self.failed
        return 0 if bad is None else FAILURE_BASE + PARTS.index(bad.name)

    def summary(self) -> str:
        bad = self.failed
        if bad is not None:
            return f"selftest FAILED at {bad.name}: {bad.detail}"
        timings = ", ".join(f"{p.name} {p.seconds:.1f}s" for p in self.parts)
        return f"selftest ok: {timings} ({self.environment})"


@dataclass
class _State:
    """What one part hands to the next (the sample to the model, the trained model to the checkpoint)."""

    workdir: Path
    screenshot: Path | None
    device: str
    dataset: Any = None
    image: Any = None  # (H, W[, 3]) uint8
    gt: Any = None  # (H, W) uint8 class ids
    task: Any = None
    config: Any = None
    model: Any = None
    batch: Any = None  # (x (1, 3, S, S) uint8, y (1, S, S) int64)
    qt_platform: str = ""


def torch_variant() -> str:
    """``CUDA 13.0`` / ``ROCm 6.2`` / ``CPU``: what the installed torch was built for (not whether a GPU is here)."""
    import torch

    if getattr(torch.version, "cuda", None):
        return f"CUDA {torch.version.cuda}"
    if getattr(torch.version, "hip", None):
        return f"ROCm {torch.version.hip}"
    return "CPU"


def _part_sample(st: _State) -> str:
    from segstudio.core.paths import sample_dataset_dir
    from segstudio.datasets.registry import open_dataset

    root = sample_dataset_dir()
    ds = open_dataset(root)
    if len(ds) == 0:
        raise RuntimeError(f"the bundled sample at {root} has no samples")
    sample = next((s for s in ds if s.has_gt), None)
    if sample is None:
        raise RuntimeError(f"the bundled sample at {root} has no ground truth")
    image, gt = ds.load_image(sample), ds.load_gt(sample)
    if gt is None or gt.shape[:2] != image.shape[:2]:
        raise RuntimeError(f"sample {sample.id}: mask {None if gt is None else gt.shape} vs image {image.shape}")
    if int(gt.max()) == 0:
        raise RuntimeError(f"sample {sample.id}: the mask is empty")
    st.dataset, st.image, st.gt = ds, image, gt
    return f"{len(ds)} samples ({ds.format_name}), {len(ds.schema.classes)} classes"


def _part_window(st: _State) -> str:
    from PySide6.QtCore import QCoreApplication, QEventLoop
    from PySide6.QtGui import QGuiApplication

    from segstudio.gui.app import create_main_window, get_app

    app = get_app()
    win = create_main_window(headless=True)
    try:
        if win.session.current is None:
            raise RuntimeError("the main window opened no sample")
        win.resize(1280, 820)
        win.show()
        for _ in range(10):
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        win.canvas.fit()
        QCoreApplication.processEvents()
        platform_name = QGuiApplication.platformName()
        st.qt_platform = platform_name
        if platform_name == "offscreen":
            pixmap = win.grab()
        else:
            # a real display: what the screen shows (window manager, compositing), like a user would see it
            app.processEvents()
            screen = win.screen() or QGuiApplication.primaryScreen()
            pixmap = screen.grabWindow(0)
        image = pixmap.toImage()
        if image.isNull() or image.width() < 200:
            raise RuntimeError(f"the window rendered to an empty image on platform {platform_name!r}")
        # a blank frame (everything one colour) means nothing was drawn
        step = max(1, image.width() // 64)
        colours = {image.pixel(x, y) for x in range(0, image.width(), step) for y in range(0, image.height(), step)}
        if len(colours) < 8:
            raise RuntimeError(f"the window rendered blank on platform {platform_name!r}")
        if st.screenshot is not None:
            st.screenshot.parent.mkdir(parents=True, exist_ok=True)
            if not pixmap.save(str(st.screenshot), "PNG"):
                raise RuntimeError(f"could not write the screenshot {st.screenshot}")
        return f"platform {platform_name}, {image.width()}x{image.height()}"
    finally:
        win.close()
        win.deleteLater()
        QCoreApplication.processEvents()


def _part_model(st: _State) -> str:
    import numpy as np
    import torch
    import torchvision

    from segstudio.core.types import ClassSchema
    from segstudio.engine.config import DataConfig, ModelConfig, TrainConfig
    from segstudio.engine.models import build_model
    from segstudio.engine.preprocess import Preprocessing, prepare_image
    from segstudio.engine.task import resolve_task

    schema = st.dataset.schema
    assert isinstance(schema, ClassSchema)
    st.task = resolve_task(schema)
    st.config = TrainConfig(
        model=ModelConfig(architecture="unet", encoder=ENCODER, encoder_weights=None, in_channels=3),
        data=DataConfig(image_size=IMAGE_SIZE, batch_size=1),
        epochs=1,
        amp=False,
        device=st.device,
    )
    torch.manual_seed(0)
    st.model = build_model(st.config.model, out_channels=st.task.out_channels, mode=st.task.mode).to(st.device)
    pre = Preprocessing(IMAGE_SIZE, 3, "imagenet")
    x = torch.from_numpy(prepare_image(st.image, pre))[None].to(st.device)
    import cv2

    y_np = cv2.resize(st.task.target_from_gt(st.gt).astype(np.int16), (IMAGE_SIZE, IMAGE_SIZE),
                      interpolation=cv2.INTER_NEAREST)
    st.batch = (x, torch.from_numpy(y_np.astype(np.int64))[None].to(st.device))
    st.model.eval()
    with torch.no_grad():
        out = st.model(_normalise(x))
    logits = out[0] if isinstance(out, tuple) else out
    want = (1, st.task.out_channels, IMAGE_SIZE, IMAGE_SIZE)
    if tuple(logits.shape) != want or not bool(torch.isfinite(logits).all()):
        raise RuntimeError(f"forward pass gave {tuple(logits.shape)} (want {want}) or non-finite values")
    # torchvision's compiled operators: a frozen app without its binaries fails here
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    if keep.tolist() != [0, 2]:
        raise RuntimeError(f"torchvision.ops.nms returned {keep.tolist()}, expected [0, 2]")
    params = sum(p.numel() for p in st.model.parameters())
    return f"unet/{ENCODER} {params / 1e6:.1f}M params, {st.task.mode}, torchvision {torchvision.__version__}"


def _normalise(x: Any) -> Any:
    from segstudio.engine.preprocess import normalize_batch

    return normalize_batch(x, "imagenet")


def _part_train(st: _State) -> str:
    import torch

    from segstudio.engine.augment import Augmenter
    from segstudio.engine.losses import build_loss

    # one augmented view through albumentations (its compiled dependencies must load in a frozen app too)
    aug = Augmenter(st.config.augment, st.task, seed=0)
    image_hw = st.batch[0][0].permute(1, 2, 0).cpu().numpy()
    target_hw = st.batch[1][0].cpu().numpy().astype("int16")
    aug_img, aug_tgt = aug(image_hw, target_hw)
    if aug_img.shape[:2] != target_hw.shape or aug_tgt.shape != target_hw.shape:
        raise RuntimeError(f"augmentation changed the shapes: {aug_img.shape} / {aug_tgt.shape}")

    loss_fn = build_loss(st.config.loss, st.task).to(st.device)
    model = st.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    x, y = st.batch
    opt.zero_grad(set_to_none=True)
    loss, _parts = loss_fn(model(_normalise(x)), y)
    if not bool(torch.isfinite(loss)):
        raise RuntimeError(f"the loss is {float(loss.detach())}")
    loss.backward()
    opt.step()
    changed = sum(int(not torch.equal(before[k], v)) for k, v in model.state_dict().items() if k in before)
    if changed == 0:
        raise RuntimeError("one optimiser step changed no weight")
    model.eval()
    return f"loss {float(loss.detach()):.3f}, {changed} tensors updated"


def _part_checkpoint(st: _State) -> str:
    import torch

    from segstudio.engine.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, save_checkpoint

    path = st.workdir / "checkpoint"
    save_checkpoint(path, model=st.model, config=st.config, task=st.task, schema=st.dataset.schema,
                    metrics={"selftest": True})
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise RuntimeError(f"the checkpoint has no {name}")
    ckpt = load_checkpoint(path, device=st.device)
    x = _normalise(st.batch[0])
    with torch.no_grad():
        a, b = st.model(x), ckpt.model(x)
    a = a[0] if isinstance(a, tuple) else a
    b = b[0] if isinstance(b, tuple) else b
    if not torch.allclose(a, b, atol=1e-5):
        raise RuntimeError(f"the reloaded model differs (max |Δ| {float((a - b).abs().max()):.3g})")
    size_mb = (path / WEIGHTS_FILE).stat().st_size / 1e6
    return f"{size_mb:.1f} MB safetensors, outputs identical after reload"


_PART_FUNCS: dict[str, Callable[[_State], str]] = {
    "sample": _part_sample,
    "window": _part_window,
    "model": _part_model,
    "train": _part_train,
    "checkpoint": _part_checkpoint,
}


def _environment(device: str, qt_platform: str) -> str:
    qt = f"qt {qt_platform}, " if qt_platform else ""
    try:
        import torch

        dev = device
        if device.startswith("cuda") and torch.cuda.is_available():
            dev = f"{device} ({torch.cuda.get_device_name(0)})"
        return (f"device {dev}, {qt}torch {torch.__version__} {torch_variant()}, "
                f"{platform.system()} {platform.machine()}")
    except Exception as exc:  # torch itself failed to import: the report still says so
        return f"torch unavailable ({exc})"


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _isolated_user_dirs(root: Path) -> dict[str, str | None]:
    previous: dict[str, str | None] = {}
    for var, sub in (("SEGSTUDIO_CONFIG_DIR", "config"), ("SEGSTUDIO_CACHE_DIR", "cache"),
                     ("SEGSTUDIO_DATA_DIR", "data")):
        previous[var] = os.environ.get(var)
        os.environ[var] = str(root / sub)
    return previous


def run_selftest(*, parts: Sequence[str] = PARTS, screenshot: Path | None = None, device: str = "auto",
                 workdir: Path | None = None) -> SelftestReport:
    """Run ``parts`` (and the parts they need, ``NEEDS``) in ``PARTS`` order and report each.

    ``screenshot``: where the window part writes its PNG. ``device``: ``auto`` (a GPU when there is one), ``cpu``,
    ``cuda``. Never raises for a failing part; the report names it."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        from segstudio.core.errors import UnknownKeyError

        raise UnknownKeyError("selftest part", unknown[0], list(PARTS))
    wanted = set(parts)
    for name in reversed(PARTS):
        if name in wanted and name in NEEDS:
            wanted.add(NEEDS[name])
    results: list[PartResult] = []
    with tempfile.TemporaryDirectory(prefix="segstudio-selftest-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        previous = _isolated_user_dirs(root)
        try:
            try:
                dev = _resolve_device(device)
            except Exception as exc:
                first = next(p for p in PARTS if p in wanted)
                return SelftestReport((PartResult(first, False, 0.0, f"torch does not load: {exc}"),), "")
            st = _State(workdir=root, screenshot=screenshot, device=dev)
            for name in PARTS:
                if name not in wanted:
                    continue
                t0 = time.perf_counter()
                try:
                    detail = _PART_FUNCS[name](st)
                    results.append(PartResult(name, True, time.perf_counter() - t0, detail))
                    log.info("selftest %s ok in %.2fs: %s", name, time.perf_counter() - t0, detail)
                except Exception as exc:
                    log.error("selftest %s failed:\n%s", name, traceback.format_exc())
                    msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    results.append(PartResult(name, False, time.perf_counter() - t0, msg))
                    break
        finally:
            for var, value in previous.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value
        return SelftestReport(tuple(results), _environment(dev, st.qt_platform))
