"""``bench/quality.py`` says when a recipe's runs were cut short: its figures are then those of a shorter training."""

from __future__ import annotations

from bench.common import Figure
from bench.quality import truncation_notes


def _figs(key: str, epochs: float, recipe_epochs: float) -> list[Figure]:
    return [Figure(f"quality.cv.{key}.epochs", epochs, "epochs"),
            Figure(f"quality.cv.{key}.recipe_epochs", recipe_epochs, "epochs"),
            Figure(f"quality.cv.{key}.step_seconds", 3.4, "s"),
            Figure(f"quality.cv.{key}.whole_recipe_minutes", 131.0, "min")]


def test_a_cut_short_recipe_gets_a_note_with_the_minutes_that_would_train_it_whole():
    notes = truncation_notes(_figs("lungs_lr", 12, 80) + _figs("lesion", 120, 120))
    assert len(notes) == 1
    assert notes[0].startswith("NOTE lungs_lr: 12 of the recipe's 80 epochs")
    assert "3.4 s a step" in notes[0] and "About 131 minutes" in notes[0]


def test_whole_recipes_get_no_note():
    assert truncation_notes(_figs("lungs_lr", 80, 80) + _figs("lesion", 120, 120)) == []
    assert truncation_notes([]) == []
