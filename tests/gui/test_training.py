"""Background training: the generator worker, cancel within a batch, errors that leave the window usable, the
training panel training a tiny model into the workspace's run history, and closing the window mid-run."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from segstudio.engine.events import BatchEnd, Finished
from segstudio.gui.common.workers import (
    GeneratorWorker,
    NonFiniteLossError,
    describe_error,
    guard_finite_loss,
)
from segstudio.gui.loop.training import make_config, recipe_description, summarise
from segstudio.gui.loop.training_panel import NO_DATA_TEXT
from segstudio.gui.main_window import MainWindow
from segstudio.workspace import RunStatus

REPO = Path(__file__).resolve().parents[2]


def _tiny(panel, *, epochs: int = 1, steps: int = 2, batch: int = 2, loss: str | None = None) -> None:
    """The lungs recipe shrunk to seconds on the CPU: resnet18, 64 px, a 20 % hold-out to score the epochs on."""
    panel.recipe.setCurrentIndex(panel.recipe.findData("lungs-lr"))
    panel.encoder.setCurrentText("resnet18")
    panel.epochs.setValue(epochs)
    panel.image_size.setValue(64)
    panel.batch_size.setValue(batch)
    panel.holdout.setValue(20)
    panel.steps.setValue(steps)
    panel.device.set_device("cpu")
    panel.threads.setValue(1)
    if loss is not None:
        panel.loss.setText(loss)


def _close_next_message_box(seen: list[tuple[str, str]]) -> None:
    box = QApplication.activeModalWidget()
    if isinstance(box, QMessageBox):
        seen.append((box.text(), box.detailedText()))
        box.done(0)
    else:
        QTimer.singleShot(20, lambda: _close_next_message_box(seen))




# the worker ---------------------------------------------------------------------------------------------------------

def test_worker_runs_a_generator_off_the_gui_thread_and_reports_progress_and_finish(qtbot) -> None:
    threads: list[threading.Thread] = []

    def job(token: Any) -> Iterator[int]:
        threads.append(threading.current_thread())
        for i in range(5):
            yield i * i

    worker = GeneratorWorker(job, name="squares")
    got: list[int] = []
    started: list[bool] = []
    finished: list[object] = []
    worker.sig_started.connect(lambda: started.append(True))
    worker.sig_progress.connect(got.append)
    worker.sig_finished.connect(finished.append)
    worker.sig_errored.connect(lambda m, t: pytest.fail(f"errored: {m}"))
    with qtbot.waitSignal(worker.sig_finished, timeout=5000):
        worker.start()
    assert started == [True]
    assert got == [0, 1, 4, 9, 16]
    assert finished == [16]
    assert threads and threads[0] is not threading.main_thread()
    assert worker.outcome == "finished" and not worker.running
    with pytest.raises(RuntimeError, match="started already"):
        worker.start()


def test_worker_turns_an_exception_into_an_errored_signal_with_traceback(qtbot) -> None:
    def job(token: Any) -> Iterator[int]:
        yield 1
        raise ValueError("the batch exploded")

    worker = GeneratorWorker(job, name="boom")
    finished: list[object] = []
    worker.sig_finished.connect(finished.append)
    with qtbot.waitSignal(worker.sig_errored, timeout=5000) as blocker:
        worker.start()
    message, details = blocker.args
    assert message == "ValueError: the batch exploded"
    assert "Traceback" in details and "the batch exploded" in details
    assert finished == [] and worker.outcome == "errored"


def test_worker_stop_and_wait_cancels_a_running_job_and_delivers_the_cancelled_signal(qtbot) -> None:
    def job(token: Any) -> Iterator[int]:
        i = 0
        while not token.cancelled:
            i += 1
            time.sleep(0.01)
            yield i

    worker = GeneratorWorker(job, name="endless")
    cancelled: list[object] = []
    worker.sig_cancelled.connect(cancelled.append)
    with qtbot.waitSignal(worker.sig_progress, timeout=5000):
        worker.start()
    assert worker.running
    assert worker.stop_and_wait(5.0)
    # delivered before stop_and_wait returned, without spinning the event loop
    assert len(cancelled) == 1 and isinstance(cancelled[0], int)
    assert worker.outcome == "cancelled" and not worker.running


def test_a_jobs_clean_up_runs_before_its_outcome_is_signalled_and_never_blocks_the_window(qtbot) -> None:
    """A job left mid-way (here it fails) is closed on its thread; only then is the outcome signalled, so the GUI
    thread, which joins the worker's thread on that signal, never waits there while the clean-up (a run's last
    writes) goes on: its event loop keeps turning."""
    from PySide6.QtCore import QTimer

    closed: list[float] = []

    class Job:
        def __init__(self) -> None:
            self.n = 0

        def __iter__(self) -> Job:
            return self

        def __next__(self) -> int:
            self.n += 1
            if self.n > 2:
                raise OSError("the disk went away")
            return self.n

        def close(self) -> None:
            time.sleep(0.8)  # a slow clean-up: files flushed, loaders shut down
            closed.append(time.monotonic())

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    worker = GeneratorWorker(lambda _token: Job(), name="slow-close")
    errored: list[float] = []
    worker.sig_errored.connect(lambda _m, _d: errored.append(time.monotonic()))
    with qtbot.waitSignal(worker.sig_errored, timeout=5000):
        worker.start()
    timer.stop()
    assert closed and errored and closed[0] <= errored[0] and worker.outcome == "errored"
    during = [t for t in ticks if t <= closed[0]]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert during and max(gaps, default=0.0) < 0.45, f"the GUI thread stalled for {max(gaps):.2f} s"


def test_readable_messages_for_gpu_out_of_memory_and_a_diverging_loss() -> None:
    from segstudio.engine.events import BatchEnd, EpochEnd

    oom = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)")
    assert "GPU ran out of memory" in describe_error(oom) and "batch size" in describe_error(oom)
    ok = BatchEnd(epoch=0, step=1, steps=4, global_step=1, loss=0.7, lr=1e-3, eta_s=None, parts={"ce": 0.7})
    unmeasured = BatchEnd(epoch=0, step=2, steps=4, global_step=2, loss=math.nan, lr=1e-3, eta_s=None, parts={})  # CUDA steps whose loss was not read
    nan = BatchEnd(epoch=0, step=3, steps=4, global_step=3, loss=math.nan, lr=1e-3, eta_s=None,
                   parts={"ce": math.nan})
    assert list(guard_finite_loss([ok, unmeasured])) == [ok, unmeasured]
    with pytest.raises(NonFiniteLossError) as info:
        list(guard_finite_loss([ok, nan]))
    text = describe_error(info.value)
    assert "diverged" in text and "learning rate" in text
    bad_epoch = EpochEnd(epoch=0, train_loss=math.inf, val_loss=None, dice=math.nan, iou=math.nan, pixel_accuracy=math.nan,
                         per_class=(), lr=1e-3, seconds=1.0, eta_s=None, monitor=math.nan, improved=False)
    with pytest.raises(NonFiniteLossError):
        list(guard_finite_loss([bad_epoch]))


@pytest.mark.slow
def test_cancel_takes_effect_within_one_batch_of_a_real_training(qtbot, sample_dataset_path: Path, tmp_path: Path) -> None:
    from segstudio.datasets.registry import open_dataset
    from segstudio.gui.loop.training import make_config

    ds = open_dataset(sample_dataset_path)
    cfg = make_config(recipe="lungs-lr", overrides=["model.encoder=resnet18", "epochs=5", "data.image_size=64",
                                                    "data.batch_size=1", "device=cpu"])
    batch_times: list[float] = []

    def job(token: Any) -> Iterator[Any]:
        from segstudio.engine.events import BatchEnd
        from segstudio.engine.train import train

        for ev in train(cfg, ds, run_dir=tmp_path / "run", cancel=token):
            if isinstance(ev, BatchEnd):
                batch_times.append(time.monotonic())
            yield ev

    worker = GeneratorWorker(job, name="cancel-test")
    cancel_at: list[float] = []

    def on_progress(ev: object) -> None:
        if isinstance(ev, BatchEnd) and not cancel_at:
            cancel_at.append(time.monotonic())
            worker.cancel()

    worker.sig_progress.connect(on_progress)
    with qtbot.waitSignal(worker.sig_cancelled, timeout=120_000) as blocker:
        worker.start()
    after = [t for t in batch_times if t > cancel_at[0]]
    assert len(after) <= 1, f"{len(after)} batches ran after the cancel"
    last = blocker.args[0]
    assert isinstance(last, Finished) and last.cancelled
    assert (tmp_path / "run" / "checkpoints" / "last" / "config.json").is_file()


# the panel in the window -------------------------------------------------------------------------------------------

def test_the_first_window_does_not_import_torch(sample_dataset_path: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from segstudio.gui.main_window import MainWindow\n"
        "w = MainWindow(); w.show(); app.processEvents()\n"
        f"w.open_dataset({str(sample_dataset_path)!r}); app.processEvents()\n"
        "w.training_panel.current_config()\n"
        "print('torch' in sys.modules)\n"
    )
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    env |= {v: str(tmp_path / v.lower()) for v in ("SEGSTUDIO_CONFIG_DIR", "SEGSTUDIO_STATE_DIR",
                                                   "SEGSTUDIO_CACHE_DIR", "SEGSTUDIO_DATA_DIR",
                                                   "SEGSTUDIO_WORKSPACE_HOME")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_training_panel_trains_a_tiny_model_into_the_run_history(window: MainWindow, qtbot) -> None:
    panel = window.training_panel
    _tiny(panel)
    ws = window.review.workspace
    assert ws is not None and ws.runs.all() == []
    window.actions_["train_start"].trigger()
    assert window.training.running and not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    qtbot.waitUntil(lambda: not window.training.running, timeout=120_000)
    runs = ws.runs.all()
    assert len(runs) == 1
    run = runs[0]
    assert run.status is RunStatus.FINISHED, run.message
    assert run.folder.parent == ws.folder / "runs"
    assert (run.folder / "checkpoints" / "last" / "config.json").is_file()
    assert run.config["model"]["encoder"] == "resnet18" and run.config["data"]["image_size"] == 64
    assert run.best_metric is not None and run.best_metric_name == "dice"
    # live curves: per-batch loss points and one Dice point per class
    loss = {s.name: s for s in panel.loss_plot.series()}
    assert len(loss["train (batch)"].ys) == 2 and all(math.isfinite(v) for v in loss["train (batch)"].ys)
    dice = {s.name: s for s in panel.metric_plot.series()}
    assert {"left lung", "right lung"} <= set(dice) and len(dice["left lung"].ys) == 1
    assert "epoch 1/1" in panel.log_view.toPlainText()
    # the recipe averages its weights (SWA): their score on the hold-out is on no epoch's curve, so it is drawn as a
    # point of its own at the last epoch, logged, and named when it is the run's best
    swa = json.loads((run.folder / "checkpoints" / "swa" / "config.json").read_text(encoding="utf-8"))["metrics"]
    assert dice["SWA weights"].xs == (1.0,) and dice["SWA weights"].ys == pytest.approx((swa["dice"],))
    assert f"(SWA) score Dice {swa['dice']:.3f}" in panel.log_view.toPlainText()
    assert ("(the SWA weights)" in panel.state_label.text()) == (swa["monitor"] == pytest.approx(run.best_metric))
    # the history lists it; "use this model" makes its checkpoint the workspace's model
    assert panel.history.run_ids() == [run.id]
    panel.monitor.reset()
    panel.monitor.show_run(run)  # what picking a past run in the history shows: its SWA point again
    shown = {s.name: s for s in panel.metric_plot.series()}
    assert shown["SWA weights"].xs == (1.0,) and shown["SWA weights"].ys == pytest.approx((swa["dice"],))
    panel.history.select_run(run.id)
    panel.history.use_button.click()
    chosen = window.training.chosen_model()
    assert chosen is not None and chosen.parent.parent == run.folder and (chosen / "config.json").is_file()
    assert chosen.name in panel.history.model_label.text()
    assert panel.start_button.isEnabled()


def test_the_hold_out_follows_the_recipe_and_goes_into_the_run_config(window: MainWindow) -> None:
    panel = window.training_panel
    panel.recipe.setCurrentIndex(panel.recipe.findData("lungs-lr"))
    # the small-data recipes train on every image: the field says so in words, not "0 %"
    assert panel.holdout.value() == 0 and panel.holdout.text() == "none: every image trains"
    assert panel.current_config().data.val_fraction == 0
    panel.recipe.setCurrentIndex(panel.recipe.findData(""))  # the engine's defaults keep a fifth
    assert panel.holdout.value() == 20 and panel.current_config().data.val_fraction == 0.2
    panel.recipe.setCurrentIndex(panel.recipe.findData("lungs-lr"))
    panel.holdout.setValue(25)
    assert "data.val_fraction=0.25" in panel.overrides()
    cfg = panel.current_config()
    assert cfg.data.val_fraction == 0.25 and cfg.name == "lungs-lr" and cfg.swa  # the rest stays the recipe's


def test_the_ensemble_field_follows_the_recipe_and_goes_into_the_run_config(window: MainWindow) -> None:
    panel = window.training_panel
    panel.recipe.setCurrentIndex(panel.recipe.findData(""))
    assert panel.members.value() == 1 and panel.members.text() == "one network"
    assert panel.current_config().model.members == 1
    panel.members.setValue(3)
    assert "model.members=3" in panel.overrides() and panel.current_config().model.members == 3
    panel.recipe.setCurrentIndex(panel.recipe.findData("lungs-lr"))  # a recipe sets the field to its own
    assert panel.members.value() == panel.current_config().model.members == make_config(recipe="lungs-lr").model.members


def test_a_long_recipe_description_shows_its_first_sentences_and_the_whole_text_on_hover(window: MainWindow) -> None:
    panel = window.training_panel
    full = recipe_description("lesion")
    panel.recipe.setCurrentIndex(panel.recipe.findData("lesion"))
    shown = panel.description.text()
    # what the recipe is, in whole sentences, then an ellipsis; why its settings are what they are, on hover
    assert len(shown) < len(full) and shown.endswith(" …") and full.startswith(shown[:-2])
    assert shown[:-2].endswith(".") and panel.description.toolTip() == full
    # a short description shows whole, with nothing more to hover for
    panel.recipe.setCurrentIndex(panel.recipe.findData(""))
    assert panel.description.text() == "The engine's defaults: U-Net, CE + Dice."
    assert panel.description.toolTip() == ""


def test_the_training_state_stops_asking_for_a_dataset_once_one_is_open(show_window, sample_dataset_path) -> None:
    win = show_window()
    panel = win.training_panel
    assert panel.state_label.text() == NO_DATA_TEXT and not panel.start_button.isEnabled()
    assert win.open_dataset(sample_dataset_path) is not None
    assert panel.start_button.isEnabled()
    assert panel.state_label.text() != NO_DATA_TEXT and "Ready to train" in panel.state_label.text()


def test_summarise_keeps_whole_sentences_and_does_not_split_numbers() -> None:
    text = "First part, a 0.5 weight. Second, e.g. a detail. Third sentence that is long enough to be cut."
    assert summarise(text, limit=len(text)) == text
    assert summarise(text, limit=50) == "First part, a 0.5 weight. Second, e.g. a detail. …"
    assert summarise(text, limit=10) == "First part, a 0.5 weight. …"  # at least the first sentence


def test_an_exception_inside_training_shows_an_error_and_the_window_stays_usable(window: MainWindow, qtbot) -> None:
    panel = window.training_panel
    _tiny(panel, loss="0.5*nosuchloss + 0.5*dice")
    seen: list[tuple[str, str]] = []
    QTimer.singleShot(20, lambda: _close_next_message_box(seen))
    assert panel.start_training() is not None  # the loss name is judged by the engine, inside the worker
    qtbot.waitUntil(lambda: bool(seen), timeout=120_000)
    text, details = seen[0]
    assert "nosuchloss" in text and "dice" in text  # the unknown key and the valid ones
    assert "Traceback" in details
    qtbot.waitUntil(lambda: not window.training.running, timeout=10_000)
    run = window.review.workspace.runs.all()[0]
    assert run.status is RunStatus.FAILED and "nosuchloss" in run.message
    assert panel.error_label.isVisible() and "nosuchloss" in panel.error_label.text()
    # the window still works: navigation, and a corrected config trains
    first = window.session.current.sample.id
    window.go_next()
    assert window.session.current.sample.id != first
    assert panel.start_button.isEnabled()
    panel.loss.setText("0.5*ce + 0.5*dice")
    assert panel.start_training() is not None
    qtbot.waitUntil(lambda: not window.training.running, timeout=120_000)
    assert window.review.workspace.runs.all()[0].status is RunStatus.FINISHED


def test_closing_the_window_during_training_asks_then_stops_and_keeps_the_last_checkpoint(
        window: MainWindow, qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    panel = window.training_panel
    _tiny(panel, epochs=20, steps=0, batch=1)
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked: list[str] = []

    def question(parent, title, text, *args, **kwargs):  # noqa: ANN001, ANN202
        asked.append(text)
        return answers[len(asked) - 1]

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    batches: list[object] = []
    window.training.sig_event.connect(lambda ev: batches.append(ev) if isinstance(ev, BatchEnd) else None)
    run = panel.start_training()
    assert run is not None
    qtbot.waitUntil(lambda: bool(batches), timeout=120_000)
    assert not window.close()  # "No": keep training, the window stays
    assert window.isVisible() and window.training.running and len(asked) == 1
    assert window.close()  # "Yes": stop, wait for the last checkpoint, close
    assert len(asked) == 2 and not window.isVisible()
    assert not window.training.running
    rec = window.training.run
    assert rec is not None and rec.status is RunStatus.CANCELLED
    assert (rec.folder / "checkpoints" / "last" / "config.json").is_file()
    assert "last checkpoint" in rec.message


@pytest.mark.slow
def test_a_stopped_run_resumes_from_its_last_checkpoint_in_the_same_folder(window: MainWindow, qtbot) -> None:
    panel = window.training_panel
    _tiny(panel, epochs=3, steps=1)
    batches: list[object] = []
    window.training.sig_event.connect(lambda ev: batches.append(ev) if isinstance(ev, BatchEnd) else None)
    run = panel.start_training()
    assert run is not None
    qtbot.waitUntil(lambda: bool(batches), timeout=120_000)
    panel.stop_training()
    qtbot.waitUntil(lambda: not window.training.running, timeout=120_000)
    stopped = window.review.workspace.runs.get(run.id)
    assert stopped.status is RunStatus.CANCELLED
    panel.history.select_run(run.id)
    assert panel.history.resume_button.isEnabled()
    panel.history.resume_button.click()
    assert window.training.running and not panel.history.resume_button.isEnabled()
    qtbot.waitUntil(lambda: not window.training.running, timeout=120_000)
    runs = window.review.workspace.runs.all()
    assert [r.id for r in runs] == [run.id]  # the same run, not a new one
    assert runs[0].status is RunStatus.FINISHED, runs[0].message
    import json

    assert json.loads((run.folder / "run.json").read_text(encoding="utf-8"))["epochs_completed"] == 3
    # each epoch at most once in the curves, ending with the last (an epoch whose validation the stop cut short
    # is kept as trained but has no scores, so it may be missing)
    epochs = [int(float(line.split(",")[0]))
              for line in (run.folder / "curves.csv").read_text(encoding="utf-8").strip().splitlines()[1:]]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 2
    panel.history.select_run(run.id)
    assert not panel.history.resume_button.isEnabled()  # finished: nothing to resume


def test_devices_are_detected_in_the_background_when_asked(qtbot) -> None:
    from segstudio.gui.loop.device_combo import DeviceCombo

    combo = DeviceCombo()
    qtbot.addWidget(combo)
    combo.set_device("cpu")
    worker = combo.detect()
    qtbot.waitUntil(lambda: worker.done, timeout=60_000)
    assert worker.outcome == "finished"
    keys = [combo.itemData(i) for i in range(combo.count())]
    assert keys[0] == "auto" and "cpu" in keys
    assert combo.device() == "cpu"  # the choice survives the refresh


def test_opening_another_dataset_during_training_asks_and_stops_the_run_first(
        window: MainWindow, qtbot, monkeypatch: pytest.MonkeyPatch, sample_dataset_path: Path) -> None:
    panel = window.training_panel
    _tiny(panel, epochs=20, steps=0, batch=1)
    answers = iter([QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: next(answers)))
    batches: list[object] = []
    window.training.sig_event.connect(lambda ev: batches.append(ev) if isinstance(ev, BatchEnd) else None)
    run = panel.start_training()
    assert run is not None
    qtbot.waitUntil(lambda: bool(batches), timeout=120_000)
    old_ws = window.review.workspace
    assert window.open_dataset(sample_dataset_path) is None  # "No": nothing changes
    assert window.training.running and window.review.workspace is old_ws
    assert window.open_dataset(sample_dataset_path) is not None  # "Yes": the run stops, then the dataset opens
    assert not window.training.running
    runs = window.review.workspace.runs.all()
    assert [r.id for r in runs] == [run.id] and runs[0].status is RunStatus.CANCELLED
    assert panel.start_button.isEnabled() and panel.history.run_ids() == [run.id]


def test_curve_plot_draws_each_series_in_its_colour_and_breaks_lines_at_nan(qtbot) -> None:
    import numpy as np

    from segstudio.gui.common.qimage import qimage_to_array
    from segstudio.gui.loop.curve_plot import CurvePlot, Series

    plot = CurvePlot("Dice", x_label="epoch", y_range=(0.0, 1.0))
    qtbot.addWidget(plot)
    plot.resize(400, 240)

    def count(colour: tuple[int, int, int]) -> int:
        img = qimage_to_array(plot.grab().toImage())[..., :3].astype(int)
        return int(np.count_nonzero(np.abs(img - np.array(colour)).sum(axis=2) < 30))

    assert count((255, 0, 0)) == 0
    plot.set_series([Series("a", (255, 0, 0), (1.0, 2.0, 3.0), (0.1, 0.5, 0.9))])
    solid = count((255, 0, 0))
    assert solid > 100
    plot.set_series([Series("a", (255, 0, 0), (1.0, 2.0, 3.0), (0.1, math.nan, 0.9))])
    assert 0 < count((255, 0, 0)) < solid / 2  # only the legend swatch: no segment bridges the gap
    plot.set_series([Series("a", (255, 0, 0), (1.0, 2.0, 3.0), (0.1, 0.5, 0.9)),
                     Series("b", (0, 255, 0), (1.0, 3.0), (0.9, 0.1))])
    assert count((0, 255, 0)) > 100 and count((255, 0, 0)) > 100
    # a series with nothing to draw (no validation loss without a hold-out) gets no legend entry either
    plot.set_series([Series("a", (255, 0, 0), (1.0, 2.0), (0.1, 0.5)),
                     Series("validation", (0, 255, 0), (1.0, 2.0), (math.nan, math.nan))])
    assert count((255, 0, 0)) > 100 and count((0, 255, 0)) == 0


def test_an_epoch_without_a_validation_split_says_so_instead_of_a_nan_dice(qtbot) -> None:
    from PySide6.QtWidgets import QWidget

    from segstudio.engine.events import EpochEnd, RunStarted
    from segstudio.gui.loop.run_monitor import RunMonitor

    host = QWidget()
    qtbot.addWidget(host)
    monitor = RunMonitor(host)
    monitor.on_event(RunStarted(run_dir=Path("run"), epochs=3, start_epoch=0, steps_per_epoch=2, train_samples=30,
                                val_samples=0, split_source="random", device="cpu", class_names=("skin", "lesion"),
                                mode="binary", precision="bfloat16"))
    assert "training on cpu (bfloat16)" in monitor.log_view.toPlainText()  # the run says what it computes in
    # the lesion recipe trains on every image: its epochs carry no validation figures
    monitor.on_event(EpochEnd(epoch=0, train_loss=0.5, val_loss=None, dice=math.nan, iou=math.nan,
                              pixel_accuracy=math.nan, per_class=(), lr=1e-3, seconds=1.0, eta_s=2.0,
                              monitor=math.nan, improved=False))
    text = monitor.log_view.toPlainText()
    assert "no validation split" in text and "nan" not in text.lower()
    assert "no validation split" in monitor.state_label.text()
    # the Dice plot says why it stays empty, instead of an empty grid under a legend
    monitor.redraw()
    assert monitor.metric_plot.empty_text.startswith("No validation hold-out") and "Hold-out" in \
        monitor.metric_plot.empty_text
    scored = RunMonitor(host)
    scored.on_event(RunStarted(run_dir=Path("run"), epochs=3, start_epoch=0, steps_per_epoch=2, train_samples=24,
                               val_samples=6, split_source="random", device="cpu", class_names=("skin", "lesion"),
                               mode="binary", precision="float32"))
    assert scored.metric_plot.empty_text == "no data yet"
    monitor.on_event(EpochEnd(epoch=1, train_loss=0.4, val_loss=0.3, dice=0.8, iou=0.7, pixel_accuracy=0.9,
                              per_class=(), lr=1e-3, seconds=1.0, eta_s=1.0, monitor=0.7, improved=True))
    assert "Dice 0.800" in monitor.state_label.text()


def test_the_training_panel_offers_every_augmentation_preset_of_the_engine() -> None:
    """The panel's list is written out (the GUI does not import the engine's torch modules to draw a combo box);
    it must name the engine's presets, no more and no fewer."""
    from segstudio.engine.augment import preset_names
    from segstudio.gui.loop.training_panel import AUGMENT_PRESETS

    assert list(AUGMENT_PRESETS) == preset_names()
