"""Issue 13, case 9: tests never write beside ../shared and never see what another test left behind.

The two tests run in file order: the first leaves state in the Montgomery workspace (as the loop test's training
once did, leaving a "current model"); the second must find a fresh workspace. The session-wide guard in
conftest.py fails the run if anything appeared in or beside the shared datasets.
"""

from __future__ import annotations

import os
from pathlib import Path

from segstudio.workspace import Workspace, workspace_dir_for


def test_a_workspace_of_a_shared_dataset_lives_in_the_tests_temp_home(montgomery: Path) -> None:
    folder = workspace_dir_for(montgomery)
    assert folder.is_relative_to(Path(os.environ["SEGSTUDIO_WORKSPACE_HOME"]).resolve())
    assert not folder.is_relative_to(montgomery.parents[2].resolve())  # not in or beside ../shared
    with Workspace.for_dataset(montgomery) as ws:
        ws.state.set("left_by_an_earlier_test", True)
        ws.reviews.set("cxr/MCUCXR_0001_0.png", "accepted")


def test_the_next_test_finds_a_fresh_workspace(montgomery: Path) -> None:
    with Workspace.for_dataset(montgomery) as ws:
        assert ws.state.get("left_by_an_earlier_test") is None
        assert ws.reviews.get("cxr/MCUCXR_0001_0.png").time is None  # never reviewed here


def test_a_passing_tests_folders_go_and_a_failing_tests_stay(pytester, monkeypatch) -> None:  # noqa: ANN001
    """The suite's runs and checkpoints once added up to ~22 GB and filled CI's disk half-way: a passing test's
    ``tmp_path`` and user folders are removed as it ends, a failing test's are kept for inspection. Run in a
    nested pytest session with this suite's conftest and settings."""
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text(encoding="utf-8"))
    pytester.makeini("[pytest]\ntmp_path_retention_policy = failed\n")
    pytester.makepyfile(test_dirs="""
        import os, pathlib

        def _record(tmp_path, name):
            home = pathlib.Path(os.environ["SEGSTUDIO_WORKSPACE_HOME"]).parent
            home.mkdir(parents=True, exist_ok=True)
            (home / "run.bin").write_bytes(b"x" * 1024)
            (tmp_path / "checkpoint.bin").write_bytes(b"x" * 1024)
            pathlib.Path(os.environ["DIRS_LOG"]).open("a").write(f"{name} {tmp_path} {home}\\n")

        def test_passes(tmp_path):
            _record(tmp_path, "passes")

        def test_fails(tmp_path):
            _record(tmp_path, "fails")
            assert False, "kept for inspection"
    """)
    log = pytester.path / "dirs.log"
    monkeypatch.setenv("DIRS_LOG", str(log))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--basetemp", str(pytester.path / "base"))
    result.assert_outcomes(passed=1, failed=1)
    dirs = {name: (Path(tmp), Path(home)) for name, tmp, home in (ln.split() for ln in log.read_text().splitlines())}
    assert not dirs["passes"][0].exists() and not dirs["passes"][1].exists()
    assert (dirs["fails"][0] / "checkpoint.bin").is_file() and (dirs["fails"][1] / "run.bin").is_file()
