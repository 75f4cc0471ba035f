"""The Training panel's device list: CPU and, once asked for, the accelerators torch finds."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QComboBox, QWidget

from segstudio.gui.common.workers import GeneratorWorker
from segstudio.gui.loop.training import detect_devices_job


class DeviceCombo(QComboBox):
    """Devices are detected the first time the list opens: finding CUDA needs torch, which the window must not
    import before it is asked for, and the detection runs in a worker so the list never freezes the window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.addItem("Automatic (best available)", "auto")
        self.addItem("CPU", "cpu")
        self._worker: GeneratorWorker | None = None

    def showPopup(self) -> None:  # noqa: N802
        if self._worker is None:
            self.detect()
        super().showPopup()

    @property
    def detection_started(self) -> bool:
        return self._worker is not None

    def detect(self) -> GeneratorWorker:
        self._worker = GeneratorWorker(detect_devices_job, name="devices", parent=self)
        self._worker.sig_progress.connect(self._on_devices_detected)
        self._worker.sig_errored.connect(lambda msg, _tb: self.setToolTip(f"Device detection failed: {msg}"))
        self._worker.start()
        return self._worker

    def _on_devices_detected(self, options: tuple[Any, ...]) -> None:
        keep = self.currentData()
        self.clear()
        for opt in options:
            self.addItem(opt.label, opt.key)
        i = self.findData(keep)
        self.setCurrentIndex(max(i, 0))

    def set_device(self, key: str) -> None:
        i = self.findData(key)
        if i < 0:
            self.addItem(key, key)
            i = self.count() - 1
        self.setCurrentIndex(i)

    def device(self) -> str:
        return str(self.currentData() or "auto")
