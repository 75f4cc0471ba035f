"""Export: the cleaned dataset leaves segstudio in the layout the next tool trains on (issue 14, DESIGN §2).

What an export takes, per sample (:func:`choose_mask`): the GT with the latest correction applied, or the mask
version chosen (``"original"``: the dataset's GT; ``N``: each sample's newest version numbered ``N`` or lower);
``predictions="accepted"`` also takes versions saved by accepting a prediction (``"none"`` skips them and uses
the newest human version below, else the GT); ``"unreviewed"`` does that and fills images with neither GT nor a
correction with the model's prediction (the workspace's current checkpoint, else the newest other one). Filters:
review status, split, classes (others become background, or are dropped bits in a multi-label mask); classes are
renamed and merged (equal new names merge) through one :class:`ClassMapping`.

Beside the data the export writes ``export.json`` (the manifest: source, workspace, writer and options, per image
what was used, the review decision and reviewer, pixel counts, the files written; ``files`` maps every file to its
SHA-256) and ``changes.csv`` (per image and class with a change, pixels added and removed against the original GT,
both in the export's classes).

Safety: the destination is new or empty and never the source dataset or inside it; the writer writes into a temp
folder beside the destination (``.<name>.<pid>.<hex>.tmp``, swept like any stale temp when its writer died), which
is renamed into place once everything is written. A cancel or a failure removes the temp folder: the destination
is then as it was.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from segstudio import __version__
from segstudio.core.atomic import atomic_write_bytes, deferred_durability, fsync_dir, sync_tree, temp_path_for
from segstudio.core.errors import SegstudioError, UnknownKeyError
from segstudio.core.types import BACKGROUND_NAMES, ClassInfo, ClassSchema
from segstudio.datasets.base import Dataset, Sample
from segstudio.datasets.writing import DatasetExportError, ExportItem, get_writer, writer_names
from segstudio.workspace.model_predictions import ModelPredictions
from segstudio.workspace.records import MaskSource, MaskVersion, PredictionEntry, ReviewStatus
from segstudio.workspace.workspace import Workspace

log = logging.getLogger(__name__)

PREDICTION_MODES = ("none", "accepted", "unreviewed")
MANIFEST_NAME = "export.json"
REPORT_NAME = "changes.csv"
MANIFEST_FORMAT = 1


class CancelLike(Protocol):
    """A cancel token (``segstudio.engine.cancel.CancelToken`` or anything with ``cancelled``)."""

    @property
    def cancelled(self) -> bool: ...


@dataclass(frozen=True)
class ExportRequest:
    dataset: Dataset
    workspace: Workspace | None
    to: str
    out: Path
    statuses: frozenset[str] | None = None
    splits: frozenset[str] | None = None
    classes: tuple[str, ...] | None = None
    rename: Mapping[str, str] = field(default_factory=dict)
    version: str | int = "latest"
    predictions: str = "none"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MaskChoice:
    """Where one sample's exported mask comes from. ``kind``: ``gt``, ``correction`` (any saved version a person
    made: painted, reverted, imported), ``accepted_prediction``, ``model_prediction`` or ``none`` (no mask)."""

    kind: str
    version: MaskVersion | None = None
    prediction: PredictionEntry | None = None
    stale: bool = False

    def describe(self) -> str:
        if self.version is not None:
            what = "accepted prediction" if self.kind == "accepted_prediction" else "correction"
            return f"{what} v{self.version.version}"
        if self.prediction is not None:
            return f"model prediction ({self.prediction.checkpoint_id})"
        return {"gt": "GT", "none": "no mask"}.get(self.kind, self.kind)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.kind, "used": self.describe(), "version": 0}
        if self.version is not None:
            d.update(version=self.version.version, mask_source=self.version.source.value,
                     author=self.version.author, mask_sha256=self.version.sha256)  # fmt: skip
        if self.prediction is not None:
            d.update(version=None, checkpoint=self.prediction.checkpoint_id,
                     model_stamp=self.prediction.model_stamp, stale=self.stale)  # fmt: skip
        if self.kind == "none":
            d["version"] = None
        return d


@dataclass(frozen=True)
class PlannedItem:
    sample: Sample
    choice: MaskChoice
    status: str = ReviewStatus.UNREVIEWED.value
    reviewer: str = ""


@dataclass(frozen=True)
class ClassMapping:
    """Dataset classes -> export classes. ``lut`` (semantic) maps every pixel value (values with no class, the
    ignore index among them, map to themselves); ``bits`` (multi-label) lists ``(old bit, new bit)``. Both
    ``None``: the masks are unchanged (only names may differ)."""

    source: ClassSchema
    schema: ClassSchema
    names: Mapping[str, str | None]
    lut: np.ndarray | None = None
    bits: tuple[tuple[int, int], ...] | None = None

    @property
    def identity(self) -> bool:
        return self.lut is None and self.bits is None

    def apply(self, mask: np.ndarray) -> np.ndarray:
        """A ``(H, W)`` mask of the dataset's schema in the export schema (``schema.mask_dtype()``)."""
        if self.source.multilabel:
            m = mask.astype(np.uint64, copy=False)
            if self.bits is None:
                return m
            out = np.zeros(m.shape, np.uint64)
            for old, new in self.bits:
                out |= ((m >> np.uint64(old)) & np.uint64(1)) << np.uint64(new)
            return out
        dtype = self.schema.mask_dtype()
        if self.lut is None:
            return mask.astype(dtype, copy=False)
        m = mask if mask.dtype in (np.uint8, np.uint16) else mask.astype(np.uint16)
        return self.lut[: 1 << (8 * m.dtype.itemsize)][m].astype(dtype, copy=False)


