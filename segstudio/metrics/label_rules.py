"""What a dataset's labels must look like, declared per class: the rules the label-quality checks hold masks to.

Declared in the dataset's ``classes.json`` (beside the class list the formats already read) or in a file of its
own (``segstudio quality --rules FILE``), in the same shape::

    {"classes": [
        {"name": "left lung", "components": 1, "area": [0.03, 0.30], "image_side": "right"},
        {"name": "right lung", "components": 1, "image_side": "left"},
        {"name": "scapula", "components": [0, 2], "may_overlap": ["clavicle"]}
     ],
     "may_overlap": [["radius", "ulna"]]}

- ``components``: how many separate parts the class has in one image — a number, or ``[min, max]``;
- ``area``: ``[min, max]`` fraction of the image (of its content, without constant bands) the class covers when present;
- ``image_side``: ``"left"``, ``"right"``, ``"top"`` or ``"bottom"`` — the half of the image its centre lies in
  (a left lung is on the image's right in a PA chest X-ray);
- ``may_overlap``: classes it may share pixels with (multi-label masks); any other overlap is reported.

Classes are named by ``name`` (or ``id``). A rule left out is learned from the dataset instead (see
:mod:`segstudio.metrics.suspicion`). Unknown keys are refused with the file named: a typo must not silently
switch a rule off.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segstudio.core.errors import SegstudioError
from segstudio.core.types import ClassSchema

__all__ = ["ClassRules", "LabelRules", "RulesError", "read_rules", "rules_from_dict"]

SIDES = ("left", "right", "top", "bottom")
_CLASS_KEYS = {"id", "name", "colour", "color", "ignore", "components", "area", "image_side", "may_overlap"}
MAX_RULES_BYTES = 4 * 2**20


class RulesError(SegstudioError):
    """A rules file that cannot be used."""


@dataclass(frozen=True, kw_only=True)
class ClassRules:
    class_id: int
    components: tuple[int, int] | None = None
    area: tuple[float, float] | None = None
    image_side: str | None = None


@dataclass(frozen=True, kw_only=True)
class LabelRules:
    """Rules per class id, and the pairs of class ids that may overlap (multi-label)."""

    classes: Mapping[int, ClassRules] = field(default_factory=dict)
    may_overlap: frozenset[frozenset[int]] = frozenset()
    source: str = ""

    def of(self, class_id: int) -> ClassRules | None:
        return self.classes.get(class_id)

    def overlap_allowed(self, a: int, b: int) -> bool:
        return frozenset((a, b)) in self.may_overlap

    @property
    def empty(self) -> bool:
        return not self.classes and not self.may_overlap


def _bad(path: str, where: str, value: Any, want: str) -> RulesError:
    return RulesError(f"{where}: {value!r} is not {want}.", path=path or None,
                      fix="See docs/quality.md for the rule keys (components, area, image_side, may_overlap).")


def _class_id(schema: ClassSchema, ref: Any, path: str, where: str) -> int:
    for c in schema:
        if (isinstance(ref, str) and c.name == ref) or (isinstance(ref, int) and not isinstance(ref, bool) and c.id == ref):
            return c.id
    raise RulesError(f"{where}: the dataset has no class {ref!r}.", path=path or None,
                     fix=f"Name one of: {', '.join(c.name for c in schema)}.")


def rules_from_dict(doc: Any, schema: ClassSchema, *, path: str = "") -> LabelRules:
    """The rules of a ``classes.json``-shaped document for ``schema``'s classes; ``RulesError`` naming the file and
    the entry on anything malformed."""
    if not isinstance(doc, dict):
        raise _bad(path, "the top level", type(doc).__name__, 'an object {"classes": [...]}')
    entries = doc.get("classes", [])
    if not isinstance(entries, list):
        raise _bad(path, "classes", entries, "a list")
    out: dict[int, ClassRules] = {}
    pairs: set[frozenset[int]] = set()
    for i, e in enumerate(entries):
        where = f"classes[{i}]"
        if not isinstance(e, dict):
            raise _bad(path, where, e, "an object")
        unknown = set(e) - _CLASS_KEYS
        if unknown:
            raise RulesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}.", path=path or None,
                             fix="Rule keys are components, area, image_side and may_overlap.")
        cid = _class_id(schema, e.get("name", e.get("id")), path, where)
        comp = e.get("components")
        components = None
        if comp is not None:
            if isinstance(comp, int) and not isinstance(comp, bool) and comp >= 0:
                components = (comp, comp)
            elif (isinstance(comp, list) and len(comp) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                    and v >= 0 for v in comp) and comp[0] <= comp[1]):
                components = (comp[0], comp[1])
            else:
                raise _bad(path, f"{where}.components", comp, "a count or [min, max]")
        area = e.get("area")
        if area is not None:
            if not (isinstance(area, list) and len(area) == 2 and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                                       for v in area) and 0 <= area[0] <= area[1] <= 1):
                raise _bad(path, f"{where}.area", area, "[min, max] fractions of the image between 0 and 1")
            area = (float(area[0]), float(area[1]))
        side = e.get("image_side")
        if side is not None and side not in SIDES:
            raise _bad(path, f"{where}.image_side", side, "one of " + ", ".join(SIDES))
        out[cid] = ClassRules(class_id=cid, components=components, area=area, image_side=side)
        for other in e.get("may_overlap", []) or []:
            pairs.add(frozenset((cid, _class_id(schema, other, path, f"{where}.may_overlap"))))
    top = doc.get("may_overlap", [])
    if not isinstance(top, list):
        raise _bad(path, "may_overlap", top, "a list of [class, class] pairs")
    for j, pair in enumerate(top):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise _bad(path, f"may_overlap[{j}]", pair, "a [class, class] pair")
        pairs.add(frozenset(_class_id(schema, p, path, f"may_overlap[{j}]") for p in pair))
    return LabelRules(classes=out, may_overlap=frozenset(pairs), source=path)


def read_rules(path: str | Path, schema: ClassSchema) -> LabelRules:
    """The rules in the JSON file ``path`` (a ``classes.json`` or a rules file of the same shape)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_RULES_BYTES:
            raise RulesError("The rules file is too large to be a rules file.", path=p, fix="Give the classes.json.")
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RulesError("The rules file does not exist.", path=p, fix="Check the path.") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RulesError(f"The rules file cannot be read as JSON: {exc}.", path=p,
                         fix="Fix the JSON (docs/quality.md shows the shape).") from exc
    return rules_from_dict(doc, schema, path=str(p))
