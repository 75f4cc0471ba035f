"""Plain-Python events of a workspace (psygnal, DESIGN rule 2).

Each signal fires after the change is committed, in the thread that made it. A Qt widget listening from the
GUI thread while a worker writes should connect with ``thread="main"`` (psygnal queues the call; the GUI's
event loop then calls ``psygnal.emit_queued()``), or hop threads with its own queued Qt signal.
"""

from __future__ import annotations

from psygnal import Signal


class WorkspaceEvents:
    """Signals of one workspace; payloads are the frozen records of ``segstudio.workspace.records``."""

    #: ``ReviewState`` — a sample's review status, comment or reviewer changed
    review_changed = Signal(object)
    #: ``MaskVersion`` — a new mask version was saved (a correction, an accepted prediction, a revert)
    version_saved = Signal(object)
    #: ``tuple[str, ...]`` sample ids, ``str`` key — cached metrics were written or removed (one emission per
    #: batch, so a whole-dataset evaluation does not call a listener 10,000 times; ``()`` = every sample of the
    #: key, key ``""`` = every key)
    metrics_changed = Signal(tuple, str)
    #: ``PredictionEntry`` — a prediction was cached
    prediction_saved = Signal(object)
    #: ``RunRecord`` — a run was created or changed status / best metric
    run_changed = Signal(object)
    #: ``ModelEvent`` — the model registry recorded an adoption, promotion, refusal or rollback
    model_changed = Signal(object)
