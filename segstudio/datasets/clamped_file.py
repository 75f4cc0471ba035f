"""A file whose reads never ask for more than is left in it (for the image and DICOM readers)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any


class ClampedFile(io.RawIOBase):
    """A file whose reads never ask for more than is left in it.

    Parsers read a chunk with ``read(declared length)``, and Python reserves that many bytes before reading: a
    200-byte DICOM whose header declares a 512 MiB element made pydicom allocate 512 MiB, and a 100-byte PNG
    whose IDAT chunk claims 512 MiB made PIL do the same while skipping it. Clamped here, a lying length costs
    what the file holds and the parser reports the short read. Unbuffered on purpose: a buffered reader
    reserves the requested size again."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._f = open(path, "rb")  # noqa: SIM115 - closed with this object
        self._size = os.fstat(self._f.fileno()).st_size
        self.name = str(path)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        left = max(self._size - self._f.tell(), 0)
        return self._f.read(left if n is None or n < 0 else min(n, left))

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()
        super().close()
