"""``segstudio --selftest`` in a source checkout: every part runs, the one line says so, a failure names its part
with its own exit status. (The installed app runs the same code: test_installer.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from segstudio import selftest
from segstudio.cli import main
from segstudio.core.errors import UnknownKeyError


@pytest.mark.slow
def test_cli_selftest_passes_every_part_and_writes_the_window(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSTUDIO_STATE_DIR", str(tmp_path / "state"))
    shot = tmp_path / "window.png"
    code = main(["--selftest", "--selftest-device", "cpu", "--selftest-screenshot", str(shot)])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0, line
    assert line.startswith("selftest ok: ")
    for part in selftest.PARTS:
        assert f"{part} " in line
    assert "device cpu" in line and "qt offscreen" in line
    from PySide6.QtGui import QImage

    image = QImage(str(shot))
    assert (image.width(), image.height()) == (1280, 820)


def test_failing_part_is_named_with_its_exit_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "resources" / "samples" / "lungs"
    empty.mkdir(parents=True)
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(tmp_path / "resources"))
    report = selftest.run_selftest(parts=("sample",), device="cpu")
    assert not report.ok
    assert report.failed is not None and report.failed.name == "sample"
    assert report.exit_code == selftest.FAILURE_BASE + selftest.PARTS.index("sample")
    assert report.summary().startswith("selftest FAILED at sample: ")
    assert len(report.parts) == 1  # nothing runs after the first failure


def test_a_model_failure_stops_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    import segstudio.engine.models as models

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(models, "build_model", broken)
    report = selftest.run_selftest(parts=("train",), device="cpu")
    assert [p.name for p in report.parts] == ["sample", "model"]  # train needs model needs sample
    assert report.exit_code == selftest.FAILURE_BASE + 2
    assert "torchvision::nms" in report.summary()


def test_window_part_alone_renders_the_sample(tmp_path: Path) -> None:
    shot = tmp_path / "w.png"
    report = selftest.run_selftest(parts=("window",), screenshot=shot, device="cpu")
    assert report.ok, report.summary()
    assert [p.name for p in report.parts] == ["window"]
    assert shot.stat().st_size > 10_000


def test_user_folders_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSTUDIO_CONFIG_DIR", str(tmp_path / "mine"))
    report = selftest.run_selftest(parts=("window",), device="cpu")
    assert report.ok, report.summary()
    import os

    assert os.environ["SEGSTUDIO_CONFIG_DIR"] == str(tmp_path / "mine")
    assert not (tmp_path / "mine").exists()


def test_unknown_part_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownKeyError, match="checkpoint"):
        selftest.run_selftest(parts=("sampel",))
