"""Versioned masks per sample: every save is a new lossless file; nothing is overwritten, GT never touched.

Order of a save: the file is created (create-only: complete, or not there) first, then its row is committed. A
crash in between leaves an orphan file; the next save skips its number (it takes one past both the database's
highest version and the highest file on disk), so no file is ever replaced — not even when the database was
lost and a new one knows none of the versions. The database never points at a missing or half-written file.

Versions describe themselves: the first save of a sample writes ``masks/<slug>/sample.json`` (create-only)
with the sample id, which the slug (a readable tail plus a hash) cannot give back; a lost database is rebuilt
from these (``segstudio.workspace.rebuild``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from segstudio.core.atomic import FileExistsSegstudioError, atomic_create_bytes
from segstudio.core.errors import SegstudioError
from segstudio.workspace.db import Database
from segstudio.workspace.events import WorkspaceEvents
from segstudio.workspace.locate import slug
from segstudio.workspace.maskio import encode_mask, read_mask
from segstudio.workspace.records import MaskSource, MaskVersion

log = logging.getLogger(__name__)

_COLS = "sample_id, version, path, time, source, author, note, dtype, shape, sha256, parent"

#: a version file's name: ``v`` + at least four digits + ``.png`` or ``.npz``
VERSION_FILE = re.compile(r"v(\d{4,})\.(png|npz)")
#: the file in a sample's version folder that names the sample
SAMPLE_FILE = "sample.json"


def versions_on_disk(folder: Path) -> dict[int, Path]:
    """The version files in one sample's folder, by number (whatever the database says)."""
    out: dict[int, Path] = {}
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return out
    for name in names:
        m = VERSION_FILE.fullmatch(name)
        if m:
            out[int(m.group(1))] = folder / name
    return out