def background_class(schema: ClassSchema) -> ClassInfo | None:
    """The semantic class that is "nothing here" (by name: CamVid's class 0 is Sky, so never just id 0)."""
    if schema.multilabel:
        return None
    return next((c for c in schema if c.name.strip().lower() in BACKGROUND_NAMES), None)


def class_mapping(schema: ClassSchema, *, classes: tuple[str, ...] | None = None,
                  rename: Mapping[str, str] | None = None) -> ClassMapping:  # fmt: skip
    """Keep ``classes`` (names; ``None``: all; a semantic background class is always kept) and rename by
    ``rename`` (old name -> new name; classes given one new name merge into the first of them). Ids stay as they
    are when nothing is dropped or merged; otherwise the kept classes are numbered 0.. (bits 0..) in their order."""
    rename = {str(k): str(v) for k, v in (rename or {}).items()}
    names = list(schema.names)
    for n in [*(classes or ()), *rename]:
        if n not in names:
            raise UnknownKeyError("class", n, names)
    for old, new in rename.items():
        if not str(new).strip():
            raise DatasetExportError(f"The new name of class {old!r} is empty.", fix="Give --rename OLD=NEW a name.")
    bg = background_class(schema)
    keep = set(names) if classes is None else set(classes) | ({bg.name} if bg is not None else set())
    target = {c.name: (rename.get(c.name, c.name) if c.name in keep else None) for c in schema}
    kept = [c for c in schema if target[c.name] is not None]
    order: list[str] = []
    first: dict[str, ClassInfo] = {}
    for c in kept:
        t = str(target[c.name])
        if t not in first:
            first[t] = c
            order.append(t)
    if not order:
        raise DatasetExportError("No class is left to export.", fix="Keep at least one class (--classes).")
    same_ids = len(kept) == len(schema) and len(order) == len(kept)
    if same_ids:
        infos = tuple(ClassInfo(c.id, str(target[c.name]), c.colour, c.ignore) for c in schema)
        out = ClassSchema(infos, multilabel=schema.multilabel, ignore_index=schema.ignore_index)
        return ClassMapping(schema, out, target)
    new_id = {t: i for i, t in enumerate(order)}
    infos = tuple(ClassInfo(new_id[t], t, first[t].colour, first[t].ignore) for t in order)
    out = ClassSchema(infos, multilabel=schema.multilabel, ignore_index=schema.ignore_index)
    if schema.multilabel:
        bits = tuple((c.id, new_id[str(target[c.name])]) for c in kept)
        return ClassMapping(schema, out, target, bits=bits)
    if bg is not None:
        dropped_to = new_id[str(target[bg.name])]
    elif schema.ignore_index is not None:
        dropped_to = schema.ignore_index
    else:
        raise DatasetExportError(
            "The dataset has no class named background (and no ignore index) for the classes left out to become.",
            fix="Keep every class, or rename one of the kept classes to background with --rename NAME=background.",
        )
    size = 1 << (8 * schema.mask_dtype().itemsize)
    lut = np.arange(size, dtype=np.int64)
    for c in schema:
        goes_to = target[c.name]
        lut[c.id] = new_id[goes_to] if goes_to is not None else dropped_to
    return ClassMapping(schema, out, target, lut=lut.astype(np.uint16))


