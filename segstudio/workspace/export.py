"""Export: the cleaned dataset leaves segstudio in the layout the next tool trains on (issue 14, DESIGN §2).

What each image exports (the mask chosen, the classes kept, renamed and merged) is decided in
:mod:`segstudio.workspace.export_masks`; its public names are re-exported here. :func:`plan_export` checks a
request and applies the filters (review status, split); :func:`run_export` writes the plan.

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
from typing import Any

import numpy as np

from segstudio import __version__
from segstudio.core.atomic import atomic_write_bytes, deferred_durability, fsync_dir, sync_tree, temp_path_for
from segstudio.core.errors import SegstudioError, UnknownKeyError
from segstudio.core.types import ClassSchema
from segstudio.datasets.base import Dataset, Sample
from segstudio.datasets.writing import DatasetExportError, ExportItem, get_writer, writer_names
from segstudio.workspace.export_masks import (
    PREDICTION_MODES,
    CancelLike,
    ClassMapping,
    MaskChoice,
    background_class,
    change_counts,
    choose_masks,
    class_mapping,
    class_pixels,
    load_choice,
)
from segstudio.workspace.records import ReviewStatus
from segstudio.workspace.workspace import Workspace

log = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_NAME",
    "PREDICTION_MODES",
    "REPORT_NAME",
    "CancelLike",
    "ClassMapping",
    "ExportCancelled",
    "ExportEvent",
    "ExportFinished",
    "ExportPlan",
    "ExportProgress",
    "ExportRequest",
    "ExportStarted",
    "MaskChoice",
    "PlannedItem",
    "background_class",
    "change_counts",
    "check_destination",
    "choose_masks",
    "class_mapping",
    "class_pixels",
    "dataset_folder",
    "load_choice",
    "plan_export",
    "run_export",
]

MANIFEST_NAME = "export.json"
REPORT_NAME = "changes.csv"
MANIFEST_FORMAT = 1


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
class PlannedItem:
    sample: Sample
    choice: MaskChoice
    status: str = ReviewStatus.UNREVIEWED.value
    reviewer: str = ""


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
    try:
        with deferred_durability():
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
