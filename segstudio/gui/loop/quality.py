"""Label quality in the window: ranking the labels by how likely they are wrong, and acting on the ranking.

Review → Rank Labels by Suspicion runs :func:`segstudio.metrics.suspicion.rank_dataset` on a
:class:`~segstudio.gui.common.workers.GeneratorWorker` over the labels the user sees (the latest saved correction,
else the GT), with progress and Stop in the status bar. It is model-free; when the current model has predicted the
images (``workspace.model_predictions.ModelPredictions``, current checkpoint only) its predictions are passed too,
and the status bar says that a model trained on these very labels judges them leniently. The ranking is stored in
the workspace (``workspace.suspicion_store``) and shown: the sample table's Suspicion column (sorted, most
suspicious first), the review queue's "Most suspicious label" strategy, the current sample's reasons in the Review
panel's "Why suspicious" box, and the part the strongest reason points at framed on the canvas.

The bulk actions apply one review decision to every sample selected in the sample table: Flag (a second look)
and Reject (the label is wrong: the export leaves it out by default). The window composes; this controller holds
the behaviour and receives its collaborators.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDialog, QStatusBar

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.gui.common.errors import show_error
from segstudio.gui.common.status_job import job_widgets
from segstudio.gui.common.workers import GeneratorWorker
from segstudio.gui.loop.quality_folds import (
    FoldProgress,
    FoldRankDialog,
    FoldSettings,
    out_of_fold_rank_events,
)
from segstudio.gui.loop.review_loop import LoopController
from segstudio.gui.panels.review_panel import ReviewPanel
from segstudio.gui.screen.browser import SampleBrowser
from segstudio.gui.screen.canvas import ImageCanvas
from segstudio.gui.screen.navigation import NavigationController
from segstudio.gui.screen.review import ReviewController
from segstudio.gui.screen.session import LoadedSample, SessionController
from segstudio.workspace import ReviewStatus, Workspace
from segstudio.workspace.model_predictions import ModelPredictions
from segstudio.workspace.suspicion_store import (
    SUSPICION_KEY,
    changed_since_ranking,
    label_stamps,
    ranking_info,
    store_ranking,
    stored_ranking,
    suspicion_scores,
)

log = logging.getLogger(__name__)

#: the queue strategy the ranking feeds (``workspace.queue.STRATEGIES``)
QUEUE_STRATEGY = "suspicion"
#: a label at least this suspicious is counted as "looks wrong" in the messages (the table colours it too)
SUSPICIOUS_FROM = 0.5
LENIENT_NOTE = ("the current model's predictions were used too: a model trained on these labels judges them "
                "leniently (it learned their mistakes); out-of-fold predictions judge better (segstudio quality "
                "--folds K)")


#: the status bar's progress text while the labels are scored, and before the first fold model trains (then
#: "fold 2/4, epoch 3/10")
RANK_FORMAT = "ranking labels %v/%m"
FOLDS_FORMAT = "training fold models"


@dataclass(frozen=True)
class RankProgress:
    done: int
    total: int


@dataclass(frozen=True)
class RankDone:
    ranking: list[Any]  # SampleSuspicion, most suspicious first


class _Cancelled(Exception):
    """Raised by the label loader once Stop was pressed: the ranking ends without a result."""


def _rules_for(dataset: Dataset) -> Any:
    """The dataset's declared rules (its ``classes.json``), else none: learned from the dataset."""
    from segstudio.metrics.label_rules import LabelRules, read_rules

    own = Path(dataset.root) / "classes.json"
    if own.is_file():
        try:
            return read_rules(own, dataset.schema)
        except Exception as exc:  # noqa: BLE001 - a classes.json without usable rules: learn them instead
            log.info("%s declares no usable label rules (%s); they are learned from the dataset", own, exc)
    return LabelRules()


