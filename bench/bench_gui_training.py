"""Training in the background: the GUI's event loop while a real CPU training runs, and how fast a cancel lands.

``gui.event_latency_during_training.p95_ms``: the real main window on the bundled sample starts a training from
its panel (the lungs recipe with a resnet18 encoder at 128 px, default thread count: every core but one); a
QTimer asks to fire every 10 ms and records how late each tick is, from the Train click until the run has ended
(torch import, model building, batches, validation, checkpoints, the live curves being redrawn). The figure is
the 95th percentile of that lateness.

``engine.cancel_latency_batches``: training batches that complete after the GUI asked to stop (the batch in
flight at that moment counts as one), worst of three cancels at different moments of a run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, percentile
from segstudio.engine.events import BatchEnd

PREFIX = "gui_training"
REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "resources" / "samples" / "lungs"
TICK_MS = 10


def _app(tmp: Path) -> Any:
    for var in ("SEGSTUDIO_CONFIG_DIR", "SEGSTUDIO_STATE_DIR", "SEGSTUDIO_CACHE_DIR", "SEGSTUDIO_DATA_DIR"):
        os.environ[var] = str(tmp / var.lower())
    from segstudio.gui.app import get_app

    return get_app()


def _wait(app: Any, cond: Any, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("the training did not end in time")
        app.processEvents()
        time.sleep(0.002)


def bench_event_latency_during_training() -> list[Figure]:
    # a fresh process: the first run of a session imports torch in the worker thread, and that is measured too
    import json
    import subprocess

    code = "import json, bench.bench_gui_training as b; print('LATE', json.dumps(b.measure_event_lateness()))"
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env,
                         timeout=900, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("LATE "))
    late = json.loads(line[5:])
    return [Figure("gui.event_latency_during_training.p95_ms", percentile(late, 95), "ms", 50, "lower"),
            Figure("gui.event_latency_during_training.max_ms", max(late), "ms")]


def measure_event_lateness() -> list[float]:
    """Lateness (ms) of every 10 ms tick from the Train click until the run has ended."""
    from PySide6.QtCore import Qt, QTimer

    with tempfile.TemporaryDirectory() as d:
        app = _app(Path(d))
        from segstudio.core.settings import AppSettings
        from segstudio.gui.main_window import MainWindow

        win = MainWindow(settings=AppSettings())
        win.resize(1400, 900)
        win.show()
        app.processEvents()
        win.open_dataset(SAMPLE)
        panel = win.training_panel
        panel.recipe.setCurrentIndex(panel.recipe.findData("lungs-lr"))
        panel.encoder.setCurrentText("resnet18")
        panel.epochs.setValue(2)
        panel.image_size.setValue(128)
        panel.batch_size.setValue(2)
        panel.steps.setValue(0)
        panel.device.set_device("cpu")
        batches: list[object] = []
        win.training.sig_event.connect(lambda ev: batches.append(ev) if isinstance(ev, BatchEnd) else None)

        late: list[float] = []
        last = [0.0]

        def tick() -> None:
            now = time.perf_counter()
            if last[0]:
                late.append(max(0.0, (now - last[0]) * 1000.0 - TICK_MS))
            last[0] = now

        timer = QTimer()
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.setInterval(TICK_MS)
        timer.timeout.connect(tick)
        timer.start()
        if "torch" in sys.modules:
            raise RuntimeError("torch was imported before the run: the first-run cost would not be measured")
        panel.start_button.click()
        _wait(app, lambda: not win.training.running, 600)
        timer.stop()
        run = win.training.run
        win.close()
        app.processEvents()
        if run is None or run.status.value != "finished" or not batches:
            raise RuntimeError(f"the benchmark run did not finish: {run}")
    return late


def bench_cancel_latency() -> list[Figure]:
    from PySide6.QtCore import QTimer

    from segstudio.datasets.registry import open_dataset
    from segstudio.gui.common.workers import GeneratorWorker
    from segstudio.gui.loop.training import make_config

    worst = 0
    with tempfile.TemporaryDirectory() as d:
        app = _app(Path(d))
        ds = open_dataset(SAMPLE)
        cfg = make_config(recipe="lungs-lr", overrides=["model.encoder=resnet18", "epochs=20", "data.image_size=128",
                                                        "data.batch_size=2", "device=cpu"])
        for trial, delay_ms in enumerate((250, 700, 1300)):
            done: list[float] = []

            def job(token: Any, trial: int = trial, done: list[float] = done) -> Any:
                from segstudio.engine.events import BatchEnd
                from segstudio.engine.train import train

                for ev in train(cfg, ds, run_dir=Path(d) / f"run{trial}", cancel=token):
                    if isinstance(ev, BatchEnd):
                        done.append(time.monotonic())
                    yield ev

            worker = GeneratorWorker(job, name=f"cancel-bench-{trial}")
            asked: list[float] = []

            def cancel(worker: GeneratorWorker = worker, asked: list[float] = asked) -> None:
                asked.append(time.monotonic())
                worker.cancel()

            def on_progress(ev: object, delay_ms: int = delay_ms, asked: list[float] = asked) -> None:
                # a timer, not the event itself: the cancel then lands at an arbitrary point inside a batch
                if isinstance(ev, BatchEnd) and not asked and not getattr(on_progress, "armed", False):
                    on_progress.armed = True  # type: ignore[attr-defined]
                    QTimer.singleShot(delay_ms, cancel)

            worker.sig_progress.connect(on_progress)
            worker.start()
            _wait(app, lambda worker=worker: worker.done, 600)
            if worker.outcome != "cancelled" or not asked:
                raise RuntimeError(f"trial {trial}: the run ended {worker.outcome} before the cancel")
            worst = max(worst, sum(1 for t in done if t > asked[0]))
    return [Figure("engine.cancel_latency_batches", float(worst), "batches", 1, "lower")]
