"""Click to Segment (SAM): the promptable-model tool of issue 18, as a small controller beside the editor.

While the tool is active on an image, the image as displayed is embedded once in a background worker (the model
file is loaded there too, the first time) and kept in an :class:`~segstudio.engine.embedding_cache.EmbeddingCache`
keyed by model, sample and the displayed pixels; a click then runs only the decoder, on the GUI thread. A left
click adds a point on the object, Shift+click or a right click a point off it, a drag sets a box; every prompt
refines the same proposal (the last answer's low-resolution logits go back in), shown on the editor's proposal
layer: Enter accepts it as one undo step (class locks and "paint only inside" hold), Esc rejects it and starts
over. Without a box the proposal only adds pixels of the class; with one, inside the box the class becomes the
proposal (as GrabCut's box does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from segstudio.core.settings import AppSettings
from segstudio.gui.common.errors import show_error
from segstudio.gui.common.workers import GeneratorWorker
from segstudio.gui.panels.tool_options import ToolOptionsPanel
from segstudio.gui.screen.canvas import ImageCanvas
from segstudio.gui.screen.editor import EditorController
from segstudio.gui.screen.proposals import SAM
from segstudio.masks import Buttons, Modifiers, PointerEvent

if TYPE_CHECKING:
    from segstudio.engine.embedding_cache import EmbeddingCache, EmbeddingKey
    from segstudio.engine.promptable import Embedding, Point, PromptableModel

log = logging.getLogger(__name__)

TITLE = "Click to Segment (SAM)"
NO_MODEL_MESSAGE = (
    "Click to Segment needs a SAM model, and none is chosen. Choose one with Model → Load Promptable Model (SAM)… "
    "or the Choose… button under Tool Options: a SAM checkpoint (.pth, e.g. sam_vit_b_01ec64.pth) or an ONNX "
    "encoder/decoder pair. segstudio downloads nothing: the file must be on this computer.")
#: a drag shorter than this (image pixels, each way) is a click
MIN_BOX_PX = 8


class _SettingsStore(Protocol):
    value: AppSettings

    def save(self) -> None: ...


def show_info(title: str, text: str) -> None:
    """A modal note (tests replace it)."""
    from PySide6.QtWidgets import QApplication

    QMessageBox.information(QApplication.activeWindow(), title, text)


class SamToolController(QObject):
    """``sig_embedding_ready(key)``: an embedding was computed and cached (``key``: its EmbeddingKey)."""

    sig_embedding_ready = Signal(object)

    def __init__(self, *, editor: EditorController, canvas: ImageCanvas, settings: _SettingsStore,
                 show_message: Callable[[str, int], None], dialog_parent: QWidget,
                 options: ToolOptionsPanel | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.editor, self.canvas, self.settings, self.options = editor, canvas, settings, options
        self._show_message, self._dialog_parent = show_message, dialog_parent
        self.active = False
        self.model: PromptableModel | None = None
        self._model_from = ""  # the path self.model was loaded from
        self._cache: EmbeddingCache | None = None
        self.embeddings_computed = 0  # how many the worker computed (the cache served the rest)
        self._worker: GeneratorWorker | None = None
        self._digest_of: tuple[np.ndarray, str] | None = None  # the last display array and its digest
        self._embedding: tuple[EmbeddingKey, Embedding] | None = None
        self._points: list[Point] = []
        self._box: tuple[float, float, float, float] | None = None
        self._low_res: np.ndarray | None = None
        self._pending = False  # a prompt waits for the embedding
        self._press: tuple[float, float] | None = None
        self._press_negative = False
        editor.sam_pointer_hook = self.on_pointer
        editor.sig_proposal_changed.connect(self._on_editor_proposal_changed)
        editor.sig_mask_replaced.connect(self._on_editor_mask_replaced)
        if options is not None:
            options.set_sam_model(self.model_path)
            options.sam_multimask.setChecked(settings.value.assist.sam_multimask)
            options.sig_sam_model_requested.connect(self.choose_model)
            options.sam_multimask.toggled.connect(self._on_options_multimask_toggled)

    # the model -------------------------------------------------------------------------------------------------
    @property
    def model_path(self) -> str:
        return self.settings.value.assist.promptable_model

    @property
    def multimask(self) -> bool:
        return self.settings.value.assist.sam_multimask

    @property
    def cache(self) -> EmbeddingCache:
        if self._cache is None:
            from segstudio.engine.embedding_cache import EmbeddingCache  # numpy only: no torch

            self._cache = EmbeddingCache()
        return self._cache

    def choose_model(self) -> None:
        """Model → Load Promptable Model (SAM)…: a file dialog; the choice is remembered in the settings."""
        start = str(Path(self.model_path).parent) if self.model_path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self._dialog_parent, "Load Promptable Model (SAM)", start,
            "SAM models (*.pth *.pt *.onnx);;All files (*)")
        if path:
            self.set_model_path(path)

    def set_model_path(self, path: str) -> None:
        """Use the model at ``path`` from now on: remembered at once, loaded in the background (with the shown
        image's embedding) now if the tool is on, else when it is next chosen."""
        old = self.model_path
        assist = replace(self.settings.value.assist, promptable_model=str(path))
        self.settings.value = replace(self.settings.value, assist=assist)
        self.settings.save()
        if self.options is not None:
            self.options.set_sam_model(str(path))
        if old and old != path and self._cache is not None:
            self._cache.drop_model(old)
        self.model, self._model_from, self._embedding = None, "", None
        self.editor.reject_proposal()
        self._reset_prompts()
        self._show_message(f"{TITLE}: model {Path(path).name} chosen.", 6000)
        if self.active:
            self._ensure_embedding()

    def _on_options_multimask_toggled(self, on: bool) -> None:
        assist = replace(self.settings.value.assist, sam_multimask=bool(on))
        self.settings.value = replace(self.settings.value, assist=assist)

    # activation ------------------------------------------------------------------------------------------------
    def on_tool_changed(self, name: str) -> None:
        was, self.active = self.active, name == SAM
        if self.active and not was:
            if not self.model_path:
                self._show_message(NO_MODEL_MESSAGE, 15000)
                show_info(TITLE, NO_MODEL_MESSAGE)
                return
            self._ensure_embedding()

    def _on_editor_mask_replaced(self) -> None:  # another sample (or a revert): new prompts, maybe a new image
        self._reset_prompts()
        if self.active and self.model_path:
            QTimer.singleShot(0, self._ensure_embedding)  # after the sample's canvas and panels are set

    def _on_editor_proposal_changed(self, text: str) -> None:
        if not text:  # accepted or rejected: the next click starts a new object
            self._reset_prompts()

    def _reset_prompts(self) -> None:
        self._points, self._box, self._low_res, self._pending = [], None, None, False

    # embeddings ------------------------------------------------------------------------------------------------
    def _shown(self) -> tuple[np.ndarray, EmbeddingKey] | None:
        """The displayed pixels of the sample being edited and their cache key."""
        from segstudio.engine.embedding_cache import EmbeddingKey, pixel_digest

        t, shown = self.editor.target, self.canvas.display_array()
        if t is None or shown is None or self.editor.mask is None or shown.shape[:2] != self.editor.mask.shape:
            return None
        if self._digest_of is None or self._digest_of[0] is not shown:
            self._digest_of = (shown, pixel_digest(shown))
        return shown, EmbeddingKey(self.model_path, t.sample_id, self._digest_of[1])

    def current_embedding(self) -> Embedding | None:
        """The embedding of the image as shown now, if computed (from the cache when it has it)."""
        got = self._shown()
        if got is None:
            return None
        key = got[1]
        if self._embedding is not None and self._embedding[0] == key:
            return self._embedding[1]
        emb = self.cache.get(key)
        if emb is not None:
            self._embedding = (key, emb)
        return emb

    def _ensure_embedding(self) -> bool:
        """True when the model and the shown image's embedding are at hand; else the worker is (or will be)
        loading or computing them."""
        if not self.model_path:
            return False
        if self.model is not None and self._model_from == self.model_path and self.current_embedding() is not None:
            return True
        if self._worker is not None and self._worker.running:
            return False  # when it ends, the image shown then is looked at again
        got = self._shown()
        if got is None:
            return False
        pixels, key = got
        self._start_worker(pixels, key)
        return False

    def _start_worker(self, pixels: np.ndarray, key: EmbeddingKey) -> None:
        path, cache = self.model_path, self.cache
        model = self.model if self._model_from == path else None

        def start(_token: Any) -> Iterator[Any]:
            m = model
            if m is None:
                from segstudio.engine.promptable import load_promptable

                m = load_promptable(path)
                yield ("model", path, m)
            emb = m.embed(pixels)
            cache.put(key, emb)
            yield ("embedding", key, emb)

        worker = GeneratorWorker(start, name="sam-embed", parent=self)
        worker.sig_progress.connect(self._on_worker_progress)
        worker.sig_finished.connect(lambda _last: self._on_worker_ended())
        worker.sig_errored.connect(self._on_worker_errored)
        self._worker = worker
        first = "the SAM model is loaded first; " if model is None else ""
        self._show_message(f"Computing image embedding… ({first}once per image; clicks are kept)", 0)
        worker.start()

    def _on_worker_progress(self, ev: object) -> None:
        if not isinstance(ev, tuple):
            return
        if ev[0] == "model" and ev[1] == self.model_path:
            self.model, self._model_from = ev[2], ev[1]
        elif ev[0] == "embedding":
            self.embeddings_computed += 1
            self.sig_embedding_ready.emit(ev[1])

    def _on_worker_ended(self) -> None:
        self._worker = None
        if not self.active:
            self._show_message(f"{TITLE}: image embedding ready.", 4000)
            return
        if self._ensure_embedding():  # the image shown has its embedding (else a new one is being computed)
            if self._pending:
                self._decode()
            else:
                self._show_message("SAM ready: click the object, Shift+click (or right-click) what is not it, or "
                                   "drag a box around it.", 8000)

    def _on_worker_errored(self, message: str, details: str) -> None:
        self._worker, self._pending = None, False
        self._show_message(f"{TITLE}: {message.splitlines()[0] if message else 'failed'}", 15000)
        show_error(TITLE, message, details)

    def stop_and_wait(self, timeout_s: float = 60.0) -> bool:
        return self._worker is None or self._worker.stop_and_wait(timeout_s)

    # prompts ---------------------------------------------------------------------------------------------------
    def on_pointer(self, phase: str, ev: PointerEvent) -> None:
        """The editor's canvas events while the tool is active."""
        mask = self.editor.mask
        if mask is None:
            return
        if phase == "press":
            if not self.model_path:
                self._show_message(NO_MODEL_MESSAGE, 15000)
                show_info(TITLE, NO_MODEL_MESSAGE)
                return
            self._press = ev.pos
            self._press_negative = bool(ev.buttons & Buttons.RIGHT) or bool(ev.modifiers & Modifiers.SHIFT)
            return
        if self._press is None or phase not in ("move", "release"):
            return
        (x0, y0), (x1, y1) = self._press, ev.pos
        is_box = abs(x1 - x0) >= MIN_BOX_PX and abs(y1 - y0) >= MIN_BOX_PX
        if phase == "move":
            corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
            self.canvas.set_tool_outline(corners if is_box else (), closed=True)
            return
        self._press = None
        self.canvas.set_tool_outline(())
        h, w = mask.shape
        if is_box:
            self._box = (max(0.0, min(x0, x1)), max(0.0, min(y0, y1)), min(float(w), max(x0, x1)),
                         min(float(h), max(y0, y1)))
        else:
            x, y = min(w - 1, max(0, int(x1))), min(h - 1, max(0, int(y1)))
            self._points.append((float(x), float(y), not self._press_negative))
        self._decode()

    def _decode(self) -> None:
        if not self._points and self._box is None:
            return
        emb = self.current_embedding() if self._ensure_embedding() else None
        if emb is None or self.model is None:
            self._pending = True
            return
        self._pending = False
        try:
            out = self.model.decode(emb, points=self._points, box=self._box,
                                    previous_low_res_logits=self._low_res, multimask=self.multimask)
        except (ValueError, RuntimeError) as exc:
            self._show_message(f"{TITLE}: {exc}", 10000)
            return
        self._low_res = out.low_res_logits
        region = out.mask.copy()
        if self._box is not None:
            bx0, by0, bx1, by1 = (int(round(v)) for v in self._box)
            region[by0:by1, bx0:bx1] = True
        if self.editor.propose(out.mask, region=region, tool=TITLE) is None:
            return
        t = self.editor.target
        name = t.schema.by_id(self.editor.context.class_id).name if t is not None else "the class"
        log.debug("SAM: %d point(s), box %s, score %.3f", len(self._points), self._box, out.score)
        # short enough for the status bar of a 1400-px window, like the other tools' proposals
        self.editor.sig_proposal_changed.emit(
            f"SAM: {int(np.count_nonzero(out.mask)):,} px of {name} — click refines, Shift+click excludes, "
            "Enter accepts, Esc rejects")

    @property
    def prompts(self) -> tuple[list[Point], tuple[float, float, float, float] | None, np.ndarray | None]:
        """The points, box and last low-resolution logits of the proposal being refined."""
        return list(self._points), self._box, self._low_res
