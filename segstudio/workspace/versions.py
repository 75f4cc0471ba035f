"""Versioned masks per sample: every save is a new lossless file; nothing is overwritten, GT never touched.

Order of a save: the file is written atomically first, then its row is committed. A crash in between leaves an
orphan file that the next save of that version number replaces; the database never points at a missing or
half-written file.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.errors import SegstudioError
from segstudio.workspace.db import Database
from segstudio.workspace.events import WorkspaceEvents
from segstudio.workspace.locate import slug
from segstudio.workspace.maskio import encode_mask, read_mask
from segstudio.workspace.records import MaskSource, MaskVersion

log = logging.getLogger(__name__)

_COLS = "sample_id, version, path, time, source, author, note, dtype, shape, sha256, parent"


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
        with self._db.write() as conn:
            row = conn.execute("SELECT MAX(version) FROM mask_versions WHERE sample_id=?", (sample_id,)).fetchone()
            version = int(row[0] or 0) + 1
            path = self.folder / "masks" / slug(sample_id) / f"v{version:04d}{suffix}"
            atomic_write_bytes(path, data)
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
