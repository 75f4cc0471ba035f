"""Prediction from the app: predict the current image and all images in the background with the workspace's model,
columns and layers filling as results arrive, stop, the no-model message, stale marking after choosing another
model, the uncertainty heat map, and a correction that survives a prediction pass."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from segstudio.gui.loop.predictions_view import STALE_PRED_TITLE, UNC_LAYER
from segstudio.gui.main_window import MainWindow
from segstudio.gui.screen.editor import PRED_LAYER
from segstudio.workspace import MaskSource
from segstudio.workspace.model_predictions import MODEL_METRICS_KEY, uncertainty_path

TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, sample_dataset_path: Path) -> tuple[Path, Path]:
    """Two untrained tiny U-Nets (resnet18, 64 px) with different weights: a "current" and a "newer" model."""
    import torch

    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.checkpoint import save_checkpoint
    from segstudio.engine.models import build_model
    from segstudio.engine.task import resolve_task
    from segstudio.gui.loop.training import make_config

    ds = open_dataset(sample_dataset_path)
    cfg = make_config(recipe=None, overrides=["model.encoder=resnet18", "data.image_size=64",
                                              "model.encoder_weights=null"])
    task = resolve_task(ds.schema)
    root = tmp_path_factory.mktemp("models")
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model(cfg.model, out_channels=task.out_channels)
        out.append(save_checkpoint(root / f"model{seed}", model=model, config=cfg, task=task, schema=ds.schema))
    return out[0], out[1]




def _choose(win: MainWindow, checkpoint: Path) -> None:
    ws = win.review.workspace
    assert ws is not None
    ws.models.adopt(checkpoint, run_id="")
    win.training.sig_model_chosen.emit(checkpoint)


def _wait_job(qtbot, win: MainWindow, job: str, trigger) -> tuple[str, str, int, int]:  # noqa: ANN001
    with qtbot.waitSignal(win.predictions_view.inference.sig_ended, timeout=TIMEOUT_MS,
                          check_params_cb=lambda j, *_a: j == job) as blocker:
        trigger()
    return tuple(blocker.args)  # type: ignore[return-value]


def test_without_a_model_predicting_says_how_to_get_one(window: MainWindow, monkeypatch) -> None:
    seen: list[str] = []
    monkeypatch.setattr("segstudio.gui.loop.predictions_view.show_error", lambda title, msg, details="": seen.append(msg))
    window.actions_["predict_all"].trigger()
    window.actions_["predict_current"].trigger()
    assert len(seen) == 2 and all("Train a model or choose one in the run history" in m for m in seen)
    assert not window.predictions_view.inference.running()


def test_predict_current_image_shows_its_prediction_and_scores_at_once(window: MainWindow, qtbot, checkpoints) -> None:
    _choose(window, checkpoints[0])
    sid = window.session.current.sample.id
    assert window.editor.target.prediction is None
    job, outcome, done, total = _wait_job(qtbot, window, "current", window.actions_["predict_current"].trigger)
    assert (outcome, done, total) == ("finished", 1, 1)
    target = window.editor.target
    assert target.sample_id == sid and target.prediction is not None and target.prediction.shape == target.base.shape
    window.actions_["toggle_pred"].setChecked(True)
    assert window.canvas.layer(PRED_LAYER).array is not None and window.canvas.layer_visible(PRED_LAYER)
    model = window.browser.model_
    row = model.row_of(sid)
    assert model.data(model.index(row, 3)) not in ("", "—", None)  # the Dice column
    ws = window.review.workspace
    entry = ws.metrics.get(sid, key=MODEL_METRICS_KEY)
    assert entry is not None and entry.mean_dice is not None and 0.0 <= entry.suspicion <= 1.0
    assert set(entry.data) == {"checkpoint", "stamp", "uncertainty", "change", "comparison"}
    assert entry.data["checkpoint"] == str(checkpoints[0].resolve()) and entry.data["change"] is None
    assert entry.data["comparison"]["mean_dice"] == pytest.approx(entry.mean_dice)
    pred = ws.predictions.get(sid, checkpoint_id=str(checkpoints[0].resolve()))
    assert pred is not None and uncertainty_path(pred.path).is_file()
    # the next image reuses the loaded model
    loaded = dict(window.predictions_view.inference.predictors._items)
    window.go_next()
    qtbot.waitUntil(lambda: window.editor.target.sample_id != sid, timeout=10_000)
    _wait_job(qtbot, window, "current", window.actions_["predict_current"].trigger)
    assert window.editor.target.prediction is not None
    assert len(loaded) == 1 and window.predictions_view.inference.predictors._items == loaded


def test_predict_all_fills_the_columns_as_results_arrive_then_another_model_marks_them_stale(
        window: MainWindow, qtbot, checkpoints) -> None:
    _choose(window, checkpoints[0])
    pv, model = window.predictions_view, window.browser.model_
    arrived: list[str] = []
    pv.inference.sig_predicted.connect(lambda ev: arrived.append(ev.sample_id))
    progress: list[tuple[int, int]] = []
    pv.inference.sig_progress.connect(lambda d, t, _e: progress.append((d, t)))
    job, outcome, done, total = _wait_job(qtbot, window, "batch", window.actions_["predict_all"].trigger)
    n = len(window.session.dataset)
    assert (outcome, done, total) == ("finished", n, n)
    assert progress[0] == (0, n) and progress[-1] == (n, n)
    assert pv.progress.value() == n and not pv.progress.isVisible()
    assert sorted(arrived) == sorted(s.id for s in window.session.dataset.samples)
    assert all(not math.isnan(model._dice[r]) for r in range(n))
    assert not window.browser.view.isColumnHidden(3)
    assert window.editor.target.prediction is not None  # the shown sample's layer came with its result
    # another model: every prediction is now by an older model, and says so
    _choose(window, checkpoints[1])
    sid = window.session.current.sample.id
    assert all(model.is_stale(s.id) for s in window.session.dataset.samples)
    row = model.row_of(sid)
    assert "older model" in model.data(model.index(row, 3), Qt.ItemDataRole.ToolTipRole)
    assert model.data(model.index(row, 3), Qt.ItemDataRole.FontRole).italic()
    assert pv.stale_label.text() == "prediction by an older model"
    assert window.layers_panel.rows[PRED_LAYER].visible.text() == STALE_PRED_TITLE
    assert window.editor.target.prediction is not None  # still shown, marked stale
    # predicting the current image again with the new model clears its mark and measures the change
    _wait_job(qtbot, window, "current", window.actions_["predict_current"].trigger)
    assert not model.is_stale(sid) and pv.stale_label.text() == ""
    entry = window.review.workspace.metrics.get(sid, key=MODEL_METRICS_KEY)
    assert entry.data["checkpoint"] == str(checkpoints[1].resolve())
    assert entry.data["change"] is not None and 0.0 <= entry.data["change"] <= 1.0
    others = [s.id for s in window.session.dataset.samples if s.id != sid]
    assert all(model.is_stale(o) for o in others)


def test_predict_selected_predicts_only_the_selection(window: MainWindow, qtbot, checkpoints) -> None:
    _choose(window, checkpoints[0])
    ids = [s.id for s in window.session.dataset.samples][2:4]
    view = window.browser.view
    flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    for k, sid in enumerate(ids):  # the selection a Ctrl-click would make
        index = window.browser.proxy.index(window.browser.proxy.proxy_row_of(window.browser.model_.row_of(sid)), 0)
        view.selectionModel().select(index, flags if k == 0 else QItemSelectionModel.SelectionFlag.Select
                                     | QItemSelectionModel.SelectionFlag.Rows)
    assert sorted(window.browser.selected_ids()) == sorted(ids)
    arrived: list[str] = []
    window.predictions_view.inference.sig_predicted.connect(lambda ev: arrived.append(ev.sample_id))
    _, outcome, done, total = _wait_job(qtbot, window, "batch", window.actions_["predict_selected"].trigger)
    assert (outcome, done, total) == ("finished", 2, 2) and sorted(arrived) == sorted(ids)


def test_stop_ends_a_prediction_run_early_and_the_window_stays_usable(window: MainWindow, qtbot, checkpoints) -> None:
    _choose(window, checkpoints[0])
    pv = window.predictions_view
    assert not window.actions_["predict_stop"].isEnabled()  # nothing to stop yet

    def start_and_stop() -> None:
        assert window.actions_["predict_all"].isEnabled()
        window.actions_["predict_all"].trigger()
        assert pv.stop_button.isVisible()
        pv.stop_button.click()  # before the model has even loaded: nothing is predicted

    _, outcome, done, total = _wait_job(qtbot, window, "batch", start_and_stop)
    assert outcome == "cancelled" and done < total
    assert not pv.stop_button.isVisible() and not pv.inference.running()
    window.go_next()  # still usable


def test_uncertainty_layer_is_off_by_default_toggles_and_survives_reopening(
        window: MainWindow, qtbot, checkpoints, sample_dataset_path: Path) -> None:
    assert not window.layers_panel.layer_visible(UNC_LAYER) and not window.actions_["toggle_uncertainty"].isChecked()
    _choose(window, checkpoints[0])
    _wait_job(qtbot, window, "current", window.actions_["predict_current"].trigger)
    window.actions_["toggle_uncertainty"].setChecked(True)
    layer = window.canvas.layer(UNC_LAYER)
    assert window.layers_panel.layer_visible(UNC_LAYER) and window.canvas.layer_visible(UNC_LAYER)
    assert layer.array is not None and layer.array.shape[2] == 4 and layer.array.shape[:2] == window.editor.target.base.shape
    assert layer.array[..., 3].max() > 0  # an untrained model is unsure somewhere
    window.actions_["toggle_uncertainty"].setChecked(False)
    assert not window.canvas.layer_visible(UNC_LAYER)
    # reopened: the prediction and its uncertainty come back from the workspace
    sid = window.session.current.sample.id
    window.open_dataset(sample_dataset_path)
    qtbot.waitUntil(lambda: window.editor.target is not None and window.editor.target.sample_id == sid, timeout=10_000)
    assert window.editor.target.prediction is not None
    window.actions_["toggle_uncertainty"].setChecked(True)
    assert window.canvas.layer(UNC_LAYER).array is not None


def test_a_prediction_pass_never_overwrites_a_correction_or_the_gt(window: MainWindow, qtbot, checkpoints,
                                                                   sample_dataset_path: Path) -> None:
    gt_files = sorted(p for p in sample_dataset_path.rglob("*") if p.is_file())
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in gt_files}
    sid = window.session.current.sample.id
    corrected = np.array(window.editor.mask.array)
    corrected[:40, :40] = 1
    window.editor.replace_mask(corrected)
    window.save_now()
    ws = window.review.workspace
    latest = ws.versions.latest(sid)
    assert latest is not None and latest.source == MaskSource.CORRECTION
    _choose(window, checkpoints[0])
    _wait_job(qtbot, window, "batch", window.actions_["predict_all"].trigger)
    after = ws.versions.latest(sid)
    assert after.version == latest.version and after.source == MaskSource.CORRECTION
    assert np.array_equal(ws.versions.load(after), corrected)
    assert np.array_equal(window.editor.mask.array, corrected) and not window.editor.dirty
    # shown again (the prefetched copy was dropped when its prediction landed): the correction is the base
    window.go_next()
    window.go_previous()
    qtbot.waitUntil(lambda: window.editor.target.sample_id == sid, timeout=10_000)
    assert window.editor.target.base_version == latest.version and np.array_equal(window.editor.mask.array, corrected)
    assert window.editor.target.prediction is not None
    # scored against the correction, not the GT
    entry = ws.metrics.get(sid, key=MODEL_METRICS_KEY)
    assert entry is not None and entry.data["comparison"] is not None
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in gt_files} == before


def test_stop_mid_run_takes_effect_within_a_batch(qtbot, montgomery: Path, checkpoints) -> None:
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    assert win.open_dataset(montgomery, format_name="class-folders") is not None
    qtbot.waitUntil(lambda: win.editor.target is not None, timeout=30_000)
    _choose(win, checkpoints[0])
    pv = win.predictions_view
    first: list[int] = []

    def on_predicted(_ev: object) -> None:
        if not first:
            first.append(1)
            pv.stop_button.click()

    pv.inference.sig_predicted.connect(on_predicted)
    try:
        _, outcome, done, total = _wait_job(qtbot, win, "batch", win.actions_["predict_all"].trigger)
    finally:
        pv.inference.stop_and_wait(60)
    assert outcome == "cancelled" and 1 <= done < total
    # the batch in flight finishes (4 images); anything beyond is what was already on its way to the GUI
    assert done <= 3 * 4, done
    assert win.review.workspace.versions.latest(win.session.current.sample.id) is None  # nothing became a correction


def test_the_app_and_segstudio_predict_give_the_same_masks(window: MainWindow, qtbot, tmp_path: Path,
                                                           sample_dataset_path: Path, capsys) -> None:
    """One inference path: a checkpoint whose config recommends mirrored TTA and keep-largest + fill-holes gives,
    image for image, the same mask in the app as from `segstudio predict` (which prints what it ran), and a
    different one from the plain network (`--plain`), so the recommendation is what both applied."""
    import cv2
    import torch

    from segstudio.cli import main
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.checkpoint import save_checkpoint
    from segstudio.engine.config import TrainConfig
    from segstudio.engine.models import build_model
    from segstudio.engine.task import resolve_task
    from segstudio.gui.loop.training import make_config

    ds = open_dataset(sample_dataset_path)
    cfg = make_config(recipe="lungs-lr", overrides=["model.encoder=resnet18", "data.image_size=64"])
    assert cfg.infer.tta == ("hflip",) and cfg.infer.post == ("keep_largest", "fill_holes")  # the recipe's
    task = resolve_task(ds.schema)
    torch.manual_seed(3)
    ckpt = save_checkpoint(tmp_path / "model", model=build_model(cfg.model, out_channels=task.out_channels),
                           config=cfg, task=task, schema=ds.schema)
    assert TrainConfig.load(ckpt / "config.json").infer == cfg.infer  # stored in the checkpoint
    assert main(["predict", str(ckpt), str(sample_dataset_path), "--out", str(tmp_path / "cli"), "-q"]) == 0
    assert main(["predict", str(ckpt), str(sample_dataset_path), "--out", str(tmp_path / "plain"), "--plain",
                 "-q"]) == 0
    err = capsys.readouterr().err
    assert "inference: resize · TTA hflip · post keep_largest, fill_holes" in err
    assert "each image cropped to its content box, as in training" in err  # lungs-lr crops away a film's bands
    _choose(window, ckpt)
    assert "No model predictions yet" in window.review_panel.queue_info.text()
    _wait_job(qtbot, window, "batch", window.actions_["predict_all"].trigger)
    # the queue's line follows the new predictions without waiting for the next image to be shown
    assert window.review_panel.queue_info.text().startswith(f"{len(window.session.dataset.samples)} in the queue")
    differs = 0
    for s in window.session.dataset.samples:
        app = window.review.prediction_mask(s.id)
        rel = Path(s.id).with_suffix(".png")
        cli = cv2.imread(str(tmp_path / "cli" / rel), cv2.IMREAD_UNCHANGED)
        plain = cv2.imread(str(tmp_path / "plain" / rel), cv2.IMREAD_UNCHANGED)
        assert app is not None and cli is not None and app.shape == cli.shape
        assert np.array_equal(app, cli), s.id
        differs += int(not np.array_equal(cli, plain))
    assert differs > 0


def test_predict_here_proposes_the_models_answer_in_the_box(window: MainWindow, qtbot, checkpoints,
                                                            monkeypatch) -> None:
    """Predict here (Shift+P): a dragged box is predicted alone in the background and the model's answer for the
    selected class there arrives as a proposal (the label unchanged), equal to the engine's own answer for that
    box; Enter accepts it. Without a model it says how to get one."""
    from canvas_driver import drag

    from segstudio.engine.infer import predict_region
    from segstudio.engine.predictor import Predictor, recommended_options

    ed = window.editor
    window.actions_["tool_predict_here"].trigger()
    errors: list[str] = []
    monkeypatch.setattr("segstudio.gui.loop.predictions_view.show_error",
                        lambda title, msg, details="": errors.append(msg))
    h, w = ed.mask.shape
    path = [(w * 0.2, h * 0.2), (w * 0.5, h * 0.5), (w * 0.7, h * 0.8)]
    drag(window.canvas, path)
    assert errors and "Train a model or choose one" in errors[0] and ed.proposal is None
    _choose(window, checkpoints[0])
    cid = next(c.id for c in ed.target.schema if c.name == "left lung")
    window.class_panel.select_class(cid)
    before = ed.mask.array.copy()
    box = (round(h * 0.2), round(w * 0.2), round(h * 0.8), round(w * 0.7))
    drag(window.canvas, path)
    qtbot.waitUntil(lambda: ed.proposal is not None, timeout=TIMEOUT_MS)
    prop = ed.proposal
    assert prop.tool == "Predict here" and prop.class_id == cid
    assert np.array_equal(ed.mask.array, before)
    predictor = Predictor.load([checkpoints[0]], options=recommended_options(checkpoints[0], batch_size=1,
                                                                             backend="torch"))
    expect = predict_region(predictor, ed.target.image, box) == cid
    assert np.array_equal(prop.plane, expect)
    assert not prop.region[: box[0]].any() and prop.region[box[0]:box[2], box[1]:box[3]].all()
    window.actions_["finish_shape"].trigger()
    inside = (slice(box[0], box[2]), slice(box[1], box[3]))
    assert np.array_equal(ed.mask.plane(cid)[inside], expect[inside])
