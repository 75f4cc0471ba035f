"""Inference over a dataset or a list of images as a generator of per-sample results (DESIGN rule 5).

```python
predictor = Predictor.load(["runs/lungs/checkpoints/best"], options=InferenceOptions(tta=("hflip",)))
for result in predict(dataset, predictor, cancel=token, workspace=ws):
    if isinstance(result, Prediction):
        result.mask          # (H, W) class ids (semantic) or uint64 bitmask (multi-label)
```

Images are decoded and prepared in a background thread while the network runs on the previous batch (OpenCV
and torch both release the GIL), so the loop runs at the network's pace. The cancel token is checked between
batches. With a workspace, each sample's mask is cached per (sample, checkpoint): a second run over the same
weights and options reads the masks back instead of recomputing them (cached results carry no probabilities or
uncertainty, and requesting probabilities bypasses the cache).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset, Sample
from segstudio.engine.cancel import CancelToken
from segstudio.engine.postprocess import PostContext, apply_steps
from segstudio.engine.predictor import InferenceOptions, Predictor

log = logging.getLogger(__name__)

__all__ = ["InferenceOptions", "Prediction", "PredictionFailed", "Predictor", "checkpoint_id", "items_of", "model_stamp", "predict"]


@dataclass(frozen=True, eq=False, kw_only=True)  # arrays inside: identity, not an ambiguous element-wise ==
class Prediction:
    """One sample's answer. ``mask``: ``(H, W)`` in the schema's convention (class ids, or ``uint64`` bits);
    ``probabilities``: ``(K, H, W) float32`` when asked for; ``uncertainty``: ``(H, W) float32`` in [0, 1];
    ``index`` / ``total``: progress over the run (0-based index)."""

    sample_id: str
    index: int
    total: int
    mask: np.ndarray
    probabilities: np.ndarray | None = None
    uncertainty: np.ndarray | None = None
    cached: bool = False
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class PredictionFailed:
    """A sample that could not be predicted (unreadable image…); the run goes on with the others."""

    sample_id: str
    index: int
    total: int
    message: str


InferenceEvent = Prediction | PredictionFailed

#: ``(sample id, loader of its image)``
Item = tuple[str, Callable[[], np.ndarray]]


def items_of(source: Dataset | Sequence[str | Path], samples: Sequence[Sample | str] | None = None) -> list[Item]:
    """A dataset's samples (all, or ``samples``) or image files → ``(id, loader)`` pairs. File ids are the paths
    as given (POSIX)."""
    if isinstance(source, Dataset):
        chosen = source.samples if samples is None else [source.get(s) if isinstance(s, str) else s for s in samples]
        return [(s.id, _dataset_loader(source, s)) for s in chosen]
    from segstudio.datasets.io import read_image

    return [(Path(p).as_posix(), _file_loader(read_image, Path(p))) for p in source]


def _dataset_loader(ds: Dataset, s: Sample) -> Callable[[], np.ndarray]:
    return lambda: ds.load_image(s)


def _file_loader(read: Callable[[Path], np.ndarray], p: Path) -> Callable[[], np.ndarray]:
    return lambda: read(p)


def model_stamp(predictor: Predictor) -> str:
    """Identity of the weights and of every option that changes the output: cached masks of another stamp are
    stale. Hashes the weight files (a fraction of a second for a ResNet-34 U-Net)."""
    h = hashlib.sha1()
    for p in predictor.checkpoint_paths:
        with open(p / "model.safetensors", "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    h.update(predictor.options.digest().encode())
    h.update(repr(predictor.thresholds).encode())
    return h.hexdigest()[:16]


def checkpoint_id(predictor: Predictor) -> str:
    """The workspace's key for this checkpoint (or ensemble): the resolved checkpoint folder(s)."""
    return "+".join(str(p.resolve()) for p in predictor.checkpoint_paths)


def _prefetch(items: Sequence[Item], batch_size: int, stop: threading.Event) -> Iterator[list[tuple[int, Any]]]:
    """Batches of ``(position, image or SegstudioError)`` decoded in a background thread, two batches ahead."""
    q: queue.Queue[Any] = queue.Queue(maxsize=2)
    end = object()

    def work() -> None:
        try:
            for start in range(0, len(items), batch_size):
                batch: list[tuple[int, Any]] = []
                for k in range(start, min(start + batch_size, len(items))):
                    try:
                        batch.append((k, items[k][1]()))
                    except SegstudioError as e:
                        batch.append((k, e))
                while not stop.is_set():
                    try:
                        q.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as e:  # surfaces in the consumer, never lost in the thread
            q.put(e)
        q.put(end)

    t = threading.Thread(target=work, name="segstudio-infer-loader", daemon=True)
    t.start()
    try:
        while True:
            got = q.get()
            if got is end:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()


