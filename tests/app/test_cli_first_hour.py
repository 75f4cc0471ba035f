"""The first hour on the command line (issue 21): a typo or a missing path is an error listing the commands,
never a window; no display is a message with the fix (exit 2, not Qt's abort); every --help has an example;
progress through one adapter (bar, --quiet, --progress json) on stderr, only the result on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segstudio import cli

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "resources" / "samples" / "lungs"


def _segstudio(*args: str, env: dict[str, str] | None = None, drop: tuple[str, ...] = (),
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m segstudio ARGS`` with stdout and stderr piped. A window that opened by mistake would run until
    the timeout (offscreen unless ``env`` says otherwise), failing the test."""
    full = {**os.environ, "QT_QPA_PLATFORM": "offscreen", **(env or {})}
    for key in drop:
        full.pop(key, None)
    return subprocess.run([sys.executable, "-m", "segstudio", *args], capture_output=True, text=True,
                          timeout=timeout, env=full, cwd=REPO)


def _json_lines(text: str) -> list[dict]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return [json.loads(ln) for ln in lines]  # every line must be JSON: a stray line fails here


# -- unknown command, missing path ------------------------------------------------------------------------------

def test_a_typo_of_a_command_is_an_error_with_a_suggestion_and_no_window() -> None:
    res = _segstudio("trian")
    assert res.returncode == 2, res.stderr
    assert "'trian' is not a command" in res.stderr
    assert "Did you mean: segstudio train" in res.stderr  # the closest first
    for name in ("info", "train", "predict", "evaluate", "export"):  # the commands are listed
        assert f"\n  {name} " in res.stderr
    assert res.stdout == ""