# --- what each sample exports -----------------------------------------------------------------------------------
def _pick_version(history: list[MaskVersion], *, version: str | int, accepted: bool) -> MaskVersion | None:
    cands = history if version == "latest" else [v for v in history if v.version <= int(version)]
    for v in reversed(cands):
        if accepted or v.source != MaskSource.ACCEPTED_PREDICTION:
            return v
    return None


def _choose(sample: Sample, history: list[MaskVersion], *, version: str | int, predictions: str,
            model: ModelPredictions | None) -> MaskChoice:  # fmt: skip
    """What ``sample`` exports (see the module docstring)."""
    if version != "original":
        v = _pick_version(history, version=version, accepted=predictions != "none")
        if v is not None:
            kind = "accepted_prediction" if v.source == MaskSource.ACCEPTED_PREDICTION else "correction"
            return MaskChoice(kind, version=v)
    if sample.has_gt:
        return MaskChoice("gt")
    if predictions == "unreviewed" and model is not None:
        e = model.entry(sample)
        if e is not None:
            return MaskChoice("model_prediction", prediction=e, stale=model.is_stale(sample))
    return MaskChoice("none")


def _check_version(version: str | int) -> str | int:
    if isinstance(version, int) and not isinstance(version, bool) and version >= 0:
        return version if version > 0 else "original"
    if isinstance(version, str):
        v = version.strip().lower()
        if v in ("latest", "original"):
            return v
        if v.isdigit():
            return _check_version(int(v))
    raise DatasetExportError(f"Unknown mask version {version!r}.",
                             fix="Use latest, original, or a version number (1, 2, ...).")  # fmt: skip


def choose_masks(dataset: Dataset, workspace: Workspace | None, samples: list[Sample], *, version: str | int,
                 predictions: str) -> list[MaskChoice]:  # fmt: skip
    """What each of ``samples`` exports (in order), reading the workspace's versions and, for
    ``predictions="unreviewed"``, its model predictions."""
    version = _check_version(version)
    if predictions not in PREDICTION_MODES:
        raise UnknownKeyError("predictions mode", predictions, list(PREDICTION_MODES))
    if workspace is None:
        return [MaskChoice("gt") if s.has_gt else MaskChoice("none") for s in samples]
    model = None
    if predictions == "unreviewed":
        ckpt = workspace.settings.current_checkpoint or None
        model = ModelPredictions(workspace.predictions, dataset, checkpoint=ckpt)
    latest = workspace.versions.latest_all() if version != "original" else {}
    out = []
    for s in samples:
        v = latest.get(s.id)
        if v is None:
            history: list[MaskVersion] = []
        elif version == "latest" and (predictions != "none" or v.source != MaskSource.ACCEPTED_PREDICTION):
            history = [v]  # the usual case: one query for the whole dataset
        else:
            history = workspace.versions.versions(s.id)
        out.append(_choose(s, history, version=version, predictions=predictions, model=model))
    return out


def load_choice(dataset: Dataset, workspace: Workspace | None, sample: Sample, choice: MaskChoice) -> np.ndarray | None:
    """The mask of a choice in the dataset's schema (``schema.mask_dtype()``), or ``None`` for ``none``."""
    if choice.kind == "gt":
        return dataset.load_gt(sample)
    if choice.kind == "none":
        return None
    assert workspace is not None
    if choice.version is not None:
        m = workspace.versions.load(choice.version)
    else:
        assert choice.prediction is not None
        m = workspace.predictions.load(choice.prediction)
    if m.ndim != 2:
        raise SegstudioError(f"The saved mask of {sample.id} is not a 2-D mask ({m.shape}).",
                             path=choice.version.path if choice.version else None,
                             fix="Open the sample in the app and save it again.")  # fmt: skip
    return m.astype(dataset.schema.mask_dtype(), copy=False)