def read_sample_file(folder: Path) -> str | None:
    """The sample id recorded in ``folder/sample.json`` (``None``: none, or unreadable)."""
    try:
        d = json.loads((folder / SAMPLE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    sid = d.get("sample_id") if isinstance(d, dict) else None
    return sid if isinstance(sid, str) else None


def write_sample_file(folder: Path, sample_id: str) -> None:
    """Name the sample in its version folder, once (create-only; an existing file naming it is kept)."""
    if (folder / SAMPLE_FILE).exists():
        found = read_sample_file(folder)
        if found is not None and found != sample_id:
            raise SegstudioError(
                f"The version folder of {sample_id!r} is named after another sample, {found!r}.",
                path=folder / SAMPLE_FILE,
                fix="Move that folder out of masks/ and reopen the workspace (it is rebuilt from the files).",
            )
        return
    # ensure_ascii escapes lone surrogates (a non-UTF-8 file name) as \udcXX, which json.loads gives back
    data = json.dumps({"sample_id": sample_id, "format": 1}) + "\n"
    try:
        atomic_create_bytes(folder / SAMPLE_FILE, data.encode("ascii"))
    except FileExistsSegstudioError:
        pass  # a concurrent first save wrote it; the check above runs again on the next save


class VersionStore:
    """Mask versions under ``<workspace>/masks/<sample slug>/vNNNN.png|npz``."""

    def __init__(self, db: Database, events: WorkspaceEvents) -> None:
        self._db = db
        self._events = events
        self.folder = db.folder

    def _record(self, r: tuple[object, ...]) -> MaskVersion:
        shape = str(r[8])
        return MaskVersion(
            sample_id=str(r[0]),
            version=int(r[1]),  # type: ignore[call-overload]
            path=self.folder / str(r[2]),
            time=float(r[3]),  # type: ignore[arg-type]
            source=MaskSource(str(r[4])),
            author=str(r[5]),
            note=str(r[6]),
            dtype=str(r[7]),
            shape=tuple(int(x) for x in shape.split(",")) if shape else (),
            sha256=str(r[9]),
            parent=None if r[10] is None else int(r[10]),  # type: ignore[call-overload]
        )

    def save(
        self,
        sample_id: str,
        mask: np.ndarray,
        *,
        source: MaskSource | str = MaskSource.CORRECTION,
        author: str = "",
        note: str = "",
        parent: int | None = None,
    ) -> MaskVersion:
        """Save ``mask`` (2-D ``uint8``/``uint16`` → PNG, ``uint32``/``uint64`` → NPZ) as the next version."""
        mask = np.ascontiguousarray(mask)
        # Encode before taking the write lock: a 2048² bitmask takes ~0.2 s to compress, and the GUI thread
        # must not wait that long to record a review while a worker autosaves.
        data, suffix = encode_mask(mask)
        digest = hashlib.sha256(data).hexdigest()
        folder = self.storage_path(sample_id)
        with self._db.write() as conn:
            row = conn.execute("SELECT MAX(version) FROM mask_versions WHERE sample_id=?", (sample_id,)).fetchone()
            on_disk = versions_on_disk(folder)
            version = max(int(row[0] or 0) if row else 0, max(on_disk, default=0)) + 1
            write_sample_file(folder, sample_id)  # also names the folders of workspaces older than this file
            for _ in range(100):
                path = folder / f"v{version:04d}{suffix}"
                try:
                    atomic_create_bytes(path, data)
                    break
                except FileExistsSegstudioError:
                    # another suffix of this number, or a file that appeared since the listing: never replace it
                    log.warning("mask version file %s already exists; saving as the next version", path)
                    version += 1
            else:
                raise SegstudioError(f"No free version number for {sample_id!r}.", path=folder,
                                     fix="Move stray files out of this folder, then save again.")  # fmt: skip
            rec = MaskVersion(
                sample_id=sample_id,
                version=version,
                path=path,
                time=time.time(),
                source=MaskSource(source),
                author=author,
                note=note,
                dtype=str(mask.dtype),
                shape=tuple(mask.shape),
                sha256=digest,
                parent=parent,
            )
            conn.execute(
                f"INSERT INTO mask_versions({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    sample_id,
                    version,
                    path.relative_to(self.folder).as_posix(),
                    rec.time,
                    rec.source.value,
                    author,
                    note,
                    rec.dtype,
                    ",".join(map(str, rec.shape)),
                    digest,
                    parent,
                ),
            )
        self._events.version_saved.emit(rec)
        return rec

    def versions(self, sample_id: str) -> list[MaskVersion]:
        """The sample's history, oldest first."""
        rows = self._db.query(f"SELECT {_COLS} FROM mask_versions WHERE sample_id=? ORDER BY version", (sample_id,))
        return [self._record(r) for r in rows]

    def get(self, sample_id: str, version: int) -> MaskVersion:
        rows = self._db.query(f"SELECT {_COLS} FROM mask_versions WHERE sample_id=? AND version=?", (sample_id, version))
        if not rows:
            have = [v.version for v in self.versions(sample_id)]
            raise SegstudioError(
                f"Sample {sample_id!r} has no mask version {version} (versions: {have or 'none'}).",
                fix="Pick one of the listed versions.",
            )
        return self._record(rows[0])

    def latest(self, sample_id: str) -> MaskVersion | None:
        rows = self._db.query(
            f"SELECT {_COLS} FROM mask_versions WHERE sample_id=? ORDER BY version DESC LIMIT 1", (sample_id,)
        )
        return self._record(rows[0]) if rows else None

    def latest_all(self) -> dict[str, MaskVersion]:
        """The current version of every corrected sample (the training set's corrections)."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM mask_versions m WHERE version = "
            "(SELECT MAX(version) FROM mask_versions WHERE sample_id = m.sample_id)"
        )
        return {str(r[0]): self._record(r) for r in rows}

    def load(self, version: MaskVersion) -> np.ndarray:
        """The mask of a version, checked against its recorded checksum, dtype and shape."""
        arr = read_mask(version.path, sha256=version.sha256 or None)
        if version.dtype and (str(arr.dtype) != version.dtype or tuple(arr.shape) != version.shape):
            raise SegstudioError(
                f"Mask version {version.version} of {version.sample_id!r} holds {arr.dtype} {arr.shape}, "
                f"but {version.dtype} {version.shape} was saved.",
                path=version.path,
                fix="Revert the sample to another version.",
            )
        return arr

    def load_latest(self, sample_id: str) -> np.ndarray | None:
        """The current corrected mask, or ``None`` when the sample has only its GT."""
        v = self.latest(sample_id)
        return None if v is None else self.load(v)

    def revert(self, sample_id: str, version: int, *, author: str = "") -> MaskVersion:
        """Make ``version`` current again by saving a copy as a new version (history stays append-only)."""
        old = self.get(sample_id, version)
        return self.save(
            sample_id, self.load(old), source=MaskSource.REVERT, author=author, note=f"revert to v{version}", parent=version
        )

    def corrected_ids(self) -> set[str]:
        return {str(r[0]) for r in self._db.query("SELECT DISTINCT sample_id FROM mask_versions")}

    def storage_path(self, sample_id: str) -> Path:
        """Folder holding the sample's versions."""
        return self.folder / "masks" / slug(sample_id)