def rank_events(token: Any, dataset: Dataset, *, labels: Callable[[str], np.ndarray | None],
                predictions: Callable[[str], np.ndarray | None] | None, rules: Any,
                probabilities: Callable[[str], np.ndarray | None] | None = None) -> Iterator[object]:
    """The ranking as a generator of ``RankProgress`` then one ``RankDone`` (runs in the worker thread). The
    scorer reports progress through a callback from its own thread; it is relayed here through a queue."""
    from segstudio.metrics.suspicion import rank_dataset

    def judged(sid: str) -> np.ndarray | None:
        if token.cancelled:
            raise _Cancelled
        return labels(sid)

    events: queue.Queue[RankProgress | None] = queue.Queue()
    out: dict[str, Any] = {}

    def work() -> None:
        try:
            out["ranking"] = rank_dataset(dataset, masks=judged, predictions=predictions, rules=rules,
                                          probabilities=probabilities,
                                          progress=lambda d, t: events.put(RankProgress(d, t)))
        except BaseException as exc:  # noqa: BLE001 - handed to the generator, which raises it in the worker
            out["error"] = exc
        finally:
            events.put(None)

    thread = threading.Thread(target=work, name="segstudio-rank-labels", daemon=True)
    thread.start()
    while (ev := events.get()) is not None:
        yield ev
    thread.join()
    err = out.get("error")
    if isinstance(err, _Cancelled) or token.cancelled:
        return
    if err is not None:
        raise err
    yield RankDone(out["ranking"])