# --- plan -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportPlan:
    """A checked request: the writer, the export schema, the items in order and what each takes."""

    request: ExportRequest
    out: Path
    mapping: ClassMapping
    items: tuple[PlannedItem, ...]

    @property
    def schema(self) -> ClassSchema:
        return self.mapping.schema

    def counts(self) -> dict[str, int]:
        """Images, and images per source (``gt``, ``correction``, ...), for a summary before starting."""
        out: dict[str, int] = {"images": len(self.items)}
        for it in self.items:
            out[it.choice.kind] = out.get(it.choice.kind, 0) + 1
        return out


def dataset_folder(dataset: Dataset) -> Path:
    root = Path(dataset.root)
    return root if root.is_dir() else root.parent


def check_destination(out: Path, *, source: Path) -> Path:
    """``out`` resolved, refused when it is a file, a non-empty folder, or the source dataset or inside it."""
    dest = Path(out).expanduser().resolve()
    src = source.expanduser().resolve()
    if dest == src or dest.is_relative_to(src):
        raise DatasetExportError("An export never writes into the dataset it exports.", path=dest,
                                 fix="Choose a new folder outside the dataset folder.")  # fmt: skip
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir():
            raise DatasetExportError("The export destination is a file.", path=dest,
                                     fix="Choose a new or empty folder.")  # fmt: skip
        try:
            busy = next(os.scandir(dest), None) is not None
        except OSError as e:
            raise DatasetExportError(f"The export destination cannot be read ({e.strerror}).", path=dest,
                                     fix="Choose a new or empty folder you can write to.") from e  # fmt: skip
        if busy:
            raise DatasetExportError("The export destination is not empty; an export never mixes with other files.",
                                     path=dest, fix="Choose a new or empty folder.")  # fmt: skip
    return dest


def _check_names(kind: str, given: frozenset[str] | None, valid: list[str]) -> None:
    for g in sorted(given or ()):
        if g not in valid:
            raise UnknownKeyError(kind, g, valid)


def plan_export(req: ExportRequest) -> ExportPlan:
    """Check ``req`` (destination, writer, classes, filters) and list what each image exports. Raises our errors
    (``DatasetExportError``, ``UnknownKeyError``) with the fix; writes nothing."""
    ds = req.dataset
    writer = get_writer(req.to)
    out = check_destination(req.out, source=dataset_folder(ds))
    if req.workspace is not None:
        ws_dir = req.workspace.folder.resolve()
        if out == ws_dir or out.is_relative_to(ws_dir):
            raise DatasetExportError("An export never writes into the workspace.", path=out,
                                     fix="Choose a new folder outside the workspace folder.")  # fmt: skip
    mapping = class_mapping(ds.schema, classes=req.classes, rename=req.rename)
    if mapping.schema.multilabel and not writer.multilabel:
        able = [n for n in writer_names() if _multilabel_writer(n)]
        raise DatasetExportError(
            f"The {req.to} format holds one class per pixel, but this dataset is multi-label (classes overlap).",
            path=ds.root,
            fix="Export to a format that keeps overlapping classes" + (f": {', '.join(able)}." if able else "."),
        )
    _check_names("review status", req.statuses, [s.value for s in ReviewStatus])
    splits = sorted({s.split or "unassigned" for s in ds})
    _check_names("split", req.splits, splits)
    samples = [s for s in ds if req.splits is None or (s.split or "unassigned") in req.splits]
    states = req.workspace.reviews.all() if req.workspace is not None else {}
    if req.statuses is not None:
        samples = [s for s in samples if _status(states, s.id) in req.statuses]
    if not samples:
        raise DatasetExportError("No image matches the filters; nothing would be exported.", path=ds.root,
                                 fix="Widen the status or split filter.")  # fmt: skip
    choices = choose_masks(ds, req.workspace, samples, version=req.version, predictions=req.predictions)
    items = tuple(
        PlannedItem(s, c, _status(states, s.id), states[s.id].reviewer if s.id in states else "")
        for s, c in zip(samples, choices, strict=True)
    )
    return ExportPlan(req, out, mapping, items)


