"""Colour-blind-safe class palettes, and the colours a dataset's classes take from the settings.

A dataset that names its own colours keeps them; one that does not (its schema holds the golden-ratio colours of
:func:`segstudio.core.types.default_colour`) takes the palette chosen in the preferences. Per-dataset and
per-class-name overrides from the settings win over both.

Palettes: Okabe & Ito (2008) "Color Universal Design", and Paul Tol's "bright" and "muted" qualitative schemes
(https://personal.sron.nl/~pault/), all distinguishable with the common colour-vision deficiencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from segstudio.core.types import BACKGROUND_NAMES, RGB, ClassSchema, default_colour

#: Okabe-Ito without its black (black is the background's).
OKABE_ITO: tuple[RGB, ...] = (
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66),
    (0, 114, 178), (213, 94, 0), (204, 121, 167), (153, 153, 153),
)
TOL_BRIGHT: tuple[RGB, ...] = (
    (68, 119, 170), (102, 204, 238), (34, 136, 51), (204, 187, 68),
    (238, 102, 119), (170, 51, 119), (187, 187, 187),
)
TOL_MUTED: tuple[RGB, ...] = (
    (204, 102, 119), (51, 34, 136), (221, 204, 119), (17, 119, 51), (136, 204, 238),
    (136, 34, 85), (68, 170, 153), (153, 153, 51), (170, 68, 153),
)

#: name → (label shown in the preferences, colours). ``golden`` is the old hue walk (not colour-blind safe).
PALETTES: dict[str, tuple[str, tuple[RGB, ...]]] = {
    "okabe_ito": ("Okabe-Ito (colour-blind safe)", OKABE_ITO),
    "tol_bright": ("Paul Tol bright (colour-blind safe)", TOL_BRIGHT),
    "tol_muted": ("Paul Tol muted (colour-blind safe)", TOL_MUTED),
    "golden": ("Hue walk (many classes, not colour-blind safe)", ()),
}
DEFAULT_PALETTE = "okabe_ito"


def palette_colour(palette: str, i: int) -> RGB:
    """The ``i``-th non-background colour of ``palette`` (0-based); past its end, the hue walk takes over."""
    cols = PALETTES.get(palette, PALETTES[DEFAULT_PALETTE])[1]
    if i < len(cols):
        return cols[i]
    return default_colour(i + 1)


def is_background(name: str) -> bool:
    return name.strip().lower() in BACKGROUND_NAMES


def uses_default_colours(schema: ClassSchema) -> bool:
    """True when the schema's colours are the built-in hue walk, i.e. the dataset named no colours of its own."""
    off = 1 if schema.multilabel else 0
    return all(c.colour == default_colour(c.id + off) or (c.id == 0 and c.colour == (0, 0, 0)) for c in schema)


def recolour(schema: ClassSchema, *, palette: str = DEFAULT_PALETTE,
             overrides: Mapping[str, RGB] | None = None) -> ClassSchema:
    """``schema`` with the palette's colours when it has only default ones, then ``overrides`` (class name →
    colour) applied. Background classes stay black unless overridden by name."""
    classes = list(schema.classes)
    if palette != "golden" and uses_default_colours(schema):
        n = 0
        for k, c in enumerate(classes):
            if is_background(c.name) or (not schema.multilabel and c.id == 0 and c.colour == (0, 0, 0)):
                continue
            classes[k] = replace(c, colour=palette_colour(palette, n))
            n += 1
    for k, c in enumerate(classes):
        if overrides and c.name in overrides:
            r, g, b = overrides[c.name]
            classes[k] = replace(c, colour=(int(r), int(g), int(b)))
    return replace(schema, classes=tuple(classes))
