"""Where a dataset's workspace lives (DESIGN §3).

Default: a sibling folder ``<dataset folder>.segstudio`` beside the dataset — beside, not inside, so a format
that scans the dataset folder never mistakes saved corrections for dataset files. When that place is not
writable (a read-only share, the bundled sample inside an installed app) the workspace goes under the user's
data directory (platformdirs), in a folder named after the dataset plus a hash of its absolute path, so two
datasets called ``data`` never share one.

"Writable" honours permission bits even for root: a folder whose mode grants no write bit is treated as
read-only, because someone marked it so on purpose (and root, which ``os.access`` always lets through, is
exactly who runs CI and containers).

``SEGSTUDIO_WORKSPACE_HOME`` puts every workspace under one folder instead (``<home>/<name>-<hash>``), never
beside a dataset: for datasets on a share the user must not litter, and for the test suite, which must never
write beside ``../shared``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import stat
from pathlib import Path

from segstudio.core.paths import data_dir
from segstudio.workspace.settings import WorkspaceSettings, load_workspace_settings

log = logging.getLogger(__name__)

APP_NAME = "segstudio"
WORKSPACE_SUFFIX = ".segstudio"


def user_data_dir() -> Path:
    """The per-user data folder of segstudio (``SEGSTUDIO_DATA_DIR`` overrides, e.g. for portable installs)."""
    return data_dir()


def is_writable_dir(folder: Path) -> bool:
    """True when ``folder`` exists, its mode grants a write bit, and a file can really be created in it."""
    try:
        st = folder.stat()
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return False
    if not os.access(folder, os.W_OK):
        return False
    probe = folder / f".segstudio-probe-{secrets.token_hex(4)}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError:
        return False
    return True


def slug(text: str, *, limit: int = 48) -> str:
    """A file-name-safe, readable, collision-free name for ``text`` (tail of the text + 10 hex of its SHA-1)."""
    # surrogatepass: a non-UTF-8 file name (lone surrogates from os.fsdecode) still gets its own stable slug;
    # valid text encodes exactly as before, so existing folders keep their names
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[-limit:]
    return f"{readable}-{digest}" if readable else digest


def workspace_dir_for(dataset_root: str | Path, *, data_dir: Path | None = None) -> Path:
    """The workspace folder for the dataset at ``dataset_root`` (a folder, or a file such as a COCO JSON).

    An existing sibling workspace is used as long as it is writable; otherwise the user-data location
    (``data_dir`` or :func:`user_data_dir`) ``/workspaces/<name>-<hash>``. ``SEGSTUDIO_WORKSPACE_HOME``, when
    set, overrides both.
    """
    root = Path(dataset_root).expanduser().resolve()
    home = os.environ.get("SEGSTUDIO_WORKSPACE_HOME")
    if home:
        return Path(home).expanduser().resolve() / slug(str(root))
    sibling = root.parent / (root.name + WORKSPACE_SUFFIX)
    if sibling.is_dir() and (is_writable_dir(sibling) or (sibling / "workspace.sqlite").is_file()):
        # A sibling that holds a workspace is the user's work even when it cannot be written now (permissions,
        # a full disk): it opens read-only rather than a new, empty workspace elsewhere hiding it.
        return sibling
    if not sibling.exists() and is_writable_dir(root.parent):
        return sibling
    base = data_dir if data_dir is not None else user_data_dir()
    target = base / "workspaces" / slug(str(root))
    log.info("dataset folder %s is read-only; workspace goes to %s", root.parent, target)
    return target


def workspace_settings_at(path: str | Path) -> WorkspaceSettings | None:
    """When ``path`` is a workspace (its folder, ``workspace.sqlite`` or ``workspace.json``, e.g. opened from a
    file manager through the MIME association), its settings, which name the dataset; otherwise None."""
    p = Path(path).expanduser()
    folder = p.parent if p.name in ("workspace.sqlite", "workspace.json") else p
    if not (folder / "workspace.sqlite").is_file():
        return None
    settings = load_workspace_settings(folder)
    return settings if settings.dataset_root else None
