"""Classic assisted tools (issue 18) on real masks: IoU from each GT's box / scribbles / outline, and the latency of
one interaction at native size (DESIGN §5: < 200 ms).

Every image of ../shared/datasets/ph2 (lesions) and montgomery_cxr/data (each lung on its own) is used at native
size. Prompts are derived from the GT: its bounding box; seeded scribbles (three random strokes inside the GT
eroded by 15 px, the box 15 px out as background); live-wire anchors every 1/12 of the outline; the GT eroded by
10 px for refine edge.

``bench_sam_decoder`` times Click to Segment (SAM): one click's decoder once the image embedding is cached, with
the real vit_b architecture randomly initialised (``assist.sam_decoder_ms``, budget < 50 ms).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.common import Figure
from segstudio.masks.assist import (
    grabcut_box,
    grabcut_scribbles,
    polygon_mask,
    refine_edge,
    region_grow,
    smooth_outline,
)
from segstudio.masks.geometry import BBox
from segstudio.masks.livewire import LiveWire

PREFIX = "assist"

SHARED = Path(os.environ.get("SEGSTUDIO_SHARED", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
#: the band refine edge may move; 10-px erosion needs > 10 to be recoverable at all
REFINE_RADIUS = 12

_times: dict[str, list[float]] = {}


def _timed(tool: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    _times.setdefault(tool, []).append((time.perf_counter() - t0) * 1000.0)
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _objects() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(dataset, image, bool GT of one object) for every PH2 lesion and every Montgomery lung."""
    from segstudio.datasets.registry import open_dataset

    for name, rel, fmt in (("ph2", "ph2", None), ("montgomery", "montgomery_cxr/data", "class-folders")):
        ds = open_dataset(SHARED / rel, format=fmt) if fmt else open_dataset(SHARED / rel)
        for sample in ds:
            image, gt = ds.load_image(sample), ds.load_gt(sample)
            assert gt is not None
            for c in np.unique(gt)[1:]:
                yield name, image, gt == c