def _status(states: Mapping[str, Any], sid: str) -> str:
    st = states.get(sid)
    return st.status.value if st is not None else ReviewStatus.UNREVIEWED.value


def _multilabel_writer(name: str) -> bool:
    try:
        return bool(get_writer(name).multilabel)
    except (ImportError, AttributeError, SegstudioError):
        return False


# --- events -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportStarted:
    total: int
    out: Path


@dataclass(frozen=True)
class ExportProgress:
    done: int
    total: int
    eta_s: float | None
    path: Path | None = None


@dataclass(frozen=True)
class ExportFinished:
    out: Path
    manifest: Path
    report: Path
    counts: Mapping[str, int]


@dataclass(frozen=True)
class ExportCancelled:
    """The export stopped on request; nothing was left at the destination."""

    done: int
    total: int
    out: Path


ExportEvent = ExportStarted | ExportProgress | ExportFinished | ExportCancelled


# --- run --------------------------------------------------------------------------------------------------------
def change_counts(old: np.ndarray | None, new: np.ndarray | None, schema: ClassSchema) -> dict[str, tuple[int, int]]:
    """``class name -> (pixels added, pixels removed)`` going from ``old`` to ``new`` (either may be ``None``: no
    mask, i.e. all background), for classes with a change. Semantic values with no class are named by value."""
    if new is None and old is None:
        return {}
    ref = new if new is not None else old
    assert ref is not None
    if old is None:
        old = np.zeros_like(ref)
    if new is None:
        new = np.zeros_like(ref)
    out: dict[str, tuple[int, int]] = {}
    if schema.multilabel:
        o, n = old.astype(np.uint64, copy=False), new.astype(np.uint64, copy=False)
        diff = o ^ n
        idx = np.flatnonzero(diff)
        if not idx.size:
            return {}
        d, nn = diff.ravel()[idx], n.ravel()[idx]
        for c in schema:
            b = np.uint64(1) << np.uint64(c.id)
            changed = (d & b) != 0
            added = int(np.count_nonzero(changed & ((nn & b) != 0)))
            removed = int(np.count_nonzero(changed)) - added
            if added or removed:
                out[c.name] = (added, removed)
        return out
    changed = old != new
    if not changed.any():
        return {}
    o, n = old[changed].astype(np.int64), new[changed].astype(np.int64)
    size = int(max(o.max(), n.max())) + 1
    add, rem = np.bincount(n, minlength=size), np.bincount(o, minlength=size)
    for v in np.flatnonzero(add + rem):
        name = _value_name(schema, int(v))
        out[name] = (int(add[v]), int(rem[v]))
    return out


