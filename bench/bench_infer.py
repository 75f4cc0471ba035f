"""Inference-engine speed.

- ``engine.infer_vs_bare_ratio``: whole-dataset inference on Montgomery read from disk (PNG decoding, resizing
  to 256², U-Net resnet34 of the ``lungs-lr`` recipe, softmax, probabilities back to 512², hard masks) by
  ``segstudio.engine.infer.predict`` against a bare loop producing the same masks (decode → prepare → model(x) →
  softmax → resize → argmax, one batch after the other). Figure: bare seconds / engine seconds, median of
  interleaved rounds; both run the network with torch. ≥ 0.95.
- ``engine.infer_onnxruntime_vs_torch``: the same engine run (Montgomery, resize mode) with the onnxruntime backend
  against the torch backend, on the CPU: torch seconds / onnxruntime seconds (> 1: onnxruntime is faster). It
  decides whether onnxruntime should become the CPU default (no budget).
- ``engine.infer_2048_tiled_s``: one 2048² grayscale image through a U-Net resnet34 (the ``bones`` recipe's
  multi-label model) in 512² tiles with 25% overlap, Gaussian blending; seconds (no budget).

Random weights (speed does not depend on them). Environment: ``SEGSTUDIO_BENCH_DEVICE`` (default ``auto``),
``SEGSTUDIO_BENCH_INFER_IMAGES`` (images per round, default 16), ``SEGSTUDIO_BENCH_INFER_ROUNDS`` (default 3).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Figure

PREFIX = "infer"
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGSTUDIO_SHARED", REPO.parent / "shared" / "datasets"))
DEVICE = os.environ.get("SEGSTUDIO_BENCH_DEVICE", "auto")
IMAGES = int(os.environ.get("SEGSTUDIO_BENCH_INFER_IMAGES", "16"))
ROUNDS = int(os.environ.get("SEGSTUDIO_BENCH_INFER_ROUNDS", "3"))
BATCH = 4


def _checkpoint(recipe: str, folder: Path, schema, extra: list[str]) -> Path:
    from segstudio.engine.checkpoint import save_checkpoint
    from segstudio.engine.models import build_model
    from segstudio.engine.recipes import load_recipe
    from segstudio.engine.task import resolve_task

    cfg = load_recipe(recipe).with_overrides(["model.aux_head=false", *extra])
    task = resolve_task(schema, cfg.model.mode)
    model = build_model(cfg.model, out_channels=task.out_channels)
    return save_checkpoint(folder, model=model, config=cfg, task=task, schema=schema)


def _bare_loop(predictor, dataset, samples) -> list[np.ndarray]:
    """What a user writes by hand: the same checkpoint, same preprocessing, same output, no engine."""
    import torch
    import torch.nn.functional as F

    from segstudio.engine.preprocess import normalize_batch, prepare_image

    ckpt = predictor.members[0].checkpoint
    model, pre, lut = ckpt.model, ckpt.preprocessing, np.asarray(ckpt.task.class_ids, np.uint8)
    device = predictor.device
    out = []
    with torch.inference_mode():
        for i in range(0, len(samples), BATCH):
            images = [dataset.load_image(s) for s in samples[i : i + BATCH]]
            x = torch.from_numpy(np.stack([prepare_image(im, pre) for im in images])).to(device)
            probs = model(normalize_batch(x, pre.normalize)).softmax(1)
            for k, im in enumerate(images):
                p = F.interpolate(probs[k : k + 1], size=im.shape[:2], mode="bilinear", align_corners=False)
                out.append(lut[p[0].argmax(0).cpu().numpy()])
    return out


def bench_vs_bare() -> list[Figure]:
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.infer import InferenceOptions, Prediction, Predictor, predict

    data = SHARED / "montgomery_cxr" / "data"
    if not data.is_dir():
        raise FileNotFoundError(f"Montgomery data not found at {data}")
    dataset = open_dataset(data)
    samples = dataset.samples[:IMAGES]
    with tempfile.TemporaryDirectory() as tmp:
        path = _checkpoint("lungs-lr", Path(tmp) / "ckpt", dataset.schema, [])
        # torch on both sides: the figure is the engine's overhead around the same network runtime
        opts = InferenceOptions(batch_size=BATCH, device=DEVICE, uncertainty=False, backend="torch")
        predictor = Predictor.load([path], options=opts)

        def engine() -> list[np.ndarray]:
            return [r.mask for r in predict(dataset, predictor, samples=samples) if isinstance(r, Prediction)]

        a, b = engine(), _bare_loop(predictor, dataset, samples)  # warm-up, and the outputs must be equal
        if len(a) != len(b) or not all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)):
            raise AssertionError("engine and bare loop disagree: the comparison would not be at equal output")
        bare_s, engine_s = [], []
        for _ in range(ROUNDS):  # interleaved: load from other processes hits both sides alike
            t0 = time.perf_counter()
            _bare_loop(predictor, dataset, samples)
            bare_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            engine()
            engine_s.append(time.perf_counter() - t0)
    ratio = statistics.median(bare_s) / statistics.median(engine_s)
    return [
        Figure("engine.infer_vs_bare_ratio", round(ratio, 3), "x", 0.95, "higher"),
        Figure("engine.infer_images_per_s", round(len(samples) / statistics.median(engine_s), 2), "img/s"),
    ]


def bench_2048_tiled() -> list[Figure]:
    from segstudio.core.types import ClassSchema
    from segstudio.engine.infer import InferenceOptions, Predictor

    schema = ClassSchema.from_names([f"bone{i}" for i in range(20)], multilabel=True)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4096, (2048, 2048), dtype=np.uint16)  # a 12-bit X-ray in 16 bits
    with tempfile.TemporaryDirectory() as tmp:
        path = _checkpoint("bones", Path(tmp) / "ckpt", schema, [])
        predictor = Predictor.load([path], options=InferenceOptions(mode="tile", overlap=0.25, batch_size=4,
                                                                    device=DEVICE))
        predictor.probabilities([image[:512, :512]])  # warm-up (allocator, kernels)
        t0 = time.perf_counter()
        probs = predictor.probabilities([image])[0]
        mask = predictor.hard_mask(probs)
        seconds = time.perf_counter() - t0
    assert mask.shape == (2048, 2048) and mask.dtype == np.uint64
    return [Figure("engine.infer_2048_tiled_s", round(seconds, 2), "s")]


def bench_onnxruntime() -> list[Figure]:
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.infer import InferenceOptions, Predictor, predict

    dataset = open_dataset(SHARED / "montgomery_cxr" / "data")
    samples = dataset.samples[:IMAGES]
    with tempfile.TemporaryDirectory() as tmp:
        path = _checkpoint("lungs-lr", Path(tmp) / "ckpt", dataset.schema, [])
        runs = {b: Predictor.load([path], options=InferenceOptions(batch_size=BATCH, device="cpu", uncertainty=False,
                                                                   backend=b))
                for b in ("torch", "onnxruntime")}
        secs: dict[str, list[float]] = {b: [] for b in runs}
        for p in runs.values():
            list(predict(dataset, p, samples=samples[:BATCH]))  # warm-up
        for _ in range(ROUNDS):
            for b, p in runs.items():
                t0 = time.perf_counter()
                list(predict(dataset, p, samples=samples))
                secs[b].append(time.perf_counter() - t0)
    ratio = statistics.median(secs["torch"]) / statistics.median(secs["onnxruntime"])
    return [Figure("engine.infer_onnxruntime_vs_torch", round(ratio, 3), "x")]
