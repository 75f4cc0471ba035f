"""The whole review–retrain loop headless, on the real Montgomery data, through the command line a script would use:
train a tiny model into the workspace → predict into the workspace → queue → save a correction through the
workspace API → retrain (the gate's verdict) → a promoted round → rollback — and the app, opened on that workspace
afterwards, shows the same current model, history and figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segstudio.cli import main
from segstudio.workspace import MaskSource, ReviewStatus, Workspace, workspace_dir_for
from segstudio.workspace.model_predictions import MODEL_METRICS_KEY
from segstudio.workspace.models import ModelAction

TINY = ["--set", "model.encoder=resnet18", "--set", "model.encoder_depth=3", "--set", "image_size=64",
        "--set", "batch_size=4", "--set", "epochs=1", "--set", "max_steps_per_epoch=2", "--set", "device=cpu",
        "--set", "num_workers=0"]


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    assert rc == 0, f"segstudio {' '.join(map(str, args))} -> {rc}\n{out.out}\n{out.err}"
    return out.out


@pytest.mark.slow
def test_the_loop_runs_headless_and_the_app_shows_what_it_did(montgomery: Path, capsys, qtbot) -> None:
    data = str(montgomery)
    folder = workspace_dir_for(montgomery)

    # 1. a tiny model, trained into the workspace: recorded as a run, and the workspace's first model
    _cli(capsys, "train", data, "--format", "class-folders", "--recipe", "lungs-lr", *TINY,
         "--workspace", folder, "--progress", "none")
    with Workspace(folder, read_only=True) as ws:
        first = ws.models.current()
        assert first is not None and ws.runs.get(first.run_id).status.value == "finished"
        assert ws.settings.dataset_format == "class-folders"

    # 2. predict every image into the workspace: the same figures the app stores
    _cli(capsys, "predict", first.checkpoint, data, "--format", "class-folders", "--out", folder.parent / "preds",
         "--workspace", folder, "--device", "cpu", "--backend", "torch", "--progress", "none")
    with Workspace(folder, read_only=True) as ws:
        entries = ws.metrics.entries(key=MODEL_METRICS_KEY)
        assert len(entries) == 40
        assert all(e.suspicion is not None and e.mean_dice is not None for e in entries)

    # 3. the queue, by the dataset's path (its workspace is found as the app finds it)
    queue = json.loads(_cli(capsys, "queue", data, "--strategy", "uncertainty", "--top", "5", "--json"))
    assert len(queue) == 5 and [q["rank"] for q in queue] == [1, 2, 3, 4, 5]
    assert [q["score"] for q in queue] == sorted((q["score"] for q in queue), reverse=True)
    top = queue[0]["sample_id"]

    # 4. a correction saved through the workspace API; the sample leaves the queue
    with Workspace(folder, dataset_root=montgomery) as ws:
        from segstudio.datasets.registry import open_dataset

        ds = open_dataset(montgomery, format="class-folders")
        mask = ds.load_gt(top).copy()
        mask[: mask.shape[0] // 8, :] = 0
        ws.save_mask(top, mask, source=MaskSource.CORRECTION, author="script")
        ws.reviews.set(top, ReviewStatus.CORRECTED, reviewer="script")
    after = json.loads(_cli(capsys, "queue", folder, "--strategy", "uncertainty", "--top", "0", "--json"))
    assert top not in [q["sample_id"] for q in after] and len(after) == 39

    # 5. a round with the workspace's gate: whatever the verdict, it is recorded with its figures
    round1 = json.loads(_cli(capsys, "retrain", folder, "--epochs", "1", "--device", "cpu", "--json",
                             "--progress", "none"))
    assert round1["verdict"] in ("promote", "not_proven", "refused")
    assert round1["decision"] == ("promoted" if round1["verdict"] == "promote" else "kept")
    assert top not in round1["validation_ids"] and round1["reviewed_samples"] == 1
    gate1 = round1["gate"]
    assert gate1["images"] == len(round1["validation_ids"]) >= 3
    assert gate1["ci_low"] <= gate1["mean_delta"] <= gate1["ci_high"]
    assert {c["name"] for c in gate1["per_class"]} == {"left lung", "right lung"}

    # 6. a round whose gate lets anything through (thresholds are settings): promoted by itself
    with Workspace(folder) as ws:
        ws.save_settings(ws.settings.replace(gate_min_gain=-1.0, gate_class_margin=1.0))
    round2 = json.loads(_cli(capsys, "retrain", folder, "--epochs", "1", "--device", "cpu", "--json",
                             "--progress", "none"))
    assert round2["verdict"] == "promote" and round2["decision"] == "promoted"
    assert round2["validation_ids"] == round1["validation_ids"]  # the frozen split

    # 7. roll back to the model before it
    _cli(capsys, "models", "rollback", folder, "--reason", "checked by hand: the old one is safer")
    listed = json.loads(_cli(capsys, "models", "list", folder, "--json"))
    actions = [h["action"] for h in listed["history"]]
    assert actions == ["adopt", "promote" if round1["decision"] == "promoted" else "refuse", "promote", "rollback"]
    promoted = listed["history"][2]
    assert promoted["figures"]["gate"]["ci_low"] == pytest.approx(round2["gate"]["ci_low"], abs=1e-5)
    with Workspace(folder, read_only=True) as ws:
        current = ws.models.current()
        history = ws.models.history()
    assert history[-1].action is ModelAction.ROLLBACK and history[-1].author == ""
    assert listed["current"]["checkpoint"] == str(current.checkpoint)
    assert current.checkpoint == Path(round2["base_checkpoint"])
    text = _cli(capsys, "models", "list", folder)
    assert "rollback" in text and "checked by hand" in text

    # 8. the app opened on that workspace: the same current model, history and figures
    from segstudio.gui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    assert win.open_dataset(folder) is not None
    assert win.training.chosen_model() == current.checkpoint
    panel = win.training_panel
    tree = panel.model_history.tree
    assert tree.topLevelItemCount() == len(history) == 4
    rows = [[tree.topLevelItem(i).text(c) for c in range(tree.columnCount())] for i in range(4)]
    assert [r[2] for r in rows] == ["rolled back to", "promoted", rows[2][2], "chosen"]
    g2 = round2["gate"]
    assert rows[1][4] == f"{g2['mean_delta']:+.4f} [{g2['ci_low']:+.4f}, {g2['ci_high']:+.4f}]"
    assert rows[1][3] == "better (proven)"
    assert "checked by hand" in rows[0][6]
    assert panel.model_label.toolTip() == str(current.checkpoint)
    win.close()
