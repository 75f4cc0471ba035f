"""Write-back: the cleaned masks replace the dataset's own GT files, in its own encoding, with a backup (issue 14).

Offered for the formats whose GT files map one-to-one to samples (:data:`WRITEBACK_FORMATS`); the others keep every
sample in a shared file, and are refused with the fix "export instead".

1. :func:`plan_writeback` lists the GT files that would change (the confirmation shows the list): each sample's
   chosen mask (as an export chooses it: the latest correction, accepted predictions by default) is encoded the way
   the file is now (palette PNG keeps its palette, a binary mask keeps the dataset's foreground value and the file's
   mode, a colour-coded mask its class colours, a BMP stays a BMP). Files whose mask would not change are not
   listed and never touched (byte-identical).
2. :func:`run_writeback` copies every listed file byte for byte into ``<workspace>/backups/<time>/files/`` with a
   ``backup.json`` manifest, then replaces the files (each atomically). A cancel or failure part-way puts the files
   already replaced back from the backup, so the dataset is either all written back or as it was.
3. :func:`restore_backup` puts a backup's files back (a file changed since the write-back is skipped, unless
   ``force``); :func:`list_backups` lists a workspace's backups, newest first.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio import __version__
from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.errors import ReadOnlyError, SegstudioError
from segstudio.core.types import ClassSchema
from segstudio.datasets.base import Dataset, Sample
from segstudio.datasets.binary import binary_values
from segstudio.datasets.writing import DatasetExportError
from segstudio.workspace.export_masks import CancelLike, MaskChoice, choose_masks, load_choice
from segstudio.workspace.records import ReviewStatus
from segstudio.workspace.workspace import Workspace

log = logging.getLogger(__name__)

WRITEBACK_FORMATS = ("paired-folders", "class-folders", "camvid-segnet", "camvid-rgb", "voc", "ph2")
BACKUPS = "backups"
BACKUP_MANIFEST = "backup.json"
_LOSSY = {"JPEG", "WEBP", "MPO"}
_VOC_VOID = (224, 224, 192)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class WritebackFile:
    """One GT file to replace: ``data`` is its new content; ``sha256_before`` what it held when planned."""

    sample_id: str
    path: Path
    data: bytes
    sha256_before: str
    used: str

    @property
    def sha256_after(self) -> str:
        return _sha(self.data)


@dataclass(frozen=True)
class WritebackPlan:
    dataset_root: Path
    format_name: str
    workspace: Workspace
    files: tuple[WritebackFile, ...]
    #: ``(sample id, why it is not written back)``
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self.files]


@dataclass(frozen=True)
class WritebackProgress:
    done: int
    total: int
    path: Path


@dataclass(frozen=True)
class WritebackFinished:
    backup: Path
    files: int


@dataclass(frozen=True)
class WritebackCancelled:
    """Stopped on request; the files already replaced were put back from ``backup``."""

    backup: Path
    rolled_back: int


WritebackEvent = WritebackProgress | WritebackFinished | WritebackCancelled


# --- encoding the way the file is ---------------------------------------------------------------------------------
def _raw_info(path: Path) -> tuple[str, str, list[int] | None]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.mode, str(im.format or "PNG"), (im.getpalette() if im.mode == "P" else None)
    except (OSError, ValueError) as e:
        raise DatasetExportError(f"The GT file cannot be read to write back into it ({e}).", path=path,
                                 fix="Export instead, or fix the file first.") from e  # fmt: skip


def _save(arr: np.ndarray, *, mode: str, fmt: str, palette: list[int] | None = None) -> bytes:
    from PIL import Image

    if mode == "P":
        a8 = np.ascontiguousarray(arr, dtype=np.uint8)
        im = Image.frombytes("P", (a8.shape[1], a8.shape[0]), a8.tobytes())
        if palette is not None:
            im.putpalette(palette)
    elif mode == "1":
        im = Image.fromarray(arr.astype(bool))
    elif mode in ("I;16", "I"):
        im = Image.fromarray(arr.astype(np.uint16))
    else:
        im = Image.fromarray(arr)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def _encode_binary(plane: np.ndarray, *, path: Path, foreground: int) -> bytes:
    mode, fmt, _ = _raw_info(path)
    _refuse_lossy(fmt, path)
    if mode == "1":
        return _save(plane, mode="1", fmt=fmt)
    if foreground > 255 or mode in ("I;16", "I"):
        return _save(plane.astype(np.uint16) * np.uint16(foreground), mode="I;16", fmt=fmt)
    arr = plane.astype(np.uint8) * np.uint8(foreground)
    if mode in ("RGB", "RGBA"):
        arr = np.repeat(arr[..., None], 3, axis=2)
    return _save(arr, mode="L" if arr.ndim == 2 else "RGB", fmt=fmt)


def _encode_index(mask: np.ndarray, *, path: Path, schema: ClassSchema, format_name: str) -> bytes:
    mode, fmt, palette = _raw_info(path)
    _refuse_lossy(fmt, path)
    if mode == "P":
        return _save(mask, mode="P", fmt=fmt, palette=palette)
    if mode in ("RGB", "RGBA"):
        top = max(int(mask.max(initial=0)), schema.max_id, schema.ignore_index or 0)
        lut = schema.palette(top + 1)
        ig = schema.ignore_index
        if ig is not None and not schema.has_id(ig):
            flagged = next((c for c in schema if c.ignore), None)
            lut[ig] = flagged.colour if flagged is not None else (_VOC_VOID if format_name == "voc" else (0, 0, 0))
        return _save(lut[mask], mode="RGB", fmt=fmt)
    if mode in ("I;16", "I") or mask.dtype == np.uint16:
        return _save(mask, mode="I;16", fmt=fmt)
    return _save(mask.astype(np.uint8), mode="L", fmt=fmt)


def _refuse_lossy(fmt: str, path: Path) -> None:
    if fmt.upper() in _LOSSY:
        raise DatasetExportError(f"The GT file is {fmt}, a lossy format; writing a mask into it would change it.",
                                 path=path, fix="Export instead (masks are written as PNG).")  # fmt: skip


def _plane(mask: np.ndarray, cid: int, schema: ClassSchema) -> np.ndarray:
    if schema.multilabel:
        return (mask.astype(np.uint64) >> np.uint64(cid)) & np.uint64(1) != 0
    return np.asarray(mask == cid)


def _files_for(ds: Dataset, sample: Sample, new: np.ndarray, old: np.ndarray, used: str) -> list[WritebackFile]:
    """The GT files of ``sample`` that change from ``old`` to ``new``, with their new bytes."""
    loc: Hashable = sample.gt
    out: list[WritebackFile] = []
    if isinstance(loc, str | Path):
        path = Path(loc)
        if ds.options.get("binary"):
            data = _encode_binary(new > 0, path=path, foreground=binary_values(ds).foreground)
        else:
            data = _encode_index(new, path=path, schema=ds.schema, format_name=ds.format_name)
        return [WritebackFile(sample.id, path, data, _sha(path.read_bytes()), used)]
    parts = [p for p in loc if isinstance(p, tuple) and len(p) == 2] if isinstance(loc, tuple) else []
    have = {int(cid) for cid, _ in parts}
    fg = binary_values(ds).foreground
    for c in ds.schema:
        if c.id not in have and not (not ds.schema.multilabel and c.name.lower() == "background"):
            if _plane(new, c.id, ds.schema).any():
                raise DatasetExportError(
                    f"{sample.id} now has class {c.name!r}, which has no mask file for this image to write into.",
                    path=sample.image, fix="Export instead.",
                )
    for cid, p in parts:
        path = Path(p)
        plane, before = _plane(new, int(cid), ds.schema), _plane(old, int(cid), ds.schema)
        if np.array_equal(plane, before):
            continue
        out.append(WritebackFile(sample.id, path, _encode_binary(plane, path=path, foreground=fg),
                                 _sha(path.read_bytes()), used))  # fmt: skip
    return out


# --- plan and run -------------------------------------------------------------------------------------------------
def check_writeback_format(dataset: Dataset) -> None:
    if dataset.format_name not in WRITEBACK_FORMATS:
        raise DatasetExportError(
            f"Write-back is offered for formats with one GT file per image ({', '.join(WRITEBACK_FORMATS)}); "
            f"{dataset.format_name} keeps the annotations of many images in shared files.",
            path=dataset.root,
            fix=f"Export instead: segstudio export {dataset.root} --to {dataset.format_name} --out NEW_FOLDER.",
        )


def plan_writeback(dataset: Dataset, workspace: Workspace, *, statuses: frozenset[str] | None = None,
                   version: str | int = "latest", predictions: str = "accepted",
                   cancel: CancelLike | None = None) -> WritebackPlan:  # fmt: skip
    """The GT files that writing back would replace (nothing is written). Samples whose chosen mask is the GT, or
    equals it, are left out; samples that cannot be written back (no GT file, a lossy file, a class without a
    file) are listed in ``skipped`` with the reason. ``predictions``: ``"accepted"`` (default) also writes back
    masks saved by accepting a prediction; ``"none"`` only human corrections."""
    check_writeback_format(dataset)
    if predictions not in ("none", "accepted"):
        raise DatasetExportError(f"Write-back takes predictions=none or accepted, not {predictions!r}.",
                                 fix="Model predictions of unreviewed images are exported, not written back.")  # fmt: skip
    states = workspace.reviews.all()
    samples = [s for s in dataset if statuses is None
               or (states[s.id].status.value if s.id in states else ReviewStatus.UNREVIEWED.value) in statuses]  # fmt: skip
    choices = choose_masks(dataset, workspace, samples, version=version, predictions=predictions)
    files: list[WritebackFile] = []
    skipped: list[tuple[str, str]] = []
    for s, c in zip(samples, choices, strict=True):
        if cancel is not None and cancel.cancelled:
            break
        if c.kind not in ("correction", "accepted_prediction"):
            continue
        if not s.has_gt:
            skipped.append((s.id, "the image has no GT file to replace; export instead"))
            continue
        try:
            files.extend(_plan_sample(dataset, workspace, s, c))
        except SegstudioError as e:
            skipped.append((s.id, e.message + (f" ({e.fix})" if e.fix else "")))
    return WritebackPlan(Path(dataset.root), dataset.format_name, workspace, tuple(files), tuple(skipped))


def _plan_sample(ds: Dataset, ws: Workspace, s: Sample, c: MaskChoice) -> list[WritebackFile]:
    new = load_choice(ds, ws, s, c)
    old = ds.load_gt(s)
    if new is None or old is None or np.array_equal(new, old):
        return []
    if new.shape != old.shape:
        raise DatasetExportError(f"The saved mask is {new.shape[1]}x{new.shape[0]}, the GT {old.shape[1]}x{old.shape[0]}.",
                                 path=c.version.path if c.version else None, fix="Export instead.")  # fmt: skip
    return _files_for(ds, s, new, old, c.describe())


def _backup_folder(workspace: Workspace) -> Path:
    base = workspace.folder / BACKUPS
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1, 1000):
        folder = base / (stamp if k == 1 else f"{stamp}-{k}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise SegstudioError("No free backup folder name.", path=base, fix="Move old backups away.")


def _backup_rel(path: Path, root: Path, i: int) -> str:
    try:
        return "files/" + path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return f"files/_outside/{i:05d}_{path.name}"


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write_bytes(folder / BACKUP_MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode("utf-8"))


def run_writeback(plan: WritebackPlan, *, cancel: CancelLike | None = None) -> Iterator[WritebackEvent]:
    """Back up, then replace the plan's files; yields one :class:`WritebackProgress` per file and
    :class:`WritebackFinished` (or :class:`WritebackCancelled`, everything put back). Files changed since the plan
    are refused before anything is written."""
    ws = plan.workspace
    if ws.read_only:
        raise ReadOnlyError(f"The workspace is read-only ({ws.read_only_reason}); the backup cannot be kept there.",
                            path=ws.folder, fix="Close the other segstudio holding it, then write back again.")  # fmt: skip
    originals: list[bytes] = []
    for f in plan.files:
        data = f.path.read_bytes()
        if _sha(data) != f.sha256_before:
            raise DatasetExportError("The GT file changed since the write-back was planned.", path=f.path,
                                     fix="Plan the write-back again (reopen the dialog).")  # fmt: skip
        originals.append(data)
    folder = _backup_folder(ws)
    root = dataset_folder_path(plan.dataset_root)
    entries = []
    for i, (f, data) in enumerate(zip(plan.files, originals, strict=True)):
        rel = _backup_rel(f.path, root, i)
        atomic_write_bytes(folder / rel, data)
        entries.append({"path": str(f.path.resolve()), "backup": rel, "sample_id": f.sample_id, "used": f.used,
                        "sha256_before": f.sha256_before, "sha256_after": f.sha256_after, "applied": False})  # fmt: skip
    manifest: dict[str, Any] = {
        "format": 1, "segstudio": __version__, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dataset_root": str(plan.dataset_root.resolve()), "dataset_format": plan.format_name,
        "workspace": str(ws.folder), "state": "backed_up", "files": entries,
    }  # fmt: skip
    _write_manifest(folder, manifest)
    applied = 0
    try:
        for i, f in enumerate(plan.files):
            if cancel is not None and cancel.cancelled:
                _roll_back(folder, manifest, plan, originals, applied)
                yield WritebackCancelled(folder, applied)
                return
            atomic_write_bytes(f.path, f.data)
            entries[i]["applied"] = True
            applied = i + 1
            yield WritebackProgress(applied, len(plan.files), f.path)
    except BaseException:
        _roll_back(folder, manifest, plan, originals, applied)
        raise
    manifest["state"] = "applied"
    _write_manifest(folder, manifest)
    log.info("wrote back %d GT files of %s (backup %s)", applied, plan.dataset_root, folder)
    yield WritebackFinished(folder, applied)


def dataset_folder_path(root: Path) -> Path:
    return root if root.is_dir() else root.parent


def _roll_back(folder: Path, manifest: dict[str, Any], plan: WritebackPlan, originals: list[bytes], applied: int) -> None:
    for f, data in list(zip(plan.files, originals, strict=True))[:applied]:
        try:
            atomic_write_bytes(f.path, data)
        except SegstudioError as e:
            log.error("could not put %s back after a stopped write-back: %s (the backup %s holds it)", f.path, e, folder)
    manifest["state"] = "rolled_back"
    for rec in manifest["files"]:
        rec["applied"] = False
    try:
        _write_manifest(folder, manifest)
    except SegstudioError as e:
        log.warning("could not record the roll-back in %s: %s", folder, e)


# --- backups ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BackupInfo:
    path: Path
    time: str
    dataset_root: str
    files: int
    state: str


@dataclass(frozen=True)
class RestoreResult:
    backup: Path
    restored: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    #: ``(file, why it was not restored)``
    skipped: tuple[tuple[Path, str], ...]


def _read_manifest(backup: Path) -> dict[str, Any]:
    path = Path(backup) / BACKUP_MANIFEST
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SegstudioError(f"This is not a readable write-back backup ({e}).", path=path,
                             fix="Give a folder under <workspace>/backups/ (segstudio restore-backup --list).") from e  # fmt: skip
    if not isinstance(d, dict) or not isinstance(d.get("files"), list):
        raise SegstudioError("The backup manifest has no file list.", path=path, fix="Give another backup folder.")
    return d


def list_backups(workspace_folder: Path) -> list[BackupInfo]:
    """The write-back backups of a workspace, newest first (unreadable ones left out, with a log line)."""
    base = Path(workspace_folder) / BACKUPS
    out = []
    for folder in sorted((p for p in base.iterdir() if p.is_dir()), reverse=True) if base.is_dir() else []:
        try:
            d = _read_manifest(folder)
        except SegstudioError as e:
            log.warning("skipping backup %s: %s", folder, e.message)
            continue
        out.append(BackupInfo(folder, str(d.get("time", "")), str(d.get("dataset_root", "")),
                              len(d["files"]), str(d.get("state", ""))))  # fmt: skip
    return out


def restore_backup(backup: Path, *, force: bool = False) -> RestoreResult:
    """Put the files of a write-back backup back, byte for byte. A file that changed since the write-back (neither
    what was written nor the original) is skipped unless ``force``; one already back is left as it is."""
    folder = Path(backup)
    manifest = _read_manifest(folder)
    restored: list[Path] = []
    unchanged: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for entry in manifest["files"]:
        rec = entry if isinstance(entry, dict) else {}
        path = Path(str(rec.get("path", "")))
        try:
            data = (folder / str(rec["backup"])).read_bytes()
        except (OSError, KeyError) as err:
            skipped.append((path, f"its backup copy cannot be read ({err})"))
            continue
        if _sha(data) != rec.get("sha256_before"):
            skipped.append((path, "its backup copy is damaged (checksum differs)"))
            continue
        try:
            now = _sha(path.read_bytes())
        except FileNotFoundError:
            now = ""
        except OSError as err:
            skipped.append((path, f"it cannot be read ({err.strerror})"))
            continue
        if now == rec.get("sha256_before"):
            unchanged.append(path)
            continue
        if now != rec.get("sha256_after") and not force:
            skipped.append((path, "it changed since the write-back (restore with force to replace it anyway)"))
            continue
        atomic_write_bytes(path, data)
        restored.append(path)
    manifest["state"] = "restored" if not skipped else "partly_restored"
    manifest["restored_time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write_manifest(folder, manifest)
    return RestoreResult(folder, tuple(restored), tuple(unchanged), tuple(skipped))
