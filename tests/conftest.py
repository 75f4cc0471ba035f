"""Shared fixtures. Datasets under ../shared/datasets are read in place, never copied."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: pytester runs a nested session in tests/test_hermetic.py (the harness's own clean-up is tested there)
pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGSTUDIO_SHARED", REPO.parent / "shared" / "datasets"))
SAMPLE = REPO / "resources" / "samples" / "lungs"


_USER_DIR_VARS = (
    "SEGSTUDIO_CONFIG_DIR",
    "SEGSTUDIO_STATE_DIR",
    "SEGSTUDIO_CACHE_DIR",
    "SEGSTUDIO_DATA_DIR",
    "SEGSTUDIO_WORKSPACE_HOME",
)


#: free disk the suite needs where pytest keeps its temporary folders: its peak is 1.4-2.0 GB (2026-12-07), with
#: every passing test's folders removed as it ends
MIN_FREE_TMP_GB = 3.0


def pytest_sessionstart(session: pytest.Session) -> None:
    """Too little free disk for the runs and checkpoints the tests write makes hundreds of tests error at once,
    or a dialog of the app's wait on a failed write: say so up front instead."""
    import tempfile

    where = Path(session.config.option.basetemp or tempfile.gettempdir())
    while not where.exists():
        where = where.parent
    free_gb = shutil.disk_usage(where).free / 2**30
    if free_gb < MIN_FREE_TMP_GB:
        pytest.exit(f"only {free_gb:.1f} GB free at {where}; the tests need {MIN_FREE_TMP_GB:.0f} GB there for "
                    "the runs and checkpoints they write. Free some space, or point TMPDIR (or --basetemp) at a "
                    "disk with room.", returncode=3)


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Records on the test whether any of its phases failed, for the fixtures that keep its files only then."""
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


def _test_failed(request: pytest.FixtureRequest) -> bool:
    """Whether the requesting test failed so far (setup or call), read in a fixture's teardown."""
    return request.node.stash.get(_FAILED, False)


@pytest.fixture(autouse=True)
def _hermetic_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
                        request: pytest.FixtureRequest) -> Any:
    """Every test gets its own settings, logs, caches and workspaces: nothing is written beside ../shared or
    into the user's folders, and no test sees what another left (a "current model" in a shared workspace).
    The folder goes when the test passes, like tmp_path (tmp_path_retention_policy = "failed"): the suite's
    runs and checkpoints would otherwise add up to some 20 GB, more than a CI machine's free disk."""
    base = tmp_path_factory.mktemp("user")
    for var in _USER_DIR_VARS:
        monkeypatch.setenv(var, str(base / var.lower()))
    yield
    if not _test_failed(request):
        shutil.rmtree(base, ignore_errors=True)


#: how long a modal dialog may stay open in a Qt test before the harness closes it and fails the test
MODAL_GRACE_S = 20


def _describe_modal(widget: Any) -> str:
    from PySide6.QtWidgets import QMessageBox

    text = f"{type(widget).__name__} {widget.windowTitle()!r}"
    if isinstance(widget, QMessageBox):
        text += f": {widget.text()!r}"
        if widget.detailedText():
            text += f"\n{widget.detailedText()[-3000:]}"
    return text


@pytest.fixture(autouse=True)
def _no_forgotten_modal(request: pytest.FixtureRequest) -> Any:
    """A Qt test in which a modal dialog (an error box, a "training is running" question at close) stays open for
    MODAL_GRACE_S fails, naming the dialog, instead of waiting on it until CI's limit: offscreen, nobody answers.
    A timer closes the dialog (rejects it: "No" to a question) so that the test and its teardown can go on; tests
    that answer a dialog themselves do so within milliseconds."""
    if not {"qtbot", "qapp"} & set(request.fixturenames):
        yield
        return
    request.getfixturevalue("qapp")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

    seen: dict[str, Any] = {"widget": None, "ticks": 0}
    left_open: list[str] = []

    def tick() -> None:
        widget = QApplication.activeModalWidget()
        if widget is None or widget is not seen["widget"]:
            seen["widget"], seen["ticks"] = widget, 0
            return
        seen["ticks"] += 1
        if seen["ticks"] < MODAL_GRACE_S or not isinstance(widget, QDialog):
            return
        left_open.append(_describe_modal(widget))
        seen["widget"], seen["ticks"] = None, 0
        if isinstance(widget, QMessageBox):
            widget.done(int(QMessageBox.StandardButton.No.value))
        else:
            widget.reject()

    timer = QTimer()
    timer.setInterval(1000)
    timer.timeout.connect(tick)
    timer.start()
    yield
    timer.stop()
    if left_open:
        pytest.fail(f"a modal dialog stayed open for {MODAL_GRACE_S} s with nobody to answer it (closed by the "
                    f"test harness): {'; '.join(left_open)}")


def _shared_snapshot(root: Path) -> set[str]:
    """Every path under the shared datasets' parent folder (the datasets and anything written beside them)."""
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root.parent):
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root.parent))
    return out


@pytest.fixture(scope="session", autouse=True)
def _nothing_written_beside_shared() -> Any:
    """Tests are hermetic (DESIGN §6): the session fails if any file or folder appeared in or beside the shared
    datasets, which a user's writable copy would otherwise collect (workspaces, caches, outputs)."""
    if not SHARED.is_dir():
        yield
        return
    before = _shared_snapshot(SHARED)
    yield
    added = sorted(_shared_snapshot(SHARED) - before)
    assert not added, f"tests wrote beside the shared datasets ({SHARED.parent}): {added[:10]}"


def _require_shared() -> bool:
    return os.environ.get("SEGSTUDIO_REQUIRE_SHARED") == "1"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The folder of real datasets. Skips (fails in CI, where SEGSTUDIO_REQUIRE_SHARED=1) when missing."""
    if not SHARED.is_dir():
        msg = (
            f"real datasets not found at {SHARED}: this test reads ../shared/datasets beside the clone "
            "(set SEGSTUDIO_SHARED to point elsewhere)"
        )
        if _require_shared():
            pytest.fail(msg + " — SEGSTUDIO_REQUIRE_SHARED=1, so this is an error here")
        pytest.skip(msg)
    return SHARED


def shared_path(shared: Path, rel: str) -> Path:
    p = shared / rel
    if not p.exists():
        if _require_shared():
            pytest.fail(f"{p} is missing from the shared datasets")
        pytest.skip(f"{p} is missing from the shared datasets")
    return p


@pytest.fixture(scope="session")
def montgomery(shared_datasets: Path) -> Path:
    return shared_path(shared_datasets, "montgomery_cxr/data")


@pytest.fixture(scope="session")
def ph2(shared_datasets: Path) -> Path:
    return shared_path(shared_datasets, "ph2")


@pytest.fixture(scope="session")
def camvid(shared_datasets: Path) -> Path:
    return shared_path(shared_datasets, "camvid_segnet/CamVid")


@pytest.fixture(scope="session")
def facade_coco(shared_datasets: Path) -> Path:
    return shared_path(shared_datasets, "facade_coco")


@pytest.fixture(scope="session")
def sample_dataset_path() -> Path:
    return SAMPLE


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if {"shared_datasets", "montgomery", "ph2", "camvid", "facade_coco"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.shared)