def test_a_typo_followed_by_arguments_still_names_the_typo(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inof", str(SAMPLE), "--stats"]) == 2
    err = capsys.readouterr().err
    assert "'inof' is not a command" in err and "Did you mean: segstudio info?" in err


def test_a_path_that_does_not_exist_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dataset"
    res = _segstudio(str(missing))
    assert res.returncode == 2, res.stderr
    assert str(missing) in res.stderr and "no file or folder" in res.stderr
    assert "Did you mean" not in res.stderr  # nothing close to a command
    assert "commands (segstudio COMMAND --help for each)" in res.stderr


def test_a_missing_predictions_folder_is_an_error(tmp_path: Path) -> None:
    assert cli.main([str(SAMPLE), "--predictions", str(tmp_path / "nope")]) == 2


# -- no display ---------------------------------------------------------------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check is for Linux (X11/Wayland)")
def test_no_display_is_a_message_with_the_fix_not_a_qt_abort() -> None:
    res = _segstudio(str(SAMPLE), env={"QT_QPA_PLATFORM": "xcb"}, drop=("DISPLAY", "WAYLAND_DISPLAY"))
    assert res.returncode == 2, (res.returncode, res.stderr)  # Qt itself aborts: -6 / 134
    assert "cannot open a window: no display" in res.stderr
    assert "QT_QPA_PLATFORM=offscreen" in res.stderr and "segstudio screenshot" in res.stderr


def test_display_check_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(cli, "_missing_xcb_libraries", lambda: {})
    assert cli.display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert cli.display_problem({"DISPLAY": ":0"}) is None
    assert cli.display_problem({"WAYLAND_DISPLAY": "wayland-0"}) is None
    assert "no display" in (cli.display_problem({}) or "")
    assert "DISPLAY is not set" in (cli.display_problem({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "w"}) or "")
    assert cli.display_problem({"SEGSTUDIO_SKIP_DISPLAY_CHECK": "1"}) is None
    monkeypatch.setattr(cli, "_missing_xcb_libraries", lambda: {"xcb-cursor": "libxcb-cursor0"})
    msg = cli.display_problem({"DISPLAY": ":0"}) or ""
    assert "libxcb-cursor" in msg and "sudo apt-get install libxcb-cursor0" in msg and "offscreen" in msg
    assert cli.display_problem({"WAYLAND_DISPLAY": "wayland-0"}) is None  # Wayland does not need xcb
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cli.display_problem({}) is None


def test_the_gui_entry_stops_before_qt_when_there_is_no_display(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "display_problem", lambda environ=None: "segstudio: error: cannot open a window")
    assert cli.main([str(SAMPLE)]) == 2
    assert "cannot open a window" in capsys.readouterr().err


# -- help -----------------------------------------------------------------------------------------------------------

def test_every_command_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    names = list(cli._available())
    assert {"info", "train", "predict", "evaluate", "export"} <= set(names)
    for name in [*names, None]:
        with pytest.raises(SystemExit) as e:
            cli.main([name, "--help"] if name else ["--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out, name
        example = out.split("examples:", 1)[1]
        assert f"segstudio {name}" in example if name else "segstudio ~/" in example, (name, example)


# -- progress -------------------------------------------------------------------------------------------------------

def _check_progress_events(events: list[dict], label: str) -> None:
    mine = [e for e in events if e.get("label") == label]
    progress = [e for e in mine if e["event"] == "progress"]
    assert progress, events
    assert [e["done"] for e in progress] == sorted(e["done"] for e in progress)
    assert all(set(e) >= {"done", "total", "eta_s", "rate"} for e in progress)
    assert progress[-1]["done"] == progress[-1]["total"] > 0
    done = [e for e in mine if e["event"] == "done"]
    assert len(done) == 1 and mine[-1] is done[0] and done[0]["done"] == done[0]["total"]
    assert "elapsed_s" in done[0]


def test_info_stats_progress_json_line_by_line_and_stdout_only_the_result() -> None:
    res = _segstudio("info", str(SAMPLE), "--stats", "--json", "--progress", "json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)  # stdout is exactly the result
    assert report["samples"] == 8 and "stats" in report
    events = _json_lines(res.stderr)
    _check_progress_events(events, "sizes")
    _check_progress_events(events, "masks")
    assert events[-1] == {**events[-1], "event": "done", "label": "masks", "total": 8}


def test_export_progress_json_line_by_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exp"
    assert cli.main(["export", str(SAMPLE), "--to", "binary-pngs", "--out", str(out), "--progress", "json"]) == 0
    cap = capsys.readouterr()
    events = _json_lines(cap.err)
    _check_progress_events(events, "export")
    assert cap.out.startswith("exported 8 images to ") and "{" not in cap.out


def test_piped_without_options_no_bar_on_stderr_and_text_result_on_stdout() -> None:
    res = _segstudio("info", str(SAMPLE), "--stats")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("Dataset: ") and "Samples: 8" in res.stdout
    assert "\r" not in res.stderr and "it/s" not in res.stderr and "img/s" not in res.stderr


def test_bar_shows_count_rate_and_eta_and_quiet_silences_it(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info", str(SAMPLE), "--stats", "--progress", "bar"]) == 0
    cap = capsys.readouterr()
    assert "8/8" in cap.err and "img/s" in cap.err and "<" in cap.err  # count, rate, elapsed<remaining
    assert "masks" in cap.err and cap.out.startswith("Dataset: ")
    for quiet in (["--quiet"], ["-q", "--progress", "bar"]):
        assert cli.main(["info", str(SAMPLE), "--stats", *quiet]) == 0
        cap = capsys.readouterr()
        assert cap.err == "" and cap.out.startswith("Dataset: ")
    assert cli.main(["export", str(SAMPLE), "--to", "binary-pngs", "--out", str(tmp_path / "q"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_progress_adapter_json_events_and_notes() -> None:
    import io

    from segstudio.commands.progress import Progress

    buf = io.StringIO()
    with Progress("predict", mode="json", stream=buf) as p:
        p.update(1, 2)
        p.note("failed: a.png: unreadable")
        p.update(2, 2, eta_s=0.0, loss=0.5)
    events = _json_lines(buf.getvalue())
    assert [e["event"] for e in events] == ["progress", "message", "progress", "done"]
    assert events[1]["text"] == "failed: a.png: unreadable"
    assert events[2]["loss"] == 0.5 and events[2]["eta_s"] == 0.0
    assert Progress("x", mode="auto", stream=io.StringIO()).mode == "none"  # not a terminal: nothing
