"""The review session beside a dataset: its workspace, the predictions folder, review decisions, per-sample
scores (computed off the GUI thread) and crash recovery. Widgets show what it says; it holds the state."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from segstudio.core.errors import SegstudioError
from segstudio.core.paths import resources_dir
from segstudio.datasets.base import Dataset, Sample
from segstudio.datasets.predictions import PredictionFolder
from segstudio.gui.screen.edit_target import EditTarget, prepare_layers
from segstudio.masks import OverlayStyle
from segstudio.metrics.dataset import ScoredSample, iter_comparisons
from segstudio.workspace import (
    MaskSource,
    PendingRecovery,
    ReviewState,
    ReviewStatus,
    Workspace,
    user_data_dir,
    workspace_dir_for,
)
from segstudio.workspace.model_predictions import MODEL_METRICS_KEY, ModelPredictions, rescore_model_metrics

log = logging.getLogger(__name__)

METRICS_KEY = "gt-vs-predictions-folder"


class _ScoreRelay(QObject):
    sig_scored = Signal(object)  # ScoredSample (queued to the GUI thread)
    sig_done = Signal()


class _ScoreJob(QRunnable):
    def __init__(self, ids: list[str], review: ReviewController, relay: _ScoreRelay, stop: threading.Event) -> None:
        super().__init__()
        self._ids, self._review, self._relay, self._stop = ids, review, relay, stop

    def run(self) -> None:
        ds, preds = self._review.dataset, self._review.predictions
        if ds is None or preds is None:
            return
        try:
            for scored in iter_comparisons(
                self._ids, schema=ds.schema, load_reference=self._review.reference_mask,
                load_prediction=self._review.prediction_mask, should_stop=self._stop.is_set,
            ):
                self._relay.sig_scored.emit(scored)
        except Exception:  # a worker must never die silently (DESIGN rule 6)
            log.exception("scoring failed")
        finally:
            self._relay.sig_done.emit()


def _is_bundled(root: Path) -> bool:
    try:
        return Path(root).resolve().is_relative_to(resources_dir().resolve())
    except OSError:
        return False


class ReviewController(QObject):
    """Workspace calls need no lock here: the workspace gives each thread its own SQLite connection and
    serialises writes itself (see segstudio.workspace.db)."""

    sig_review_changed = Signal(str, object)  # sample id, ReviewState
    sig_scored = Signal(str, object)  # sample id, SampleComparison | None
    sig_scoring_finished = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.dataset: Dataset | None = None
        self.workspace: Workspace | None = None
        #: the prediction layer's source: a predictions folder the user opened, or the model's predictions
        self.predictions: PredictionFolder | ModelPredictions | None = None
        self.reviewer = ""
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._stop = threading.Event()
        self._relay = _ScoreRelay()
        self._relay.sig_scored.connect(self._on_relay_scored)
        self._relay.sig_done.connect(self.sig_scoring_finished)

    # opening ----------------------------------------------------------------------------------------------------
    def open(self, dataset: Dataset, *, predictions: str | Path | None = None,
             workspace_dir: str | Path | None = None, read_only: bool = False) -> None:
        """Attach the workspace (beside the dataset, or in the user data dir when that is read-only).

        The new workspace is opened before the old one closes, so a refusal (``WorkspaceLockedError``: another
        segstudio holds it; a damaged workspace that cannot be rebuilt) leaves the session as it was. The
        dataset's sample ids go along for a rebuild of a workspace older than self-describing versions."""
        if workspace_dir is None and _is_bundled(dataset.root):
            # the bundled sample belongs to the app: its workspace lives with the user's data, never in resources/
            workspace_dir = user_data_dir() / "workspaces" / "bundled-sample-lungs"
        folder = workspace_dir if workspace_dir is not None else workspace_dir_for(dataset.root)
        ids = (s.id for s in dataset.samples)
        ws = Workspace(folder, dataset_root=dataset.root, read_only=read_only, sample_ids=ids)
        try:
            preds = PredictionFolder(predictions, dataset) if predictions else None
        except BaseException:
            ws.close()
            raise
        self.close()
        self.dataset, self.workspace, self.predictions = dataset, ws, preds
        # the workspace says when a review changed, whoever changed it (this window, pseudo-labels, a restore);
        # a Qt signal carries it to the GUI thread when the change was made in a worker
        ws.events.review_changed.connect(self._on_workspace_review_changed)
        if not ws.read_only:
            # remembered so that opening the workspace itself (file manager, MIME association) reopens all of it
            ws_settings = ws.settings
            remembered = ws_settings.replace(dataset_format=dataset.format_name,
                                             predictions_dir=str(preds.folder) if preds else "")
            if remembered != ws_settings:
                try:
                    ws.save_settings(remembered)
                except SegstudioError as exc:  # a full disk: the session still opens
                    log.warning("could not remember the dataset in %s: %s", ws.folder, exc)
        log.info("workspace %s%s; predictions: %s", ws.folder, f" (read-only: {ws.read_only_reason})" if ws.read_only
                 else "", f"{len(preds)} in {preds.folder}" if preds else "none")

    @property
    def read_only(self) -> bool:
        """The workspace is open read-only (held by another segstudio, or nothing can be written)."""
        return self.workspace is not None and self.workspace.read_only

    def close(self) -> None:
        self._stop.set()
        self._pool.waitForDone(5000)
        self._stop = threading.Event()
        if self.workspace is not None:
            self.workspace.events.review_changed.disconnect(self._on_workspace_review_changed)
            self.workspace.close()
        self.dataset, self.workspace, self.predictions = None, None, None

    # masks ------------------------------------------------------------------------------------------------------
    def _sample(self, sample_id: str) -> Sample:
        assert self.dataset is not None
        return self.dataset.get(sample_id)

    def latest_version(self, sample_id: str) -> tuple[np.ndarray | None, int]:
        """The newest saved correction of a sample and its version (None, 0 when there is none)."""
        if self.workspace is None:
            return None, 0
        v = self.workspace.versions.latest(sample_id)
        return (None, 0) if v is None else (self.workspace.versions.load(v), v.version)

    def reference_mask(self, sample_id: str) -> np.ndarray | None:
        """The mask a prediction is scored against: the latest correction, else the dataset's GT."""
        mask, _ = self.latest_version(sample_id)
        if mask is not None:
            return mask
        assert self.dataset is not None
        return self.dataset.load_gt(self._sample(sample_id))

    def prediction_mask(self, sample_id: str, *, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        preds = self.predictions
        if preds is None:
            return None
        return preds.load(sample_id, shape=shape)

    def target_for(self, sample: Sample, image: np.ndarray, gt: np.ndarray | None, *,
                   style: OverlayStyle | None = None, error_class: int | None = None,
                   prediction: np.ndarray | BaseException | None = None) -> tuple[EditTarget, str | None]:
        """What the editor edits for ``sample``; the second value is a problem message (prediction unreadable).

        With ``style`` the overlays are drawn too (``EditTarget.layers``): call it from a prefetch worker so the
        GUI thread only swaps buffers. ``prediction``: already read (by the prefetcher's side loader; an error it
        raised is passed as is). Safe in any thread.
        """
        assert self.dataset is not None
        schema = self.dataset.schema
        shape = (int(image.shape[0]), int(image.shape[1]))
        problem = None
        pred = None
        try:
            if isinstance(prediction, BaseException):
                raise prediction
            pred = prediction if prediction is not None else self.prediction_mask(sample.id)
            if pred is not None and pred.shape != shape:
                path = self.predictions.path_for(sample.id) if self.predictions is not None else None
                raise SegstudioError(f"The predicted mask is {pred.shape[1]}x{pred.shape[0]} but the image is "
                                     f"{shape[1]}x{shape[0]}.", path=path, fix="Predict at the image's own size.")
        except SegstudioError as exc:
            pred = None
            problem = str(exc)
        latest, version = self.latest_version(sample.id)
        if latest is not None and latest.shape == shape:
            base = latest
        elif gt is not None and gt.shape[:2] == shape:
            base, version = gt, 0
        else:
            base, version = np.zeros(shape, schema.mask_dtype()), 0
        layers = None
        if style is not None:
            layers = prepare_layers(base=base, prediction=pred, schema=schema, style=style, error_class=error_class)
        return EditTarget(sample.id, image, gt, pred, base, version, schema, layers), problem

    # reviews ----------------------------------------------------------------------------------------------------
    def review(self, sample_id: str) -> ReviewState:
        return ReviewState(sample_id=sample_id) if self.workspace is None else self.workspace.reviews.get(sample_id)

    def reviews(self) -> dict[str, ReviewState]:
        return {} if self.workspace is None else self.workspace.reviews.all()

    def history(self, sample_id: str) -> list[ReviewState]:
        return [] if self.workspace is None else self.workspace.reviews.history(sample_id)

    def set_status(self, sample_id: str, status: ReviewStatus | str, *, comment: str = "") -> ReviewState | None:
        if self.workspace is None:
            return None
        return self.workspace.reviews.set(sample_id, status, comment=comment, reviewer=self.reviewer)

    def _on_workspace_review_changed(self, state: ReviewState) -> None:
        self.sig_review_changed.emit(state.sample_id, state)

    def summary(self) -> dict[ReviewStatus, int]:
        if self.workspace is None or self.dataset is None:
            return {}
        return self.workspace.reviews.summary(s.id for s in self.dataset.samples)

    # recovery ---------------------------------------------------------------------------------------------------
    def pending_recoveries(self) -> list[PendingRecovery]:
        # read-only: the journals may be the live ones of the segstudio that holds the workspace
        if self.workspace is None or self.dataset is None or self.workspace.read_only:
            return []
        return [p for p in self.workspace.pending_recoveries() if p.sample_id in self.dataset]

    def restore(self, pending: PendingRecovery) -> int:
        """Replay unsaved strokes of a crashed session and save them as a new version; returns the version."""
        assert self.workspace is not None and self.dataset is not None
        gt = None
        if pending.base_version == 0 and not pending.has_snapshot:
            gt = self.dataset.load_gt(self._sample(pending.sample_id))
        mask = self.workspace.recover(pending.sample_id, gt=gt)
        rec = self.workspace.save_mask(pending.sample_id, mask, source=MaskSource.CORRECTION,
                                       author=self.reviewer, note="restored after an unexpected exit")
        self.workspace.journal.discard(pending.sample_id)
        return rec.version

    def discard_recovery(self, pending: PendingRecovery) -> None:
        if self.workspace is not None:
            self.workspace.journal.discard(pending.sample_id)

    # scores -----------------------------------------------------------------------------------------------------
    @property
    def metrics_key(self) -> str:
        """Where the scores of the current prediction source live in ``ws.metrics``."""
        return MODEL_METRICS_KEY if isinstance(self.predictions, ModelPredictions) else METRICS_KEY

    def cached_scores(self) -> dict[str, tuple[float | None, float | None]]:
        if self.workspace is None:
            return {}
        dice = self.workspace.metrics.column(key=self.metrics_key, figure="mean_dice")
        iou = self.workspace.metrics.column(key=self.metrics_key, figure="mean_iou")
        return {sid: (dice.get(sid), iou.get(sid)) for sid in dice}

    def start_scoring(self, sample_ids: list[str] | None = None) -> bool:
        """Score samples against the predictions folder in the background; results arrive as ``sig_scored``."""
        if self.dataset is None or self.predictions is None:
            return False
        ids = sample_ids if sample_ids is not None else [s.id for s in self.dataset.samples
                                                         if self.predictions.path_for(s) is not None]
        self._pool.start(_ScoreJob(ids, self, self._relay, self._stop))
        return True

    def wait_for_scoring(self, msecs: int = 30000) -> bool:
        return self._pool.waitForDone(msecs)

    def _on_relay_scored(self, scored: ScoredSample) -> None:
        comp = scored.comparison
        if self.workspace is not None and self.workspace.read_only:
            pass  # the scores are shown; the cache is only written by the instance that holds the workspace
        elif self.workspace is not None and isinstance(self.predictions, ModelPredictions):
            rescore_model_metrics(self.workspace.metrics, scored.sample_id, comp,
                                  entry=self.predictions.entry(scored.sample_id))
        elif self.workspace is not None and comp is not None:
            self.workspace.metrics.put(scored.sample_id, key=METRICS_KEY, data=comp.to_dict(),
                                       mean_dice=comp.mean_dice, mean_iou=comp.mean_iou)
        self.sig_scored.emit(scored.sample_id, comp)
