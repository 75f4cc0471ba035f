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
