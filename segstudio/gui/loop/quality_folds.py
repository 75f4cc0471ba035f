"""Ranking the labels with out-of-fold models, in the window: the judgement ``segstudio quality --folds K`` gives.

A model trained on the labels it judges has learned their mistakes and agrees with them; Review → Rank Labels with
Out-of-Fold Models… trains K models of a recipe instead, each on all but one K-th of the labels as they are now (the
latest correction, else the GT), predicts the K-th it did not see, and ranks every label with those predictions and
their probabilities (the model checks of ``metrics.suspicion``). It runs in the background with the fold and epoch
in the status bar; Stop ends it after the current batch without a result (the previous ranking stays). The fold
runs live in a temporary folder that goes when the job ends.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from segstudio.datasets.base import Dataset

#: folds offered, and the default (the benchmark's)
MIN_FOLDS, MAX_FOLDS, DEFAULT_FOLDS = 2, 10, 4
#: epochs per fold model by default: a judge needs to see the classes, not to win a benchmark (the label-noise
#: benchmark's Montgomery fold models train 20, ~9 minutes for the four on a 2-core CPU; 6 at 128 px were too weak to
#: rank a 16 px shift)
DEFAULT_EPOCHS = 20


@dataclass(frozen=True)
class FoldProgress:
    """Where the fold training is: ``done`` of ``total`` epochs over all folds, and what to say."""

    done: int
    total: int
    #: what the status bar's progress shows ("fold 2/4, epoch 3/10"), and its tooltip (longer)
    short: str
    text: str


@dataclass(frozen=True, kw_only=True)
class FoldSettings:
    folds: int
    recipe: str | None
    epochs: int
    #: further ``key=value`` config overrides (as ``segstudio quality --set``), after the epochs
    extra: tuple[str, ...] = ()

    @property
    def overrides(self) -> list[str]:
        # the fold's own held-out images are its validation: no inner hold-out, no early stop on it
        return [f"epochs={self.epochs}", "early_stopping=0", *self.extra]

    def describe(self) -> str:
        return f"{self.folds}-fold out-of-fold models ({self.recipe or 'default settings'}, {self.epochs} epochs each)"


def out_of_fold_rank_events(token: Any, dataset: Dataset, *, labels: Callable[[str], np.ndarray | None],
                            config: Any, folds: int, rules: Any,
                            rank: Callable[..., Iterator[object]]) -> Iterator[object]:
    """Runs in the worker thread: ``folds`` models of ``config`` trained on ``labels`` (:func:`~segstudio.engine.
    kfold.out_of_fold`), :class:`FoldProgress` per fold and epoch, then ``rank`` (the window's ranking generator)
    with their out-of-fold masks and probabilities. Nothing more once Stop was pressed."""
    from segstudio.engine.events import EpochEnd
    from segstudio.engine.kfold import FoldStarted, OutOfFold, out_of_fold

    epochs = max(1, int(config.epochs))
    total = folds * epochs
    fold, oof = 0, None
    with tempfile.TemporaryDirectory(prefix="segstudio-folds-") as root:
        for ev in out_of_fold(dataset, config, k=folds, run_root=root, cancel=token, labels=labels):
            if isinstance(ev, FoldStarted):
                fold = ev.fold
                yield FoldProgress(fold * epochs, total, f"fold {ev.fold + 1}/{ev.folds}, epoch 0/{epochs}",
                                   f"fold {ev.fold + 1}/{ev.folds}: training on {ev.train_samples} labels, "
                                   f"{ev.held_out} held out")
            elif isinstance(ev, EpochEnd):
                done = min(ev.epoch + 1, epochs)
                yield FoldProgress(fold * epochs + done, total, f"fold {fold + 1}/{folds}, epoch {done}/{epochs}",
                                   f"fold {fold + 1}/{folds}: epoch {done}/{epochs}, training loss "
                                   f"{ev.train_loss:.3f}")
            elif isinstance(ev, OutOfFold):
                oof = ev
    if oof is None or oof.cancelled or token.cancelled:
        return
    yield from rank(token, dataset, labels=labels, predictions=oof.mask, probabilities=oof.probs, rules=rules)


class FoldRankDialog(QDialog):
    """How many folds, which recipe and how many epochs the fold models train: the only choices the ranking has."""

    def __init__(self, *, recipes: list[str], recipe: str | None, labels: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Rank Labels with Out-of-Fold Models")
        lay = QVBoxLayout(self)
        intro = QLabel(
            "A model trained on these labels has learned their mistakes and judges them leniently. This trains "
            "one model per fold, each on the labels of the other folds, and lets it judge only the labels it did "
            f"not see. {labels} labels; the training runs in the background (Stop is in the status bar).")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.intro = intro
        form = QFormLayout()
        self.folds = QSpinBox()
        self.folds.setRange(MIN_FOLDS, MAX_FOLDS)
        self.folds.setValue(DEFAULT_FOLDS)
        self.folds.setToolTip("More folds: each model sees more labels, and the ranking takes longer")
        form.addRow("Folds", self.folds)
        self.recipe = QComboBox()
        self.recipe.addItem("Default settings", None)
        for name in recipes:
            self.recipe.addItem(name, name)
        if recipe is not None and recipe in recipes:
            self.recipe.setCurrentIndex(recipes.index(recipe) + 1)
        form.addRow("Recipe", self.recipe)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 500)
        self.epochs.setValue(DEFAULT_EPOCHS)
        self.epochs.setToolTip("Epochs each fold model trains: enough to see the classes")
        form.addRow("Epochs per fold", self.epochs)
        lay.addLayout(form)
        self.estimate = QLabel()
        self.estimate.setWordWrap(True)
        lay.addWidget(self.estimate)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Train and Rank")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.folds.valueChanged.connect(self._update)
        self.epochs.valueChanged.connect(self._update)
        self._update()

    def _update(self) -> None:
        k, e = self.folds.value(), self.epochs.value()
        self.estimate.setText(f"{k} models × {e} epochs = {k * e} epochs of training on {(k - 1)}/{k} of the "
                              "labels each, then one prediction per label.")

    def settings(self) -> FoldSettings:
        return FoldSettings(folds=self.folds.value(), recipe=self.recipe.currentData(), epochs=self.epochs.value())