def scribbles(gt: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded scribbles from a GT: three strokes inside the GT eroded by 15 px; the box 15 px out, 3 px wide."""
    rng = np.random.default_rng(seed)
    inner = cv2.erode(gt.view(np.uint8), _disk(15)).astype(bool)
    if not inner.any():
        inner = gt
    ys, xs = np.nonzero(inner)
    fg = np.zeros(gt.shape, np.uint8)
    for _ in range(3):
        i, j = rng.integers(0, len(ys), 2)
        cv2.line(fg, (int(xs[i]), int(ys[i])), (int(xs[j]), int(ys[j])), 1, 3)
    fg_b = fg.astype(bool) & inner
    box = BBox.of_nonzero(gt)
    assert box is not None
    b = box.pad(15).clip(gt.shape)
    bg = np.zeros(gt.shape, np.uint8)
    cv2.rectangle(bg, (b.x0, b.y0), (b.x1 - 1, b.y1 - 1), 1, 3)
    return fg_b, bg.astype(bool) & ~gt


def outline_anchors(gt: np.ndarray, n: int = 12) -> list[tuple[int, int]]:
    contours, _ = cv2.findContours(gt.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=len).reshape(-1, 2)
    return [(int(x), int(y)) for x, y in c[np.linspace(0, len(c), n, endpoint=False).astype(int)]]


def bench_tools() -> list[Figure]:
    _times.clear()
    box_iou: dict[str, list[float]] = {"ph2": [], "montgomery": []}
    scr_iou: dict[str, list[float]] = {"ph2": [], "montgomery": []}
    gain: dict[str, list[float]] = {"ph2": [], "montgomery": []}
    lw_iou: list[float] = []
    lw_gain: list[float] = []
    smooth_area: list[float] = []
    for k, (name, image, gt) in enumerate(_objects()):
        box = BBox.of_nonzero(gt)
        assert box is not None
        box_iou[name].append(_iou(_timed("grabcut_box", grabcut_box, image, box), gt))
        fg, bg = scribbles(gt, seed=k)
        scr_iou[name].append(_iou(_timed("grabcut_scribbles", grabcut_scribbles, image, fg, bg), gt))
        eroded = cv2.erode(gt.view(np.uint8), _disk(10)).astype(bool)
        refined = _timed("refine_edge", refine_edge, image, eroded, radius=REFINE_RADIUS)
        gain[name].append(_iou(refined, gt) - _iou(eroded, gt))
        smoothed = _timed("smooth_outline", smooth_outline, gt, radius=3)
        smooth_area.append(abs(int(smoothed.sum()) - int(gt.sum())) / max(1, int(gt.sum())))
        ys, xs = np.nonzero(cv2.erode(gt.view(np.uint8), _disk(5)))
        seed_pt = (int(xs[len(xs) // 2]), int(ys[len(ys) // 2]))
        _timed("region_grow", region_grow, image, seed_pt, tolerance=20)
        if name == "montgomery":
            wire = _timed("livewire_init", LiveWire, image)
            for a in outline_anchors(gt):
                _timed("livewire_anchor", wire.set_anchor, a)
            _timed("livewire_move", wire.path_to, (image.shape[1] // 2, image.shape[0] // 2))
            lw_iou.append(_iou(polygon_mask(wire.close(), gt.shape), gt))
            lw_gain.append(lw_iou[-1] - _iou(eroded, gt))

    def mean(xs: list[float]) -> float:
        return float(np.mean(xs))

    interaction = [t for tool, ts in _times.items() if tool != "livewire_init" for t in ts]
    figs = [
        Figure("assist.grabcut_box_ph2_iou", mean(box_iou["ph2"]), "IoU", 0.85, "higher"),
        Figure("assist.grabcut_box_montgomery_iou", mean(box_iou["montgomery"]), "IoU"),
        Figure("assist.grabcut_scribbles_ph2_iou", mean(scr_iou["ph2"]), "IoU"),
        Figure("assist.grabcut_scribbles_montgomery_iou", mean(scr_iou["montgomery"]), "IoU"),
        Figure("assist.refine_edge_gain_iou", mean(gain["ph2"] + gain["montgomery"]), "IoU", 0.05, "higher"),
        Figure("assist.refine_edge_gain_ph2_iou", mean(gain["ph2"]), "IoU"),
        Figure("assist.refine_edge_gain_montgomery_iou", mean(gain["montgomery"]), "IoU"),
        Figure("assist.livewire_iou", mean(lw_iou), "IoU"),
        Figure("assist.livewire_gain_iou", mean(lw_gain), "IoU", 0.05, "higher"),
        Figure("assist.smooth_outline_area_change", 100.0 * mean(smooth_area), "%"),
        Figure("assist.interaction_max_ms", max(interaction), "ms", 200.0, "lower"),
    ]
    for tool in ("grabcut_box", "grabcut_scribbles", "refine_edge", "region_grow", "smooth_outline",
                 "livewire_anchor", "livewire_move", "livewire_init"):
        figs.append(Figure(f"assist.{tool}_ms", max(_times[tool]), "ms"))
    return figs


def bench_sam_decoder() -> list[Figure]:
    """Click to Segment (SAM): the real vit_b architecture, randomly initialised (full size: the prompt encoder and
    mask decoder are the same for every SAM size), its embedding computed once for a real PH2 image, then the
    latency of one click once the embedding is cached — the decoder and the up-scaling to a full-size mask
    (``PromptableModel.decode``) — over 20 clicks: single points (best of three masks), refining clicks with the
    last logits fed back, boxes. The app's CPU decoder (onnxruntime) is the figure; torch's is reported beside it.
    Its masks mean nothing (random weights): quality is not claimed."""
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.promptable import SamCheckpointModel
    from segstudio.engine.promptable_export import build_random_sam

    ds = open_dataset(SHARED / "ph2")
    sample = ds.samples[0]
    image, gt = ds.load_image(sample), ds.load_gt(sample)
    assert gt is not None
    lesion = gt == np.unique(gt)[1]
    box = BBox.of_nonzero(lesion)
    assert box is not None
    rng = np.random.default_rng(0)
    ys, xs = np.nonzero(lesion)
    out_ys, out_xs = np.nonzero(~lesion)

    def on() -> tuple[float, float, bool]:
        j = rng.integers(0, len(xs))
        return float(xs[j]), float(ys[j]), True

    def off() -> tuple[float, float, bool]:
        j = rng.integers(0, len(out_xs))
        return float(out_xs[j]), float(out_ys[j]), False

    sam = build_random_sam("vit_b", seed=0)
    figs: list[Figure] = []
    t0 = time.perf_counter()
    model = SamCheckpointModel(sam, Path("random-vit_b.pth"), name="SAM vit_b (random)")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = model.embed(image)
    embed_s = time.perf_counter() - t0
    for backend, m in (("onnxruntime", model), ("torch", SamCheckpointModel(sam, Path("random-vit_b.pth"),
                                                                            name="SAM vit_b (random)",
                                                                            decoder_backend="torch"))):
        times: list[float] = []
        cpu: list[float] = []
        first = 0.0
        for k in range(21):  # one object per 4 clicks: a point, a refining point, a box, a box and a point
            if k % 4 == 0:
                points: list[tuple[float, float, bool]] = [on()]
                bx: tuple[float, float, float, float] | None = None
                low = None
            elif k % 4 == 1:
                points.append(off())
            elif k % 4 == 2:
                points, bx = [], (float(box.x0), float(box.y0), float(box.x1), float(box.y1))
            else:
                points = [on()]
            t, c = time.perf_counter(), time.process_time()
            res = m.decode(emb, points=points, box=bx, previous_low_res_logits=low)
            ms = (time.perf_counter() - t) * 1000.0
            cpu_ms = (time.process_time() - c) * 1000.0
            low = res.low_res_logits
            assert res.mask.shape == lesion.shape
            if k == 0:
                first = ms  # the session's first run allocates its buffers
            else:
                times.append(ms)
                cpu.append(cpu_ms)
        if backend == "onnxruntime":
            # the CPU time of a click (all threads) does not grow with other jobs on the cores, as the wall time does
            figs += [Figure("assist.sam_decoder_ms", float(np.median(times)), "ms", 50.0, "lower"),
                     Figure("assist.sam_decoder_max_ms", max(times), "ms"),
                     Figure("assist.sam_decoder_first_ms", first, "ms"),
                     Figure("assist.sam_decoder_cpu_ms", float(np.median(cpu)), "ms")]
        else:
            figs += [Figure("assist.sam_decoder_torch_ms", float(np.median(times)), "ms"),
                     Figure("assist.sam_decoder_torch_max_ms", max(times), "ms")]
    figs += [Figure("assist.sam_embed_vit_b_s", embed_s, "s"), Figure("assist.sam_load_s", load_s, "s"),
             Figure("assist.sam_load_average", os.getloadavg()[0], "")]
    return figs