class QualityController(QObject):
    def __init__(self, *, session: SessionController, review: ReviewController, navigation: NavigationController,
                 browser: SampleBrowser, review_panel: ReviewPanel, canvas: ImageCanvas, loop: LoopController,
                 status_bar: QStatusBar, show_message: Callable[[str, int], None],
                 recipe: Callable[[], str | None] | None = None, parent: QObject | None = None) -> None:
        """``recipe``: the recipe chosen in the Training panel, which the fold dialog offers first."""
        super().__init__(parent)
        self._recipe = recipe or (lambda: None)
        self.session, self.review, self.navigation = session, review, navigation
        self.browser, self.review_panel, self.canvas, self.loop = browser, review_panel, canvas, loop
        self._show_message = show_message
        self._worker: GeneratorWorker | None = None
        self._job: dict[str, Any] = {}
        self._changed: list[str] | None = None  # labels saved since the ranking (None: to be computed)
        self._watched: Workspace | None = None
        self.progress, self.stop_button = job_widgets(status_bar, name="rank", fmt=RANK_FORMAT,
                                                      stop_tip="Stop ranking the labels (the previous ranking stays)", on_stop=self.stop)
        session.sig_dataset_opened.connect(self._on_session_dataset_opened)
        session.sig_sample_loaded.connect(self._on_session_sample_loaded)

    # ranking ----------------------------------------------------------------------------------------------------
    def running(self) -> bool:
        return self._worker is not None and self._worker.running

    def _prepare(self) -> tuple[Dataset, Workspace, dict[str, str], Callable[[str], np.ndarray | None]] | None:
        """The open dataset and workspace, the stamps of the labels to judge and their loader; None when a ranking
        cannot start now (and why is said)."""
        ds, ws = self.review.dataset, self.review.workspace
        if ds is None or ws is None:
            self._show_message("Open a dataset first.", 5000)
            return None
        if self.running():
            self._show_message("The labels are being ranked already (Stop is in the status bar).", 5000)
            return None
        if ws.read_only:
            self._show_message(f"Cannot rank: this workspace is open read-only ({ws.read_only_reason}); the "
                               "ranking is stored in it.", 8000)
            return None
        self.navigation.save_current()  # the ranking judges the labels as saved
        stamps = label_stamps(ws, [s.id for s in ds.samples])

        def labels(sid: str) -> np.ndarray | None:
            v = ws.versions.latest(sid)
            return ws.versions.load(v) if v is not None else ds.load_gt(sid)

        return ds, ws, stamps, labels

    def _launch(self, start: Callable[[Any], Iterator[object]], job: dict[str, Any], *, name: str) -> None:
        worker = GeneratorWorker(start, name=name, parent=self)
        worker.sig_progress.connect(self._on_worker_progress)
        worker.sig_finished.connect(self._on_worker_finished)
        worker.sig_cancelled.connect(self._on_worker_cancelled)
        worker.sig_errored.connect(self._on_worker_errored)
        self._worker = worker
        self._job = job
        self.progress.setValue(0)
        self._set_busy(True)
        worker.start()

    def rank_labels(self) -> bool:
        """Rank every label of the open dataset in the background; False when it cannot start (and why is said)."""
        ready = self._prepare()
        if ready is None:
            return False
        ds, ws, stamps, labels = ready
        ids = [s.id for s in ds.samples]
        src = self.review.predictions if isinstance(self.review.predictions, ModelPredictions) else None
        with_model = [sid for sid in ids if src is not None and src.entry(sid) is not None and not src.is_stale(sid)]
        predicted = set(with_model)

        def prediction(sid: str) -> np.ndarray | None:
            if src is None or sid not in predicted:
                return None
            try:
                return src.load(sid)
            except (SegstudioError, OSError, ValueError) as exc:
                log.warning("the prediction of %s is not used for its label's suspicion: %s", sid, exc)
                return None

        rules = _rules_for(ds)
        preds = prediction if with_model else None
        self.progress.setFormat(RANK_FORMAT)
        self.progress.setRange(0, max(1, len(ids)))
        self._launch(lambda token: rank_events(token, ds, labels=labels, predictions=preds, rules=rules),
                     {"workspace": ws, "dataset": ds, "stamps": stamps, "with_model": len(with_model)},
                     name="rank-labels")
        self._show_message(f"Ranking {len(ids)} labels by suspicion…"
                           + (f" With the current model's predictions of {len(with_model)} images: {LENIENT_NOTE}."
                              if with_model else ""), 10000)
        return True

    def rank_labels_out_of_fold(self, settings: FoldSettings | None = None) -> bool:
        """Train fold models on the labels as they are and rank every label with the predictions of the model that
        did not see it (:mod:`segstudio.gui.loop.quality_folds`); ``settings`` None asks for them. False when it
        does not start."""
        if settings is None:
            ds = self.review.dataset
            if ds is None or self.running():  # said before asking anything
                return self._prepare() is not None
            from segstudio.gui.loop.training import recipe_names

            dialog = FoldRankDialog(recipes=recipe_names(), recipe=self._recipe(), labels=len(ds.samples),
                                    parent=self.browser.window())
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return False
            settings = dialog.settings()
        ready = self._prepare()
        if ready is None:
            return False
        ds, ws, stamps, labels = ready
        from segstudio.gui.loop.training import make_config

        try:
            config = make_config(recipe=settings.recipe, overrides=settings.overrides)
        except SegstudioError as exc:
            show_error("Cannot train the fold models", str(exc))
            return False
        rules = _rules_for(ds)
        folds = settings.folds
        self.progress.setFormat(FOLDS_FORMAT)
        self.progress.setRange(0, max(1, folds * settings.epochs))
        self._launch(lambda token: out_of_fold_rank_events(token, ds, labels=labels, config=config, folds=folds,
                                                           rules=rules, rank=rank_events),
                     {"workspace": ws, "dataset": ds, "stamps": stamps, "with_model": len(ds.samples),
                      "out_of_fold": settings.describe()},
                     name="rank-labels-folds")
        self._show_message(f"Training {settings.describe()} to judge {len(ds.samples)} labels, then ranking them…",
                           10000)
        return True

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def stop_and_wait(self, timeout_s: float = 60.0) -> bool:
        return self._worker.stop_and_wait(timeout_s) if self._worker is not None else True

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.stop_button.setVisible(busy)

    def _current_job(self) -> bool:
        """The job's results belong to what is open now (not to a dataset closed meanwhile)."""
        return self._job.get("workspace") is self.review.workspace and self.review.workspace is not None

    def _on_worker_progress(self, ev: object) -> None:
        if isinstance(ev, RankProgress):
            self.progress.setFormat(RANK_FORMAT)
            self.progress.setRange(0, max(1, ev.total))
            self.progress.setValue(ev.done)
        elif isinstance(ev, FoldProgress):
            self.progress.setFormat(ev.short)
            self.progress.setRange(0, max(1, ev.total))
            self.progress.setValue(ev.done)
            self.progress.setToolTip(ev.text)

    def _on_worker_finished(self, last: object) -> None:
        self._set_busy(False)
        if not isinstance(last, RankDone) or not self._current_job():
            return
        ws = self._job["workspace"]
        ranking = last.ranking
        n_model = int(self._job["with_model"])
        judge = self._job.get("out_of_fold")
        try:
            store_ranking(ws, (s.to_dict() for s in ranking), stamps=self._job["stamps"], with_model=bool(n_model),
                          note=f"judged with {judge}" if judge else LENIENT_NOTE if n_model else "",
                          out_of_fold=bool(judge))
        except SegstudioError as exc:
            show_error("Could not store the label ranking", str(exc))
            return
        self._changed = []
        self.refresh()
        self.browser.sort_by("suspicion", ascending=False)
        self.loop.queue.set_strategy(QUEUE_STRATEGY)
        self.review_panel.set_strategy(QUEUE_STRATEGY)
        self.loop.update_queue_info()
        bad = sum(1 for s in ranking if s.error is None and s.score >= SUSPICIOUS_FROM)
        unread = sum(1 for s in ranking if s.error is not None)
        text = (f"Ranked {len(ranking)} labels: {bad} look suspicious (≥ {SUSPICIOUS_FROM:.1f}). The sample list is "
                "sorted by Suspicion; Q walks the most suspicious first.")
        if unread:
            text += f" {unread} could not be read."
        if judge:
            text += f" Judged with {judge}."
        elif n_model:
            text += f" Model predictions of {n_model} images were used: {LENIENT_NOTE}."
        self._show_message(text, 15000)

    def _on_worker_cancelled(self, _last: object) -> None:
        self._set_busy(False)
        self._show_message("Ranking stopped; the previous ranking (if any) stays.", 6000)

    def _on_worker_errored(self, message: str, details: str) -> None:
        self._set_busy(False)
        if self._current_job():
            show_error("Cannot rank the labels", message, details)
        else:
            log.info("a label ranking of a closed workspace failed: %s", message)

    # showing ----------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """The Suspicion column and the current sample's reasons, from the stored ranking."""
        ws, ds = self.review.workspace, self.review.dataset
        model = self.browser.model_
        if ws is None or ds is None:
            model.set_suspicion({})
            self.browser.set_suspicion_column_visible(False)
            return
        scores = suspicion_scores(ws)
        tips = {e.sample_id: str(e.data.get("top_reason") or "")
                for e in ws.metrics.entries(key=SUSPICION_KEY, data_fields=("top_reason",))}
        model.set_suspicion(scores, tips)
        self.browser.set_suspicion_column_visible(bool(scores))
        cur = self.session.current
        self.show_reasons(cur.sample.id if cur is not None else None)

    def show_reasons(self, sample_id: str | None) -> None:
        """The "Why suspicious" box and the frame on the canvas for ``sample_id`` (cleared when not ranked)."""
        ws = self.review.workspace
        info = ranking_info(ws) if ws is not None else None
        entry = stored_ranking(ws, sample_id) if ws is not None and sample_id is not None and info else None
        if entry is None:
            self.review_panel.set_suspicion(None, [], ranked=info is not None)
            self.canvas.set_highlight(None)
            return
        reasons = [r for r in entry.data.get("reasons") or [] if isinstance(r, dict)]
        notes = []
        changed = self._labels_changed()
        if sample_id in changed:
            notes.append("This label was saved again after the ranking: rank again (Ctrl+Shift+Q) to judge it.")
        elif changed:
            notes.append(f"{len(changed)} label(s) changed since the ranking: rank again (Ctrl+Shift+Q).")
        if info and info.get("out_of_fold"):
            note = str(info.get("note") or "judged with out-of-fold models")
            notes.append(f"{note[:1].upper()}{note[1:]}.")  # not str.capitalize: it lowercases a recipe's name
        elif info and info.get("with_model"):
            notes.append("Judged with the current model's predictions, which learned these labels: lenient.")
        self.review_panel.set_suspicion(entry.suspicion, reasons, note=" ".join(notes))
        top = next((r for r in reasons if r.get("box")), None)
        if top is None or entry.suspicion is None:
            self.canvas.set_highlight(None)
            return
        y0, y1, x0, x1 = (int(v) for v in top["box"])
        self.canvas.set_highlight((y0, y1, x0, x1), tip=f"{top.get('class', '')}: {top.get('text', '')}")

    def _labels_changed(self) -> list[str]:
        ws, ds = self.review.workspace, self.review.dataset
        if ws is None or ds is None:
            return []
        if self._changed is None:
            self._changed = changed_since_ranking(ws, ds)
        return self._changed

    # bulk actions on the selection ------------------------------------------------------------------------------
    def flag_selected(self) -> int:
        """Flag every selected sample (a second look), in one step."""
        return self._decide_selected(ReviewStatus.FLAGGED)

    def reject_selected(self) -> int:
        """Reject the label of every selected sample (wrong, not yet fixed), in one step."""
        return self._decide_selected(ReviewStatus.REJECTED)

    def _decide_selected(self, status: ReviewStatus) -> int:
        ws = self.review.workspace
        ids = self.browser.selected_ids()
        if ws is None or not ids:
            self._show_message("Select samples in the sample list first (Ctrl/Shift-click).", 5000)
            return 0
        if ws.read_only:
            self._show_message(f"Not recorded: this workspace is open read-only ({ws.read_only_reason}).", 8000)
            return 0
        self.navigation.save_current()
        cur = self.session.current
        done = 0
        try:
            for sid in ids:
                comment = self.review.review(sid).comment
                if cur is not None and sid == cur.sample.id and self.review_panel.comment_text():
                    comment = self.review_panel.comment_text()
                if not comment:
                    entry = stored_ranking(ws, sid)
                    top = str(entry.data.get("top_reason") or "") if entry is not None else ""
                    comment = f"suspicious label: {top}" if top else ""
                self.review.set_status(sid, status, comment=comment)
                done += 1
        except SegstudioError as exc:
            show_error("Could not record the review decisions", f"{done} of {len(ids)} recorded.\n\n{exc}")
        self.loop.update_queue_info()
        self._show_message(f"{done} sample{'s' if done != 1 else ''} {status.value}", 6000)
        return done

    # handlers ---------------------------------------------------------------------------------------------------
    def _on_session_dataset_opened(self, _ds: Dataset) -> None:
        if self.running():
            self.stop()  # the job judged the previous dataset: its result is dropped
        ws = self.review.workspace
        if self._watched is not None and self._watched is not ws:
            try:
                self._watched.events.version_saved.disconnect(self._on_version_saved)
            except (RuntimeError, TypeError, ValueError):
                pass
        self._watched = ws
        if ws is not None:
            ws.events.version_saved.connect(self._on_version_saved)
        self._changed = None
        self.refresh()

    def _on_version_saved(self, _rec: object) -> None:
        self._changed = None  # recomputed when next shown (this may run in a saving thread)

    def _on_session_sample_loaded(self, cur: LoadedSample) -> None:
        self.show_reasons(cur.sample.id)