def class_pixels(mask: np.ndarray | None, schema: ClassSchema) -> dict[str, int]:
    """``class name -> pixels`` of one mask (classes present only)."""
    if mask is None:
        return {}
    if schema.multilabel:
        m = mask.astype(np.uint64, copy=False)
        out = {}
        for c in schema:
            k = int(np.count_nonzero(m & (np.uint64(1) << np.uint64(c.id))))
            if k:
                out[c.name] = k
        return out
    if mask.dtype == np.uint8:
        import cv2

        # a histogram: several times faster than bincount on a 1024² mask (every exported mask is counted)
        hist = cv2.calcHist([np.ascontiguousarray(mask)], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    else:
        hist = np.bincount(mask.ravel().astype(np.intp, copy=False))
    return {_value_name(schema, int(v)): int(hist[v]) for v in np.flatnonzero(hist)}


def _value_name(schema: ClassSchema, v: int) -> str:
    if schema.has_id(v):
        return schema.by_id(v).name
    return "(ignore)" if v == schema.ignore_index else f"(value {v})"


class _Collector:
    """Loads each item's mask (and its figures: pixel counts, changes against the GT) a few items ahead of the
    writer, on two threads (decoding and numpy release the GIL), and keeps the figures for the manifest. Bounded:
    at most ``ahead`` masks wait in memory."""

    def __init__(self, plan: ExportPlan, *, ahead: int = 4, threads: int = 2) -> None:
        self.plan = plan
        self.lock = threading.Lock()
        self.pixels: dict[str, dict[str, int]] = {}
        self.changes: dict[str, dict[str, tuple[int, int]]] = {}
        self.gt_problem: dict[str, str] = {}
        self._ahead = ahead
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="segstudio-export")
        self._futures: dict[int, Future[np.ndarray | None]] = {}
        self._next = 0

    def close(self) -> None:
        with self.lock:
            for f in self._futures.values():
                f.cancel()
            self._futures.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def loader(self, index: int) -> Callable[[], np.ndarray | None]:
        def load() -> np.ndarray | None:
            with self.lock:
                stop = min(len(self.plan.items), index + self._ahead + 1)
                while self._next < stop:
                    k = self._next
                    self._futures[k] = self._pool.submit(self._load, self.plan.items[k])
                    self._next += 1
                fut = self._futures.pop(index, None)
            return fut.result() if fut is not None else self._load(self.plan.items[index])

        return load

    def _load(self, it: PlannedItem) -> np.ndarray | None:
        req, mapping = self.plan.request, self.plan.mapping
        raw = load_choice(req.dataset, req.workspace, it.sample, it.choice)
        mask = mapping.apply(raw) if raw is not None else None
        changes: dict[str, tuple[int, int]] = {}
        if it.choice.kind != "gt":
            try:
                gt = req.dataset.load_gt(it.sample) if it.sample.has_gt else None
                changes = change_counts(mapping.apply(gt) if gt is not None else None, mask, mapping.schema)
            except SegstudioError as e:
                log.warning("export: the original GT of %s cannot be compared: %s", it.sample.id, e)
                with self.lock:
                    self.gt_problem[it.sample.id] = e.message
        pixels = class_pixels(mask, mapping.schema)
        with self.lock:
            self.pixels[it.sample.id] = pixels
            self.changes[it.sample.id] = changes
        return mask


def export_items(plan: ExportPlan, collector: _Collector) -> list[ExportItem]:
    ds = plan.request.dataset
    col = collector

    def image_loader(s: Sample) -> Callable[[], np.ndarray]:
        return lambda: ds.load_image(s)

    return [
        ExportItem(
            sample_id=it.sample.id,
            image_path=it.sample.image,
            load_image=image_loader(it.sample),
            load_mask=col.loader(i),
            split=it.sample.split,
        )
        for i, it in enumerate(plan.items)
    ]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _remove_tree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("could not remove the unfinished export %s: %s (it is swept on a later export)", path, e)


def run_export(req: ExportRequest | ExportPlan, *, cancel: CancelLike | None = None) -> Generator[ExportEvent, None, None]:
    """Export as planned (a request is planned first). Yields :class:`ExportStarted`, one
    :class:`ExportProgress` per image, then :class:`ExportFinished`, or :class:`ExportCancelled` when ``cancel``
    was set (checked between images). A cancel or an error leaves the destination as it was."""
    plan = req if isinstance(req, ExportPlan) else plan_export(req)
    request, out = plan.request, plan.out
    writer = get_writer(request.to)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    tmp.mkdir()
    total = len(plan.items)
    col = _Collector(plan)
    written: dict[int, Path] = {}
    finished = False
    # Files go into a staging folder that is published whole at the end, so each need not be fsync'd on its own:
    # one flush (sync_tree) before the rename makes the export durable at a fraction of the cost.
    deferred = deferred_durability()
    deferred.__enter__()
    try:
        yield ExportStarted(total, out)
        t0 = time.monotonic()
        done = 0
        gen = writer.write(export_items(plan, col), schema=plan.schema, out=tmp, options=dict(request.options))
        try:
            for ev in gen:
                done = min(max(done, ev.done), total)
                if ev.path is not None:
                    written[done - 1] = Path(ev.path)
                elapsed = time.monotonic() - t0
                eta = elapsed / done * (total - done) if done else None
                yield ExportProgress(done, total, eta, _final_path(ev.path, tmp, out))
                if cancel is not None and cancel.cancelled:
                    yield ExportCancelled(done, total, out)
                    return
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                close()
        if cancel is not None and cancel.cancelled:
            yield ExportCancelled(done, total, out)
            return
        counts = _write_sidecars(plan, col, tmp, written)
        sync_tree(tmp)
        _move_into_place(tmp, out)
        finished = True
        yield ExportFinished(out, out / MANIFEST_NAME, out / REPORT_NAME, counts)
    finally:
        deferred.__exit__(None, None, None)
        col.close()
        if not finished:
            _remove_tree(tmp)