def predict(
    source: Dataset | Sequence[str | Path],
    predictor: Predictor,
    *,
    samples: Sequence[Sample | str] | None = None,
    cancel: CancelToken | None = None,
    workspace: Any = None,
) -> Iterator[InferenceEvent]:
    """Yield a :class:`Prediction` (or :class:`PredictionFailed`) per sample, in order.

    ``workspace``: a ``segstudio.workspace.Workspace`` (or anything with its ``predictions`` store) to cache
    masks per (sample, checkpoint) in. ``cancel``: checked between batches; a cancelled run just stops.
    """
    opts = predictor.options
    all_items = items_of(source, samples)
    total = len(all_items)
    store = getattr(workspace, "predictions", None)
    use_cache = store is not None and not opts.probabilities
    cid = checkpoint_id(predictor) if store is not None else ""
    stamp = model_stamp(predictor) if store is not None else ""
    ctx = PostContext(schema=predictor.schema, task=predictor.task, hard_mask=lambda p, t: predictor.hard_mask(p, thresholds=t),
                      thresholds=predictor.thresholds)
    todo: list[tuple[int, Item]] = []
    for k, item in enumerate(all_items):
        hit = _cached(store, item[0], cid, stamp) if use_cache else None
        if hit is not None:
            yield Prediction(sample_id=item[0], index=k, total=total, mask=hit, cached=True)
        else:
            todo.append((k, item))
    if not todo or (cancel is not None and cancel.cancelled):
        return
    stop = threading.Event()
    for batch in _prefetch([it for _, it in todo], opts.batch_size, stop):
        if cancel is not None and cancel.cancelled:
            log.info("inference cancelled after %d of %d samples", batch[0][0], len(todo))
            return
        t0 = time.perf_counter()
        good = [(pos, img) for pos, img in batch if not isinstance(img, SegstudioError)]
        probs = predictor.probabilities([img for _, img in good]) if good else []
        by_pos = {pos: p for (pos, _), p in zip(good, probs, strict=True)}
        per_sample = (time.perf_counter() - t0) / max(1, len(good))
        for pos, img in batch:
            k, (sid, _) = todo[pos]
            if isinstance(img, SegstudioError):
                yield PredictionFailed(sample_id=sid, index=k, total=total, message=str(img))
                continue
            p = by_pos[pos]
            mask = predictor.hard_mask(p)
            if opts.post:
                mask = apply_steps(mask, probs=p, steps=opts.post, ctx=ctx)
            unc = predictor.uncertainty(p) if opts.uncertainty else None
            prob_np = p.float().cpu().numpy() if opts.probabilities else None
            if store is not None and not getattr(workspace, "read_only", False):  # a read-only cache is only read
                store.save(sid, mask, checkpoint_id=cid, model_stamp=stamp)
            yield Prediction(sample_id=sid, index=k, total=total, mask=mask, probabilities=prob_np, uncertainty=unc, seconds=per_sample)


def _cached(store: Any, sample_id: str, cid: str, stamp: str) -> np.ndarray | None:
    entry = store.get(sample_id, checkpoint_id=cid)
    if entry is None or entry.model_stamp != stamp or not Path(entry.path).is_file():
        return None
    try:
        return np.asarray(store.load(entry))
    except SegstudioError as e:  # a damaged cache file only costs a recomputation
        log.warning("cached prediction of %s unreadable (%s); predicting again", sample_id, e)
        return None


def predict_region(predictor: Predictor, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The model's mask of ``image`` inside ``box`` (``y0, x0, y1, x1`` pixels), the crop predicted on its own —
    in resize mode a small object then fills the model's whole input — as a mask of the image's size holding the
    schema's background outside the box ("predict here" in the app)."""
    h, w = image.shape[:2]
    y0, x0 = max(0, int(box[0])), max(0, int(box[1]))
    y1, x1 = min(h, int(box[2])), min(w, int(box[3]))
    if y1 - y0 < 8 or x1 - x0 < 8:
        raise ValueError(f"the box {box} is under 8 px on a side within the {w}x{h} image")
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    probs = predictor.probabilities([crop])[0]
    part = predictor.hard_mask(probs)
    out = np.zeros((h, w), part.dtype)
    if predictor.task.mode != "multilabel":
        out[:] = part.dtype.type(predictor.task.class_ids[0])
    out[y0:y1, x0:x1] = part
    return out