def _final_path(path: Path | None, tmp: Path, out: Path) -> Path | None:
    """A file in the temp folder named by where it will be once the export is in place."""
    if path is None:
        return None
    try:
        return out / Path(path).relative_to(tmp)
    except ValueError:
        return Path(path)


def _move_into_place(tmp: Path, out: Path) -> None:
    try:
        if out.is_dir():
            out.rmdir()  # empty (checked when planned); a file appearing since makes this fail, and we stop
        os.replace(tmp, out)
    except OSError as e:
        raise DatasetExportError(f"The finished export cannot be moved into place ({e.strerror}).", path=out,
                                 fix="Make sure the destination is still empty and writable, then export again.") from e  # fmt: skip
    fsync_dir(out.parent)


def _write_sidecars(plan: ExportPlan, col: _Collector, tmp: Path, written: dict[int, Path]) -> dict[str, int]:
    """``export.json`` and ``changes.csv`` in the temp folder; returns the counts."""
    req = plan.request
    files = {p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    rows = io.StringIO()
    w = csv.writer(rows, lineterminator="\n")
    w.writerow(["sample_id", "class", "added", "removed", "source"])
    images = []
    counts: dict[str, int] = {"images": len(plan.items)}
    changed = 0
    for i, it in enumerate(plan.items):
        sid = it.sample.id
        ch = col.changes.get(sid, {})
        for name, (a, r) in ch.items():
            w.writerow([sid, name, a, r, it.choice.describe()])
        changed += bool(ch)
        counts[it.choice.kind] = counts.get(it.choice.kind, 0) + 1
        entry: dict[str, Any] = {"sample_id": sid, "split": it.sample.split, **it.choice.to_dict(),
                                 "review": it.status, "reviewer": it.reviewer,
                                 "pixels": col.pixels.get(sid), "changed": bool(ch)}  # fmt: skip
        if i in written:
            try:
                entry["file"] = written[i].relative_to(tmp).as_posix()
            except ValueError:
                pass
        if sid in col.gt_problem:
            entry["gt_problem"] = col.gt_problem[sid]
        images.append(entry)
    counts["changed"] = changed
    counts["files"] = len(files) + 2
    ws = req.workspace
    manifest = {
        "format": MANIFEST_FORMAT,
        "segstudio": __version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": {"root": str(Path(req.dataset.root).resolve()), "format": req.dataset.format_name,
                   "samples": len(req.dataset)},  # fmt: skip
        "workspace": str(ws.folder) if ws is not None else None,
        "writer": {"name": req.to, "options": _jsonable(dict(req.options))},
        "selection": {"statuses": sorted(req.statuses) if req.statuses is not None else None,
                      "splits": sorted(req.splits) if req.splits is not None else None,
                      "classes": list(req.classes) if req.classes is not None else None,
                      "rename": dict(req.rename), "version": req.version, "predictions": req.predictions},  # fmt: skip
        "schema": plan.schema.to_dict(),
        "class_map": {k: v for k, v in plan.mapping.names.items()},
        "counts": counts,
        "images": images,
        "files": files,
    }
    atomic_write_bytes(tmp / REPORT_NAME, rows.getvalue().encode("utf-8"))
    atomic_write_bytes(tmp / MANIFEST_NAME, (json.dumps(manifest, indent=1, ensure_ascii=True) + "\n").encode("ascii"))
    return counts


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))
