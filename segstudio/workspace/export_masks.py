"""What an export takes (issue 14, DESIGN §2): which mask each sample exports, how classes map, and the figures.

Per sample (:func:`choose_masks`): the GT with the latest correction applied, or the mask version chosen
(``"original"``: the dataset's GT; ``N``: each sample's newest version numbered ``N`` or lower);
``predictions="accepted"`` also takes versions saved by accepting a prediction (``"none"`` skips them and uses the
newest human version below, else the GT); ``"unreviewed"`` does that and fills images with neither GT nor a
correction with the model's prediction (the workspace's current checkpoint, else the newest other one).
:func:`load_choice` loads the chosen mask. Classes are kept, renamed and merged (equal new names merge) through one
:class:`ClassMapping`; :func:`change_counts` and :func:`class_pixels` are the per-image figures of the manifest and
the change report. Shared by the export (:mod:`segstudio.workspace.export`) and the write-back
(:mod:`segstudio.workspace.writeback`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from segstudio.core.errors import SegstudioError, UnknownKeyError
from segstudio.core.types import BACKGROUND_NAMES, ClassInfo, ClassSchema
from segstudio.datasets.base import Dataset, Sample
from segstudio.datasets.writing import DatasetExportError
from segstudio.workspace.model_predictions import ModelPredictions
from segstudio.workspace.records import MaskSource, MaskVersion, PredictionEntry
from segstudio.workspace.workspace import Workspace

PREDICTION_MODES = ("none", "accepted", "unreviewed")


class CancelLike(Protocol):
    """A cancel token (``segstudio.engine.cancel.CancelToken`` or anything with ``cancelled``)."""

    @property
    def cancelled(self) -> bool: ...


@dataclass(frozen=True)
class MaskChoice:
    """Where one sample's exported mask comes from. ``kind``: ``gt``, ``correction`` (any saved version a person
    made: painted, reverted, imported), ``accepted_prediction``, ``model_prediction`` or ``none`` (no mask)."""

    kind: str
    version: MaskVersion | None = None
    prediction: PredictionEntry | None = None
    stale: bool = False

    def describe(self) -> str:
        if self.version is not None:
            what = "accepted prediction" if self.kind == "accepted_prediction" else "correction"
            return f"{what} v{self.version.version}"
        if self.prediction is not None:
            return f"model prediction ({self.prediction.checkpoint_id})"
        return {"gt": "GT", "none": "no mask"}.get(self.kind, self.kind)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.kind, "used": self.describe(), "version": 0}
        if self.version is not None:
            d.update(version=self.version.version, mask_source=self.version.source.value,
                     author=self.version.author, mask_sha256=self.version.sha256)  # fmt: skip
        if self.prediction is not None:
            d.update(version=None, checkpoint=self.prediction.checkpoint_id,
                     model_stamp=self.prediction.model_stamp, stale=self.stale)  # fmt: skip
        if self.kind == "none":
            d["version"] = None
        return d


# --- classes ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassMapping:
    """Dataset classes -> export classes. ``lut`` (semantic) maps every pixel value (values with no class, the
    ignore index among them, map to themselves); ``bits`` (multi-label) lists ``(old bit, new bit)``. Both
    ``None``: the masks are unchanged (only names may differ)."""

    source: ClassSchema
    schema: ClassSchema
    names: Mapping[str, str | None]
    lut: np.ndarray | None = None
    bits: tuple[tuple[int, int], ...] | None = None

    @property
    def identity(self) -> bool:
        return self.lut is None and self.bits is None

    def apply(self, mask: np.ndarray) -> np.ndarray:
        """A ``(H, W)`` mask of the dataset's schema in the export schema (``schema.mask_dtype()``)."""
        if self.source.multilabel:
            m = mask.astype(np.uint64, copy=False)
            if self.bits is None:
                return m
            out = np.zeros(m.shape, np.uint64)
            for old, new in self.bits:
                out |= ((m >> np.uint64(old)) & np.uint64(1)) << np.uint64(new)
            return out
        dtype = self.schema.mask_dtype()
        if self.lut is None:
            return mask.astype(dtype, copy=False)
        m = mask if mask.dtype in (np.uint8, np.uint16) else mask.astype(np.uint16)
        return self.lut[: 1 << (8 * m.dtype.itemsize)][m].astype(dtype, copy=False)


def background_class(schema: ClassSchema) -> ClassInfo | None:
    """The semantic class that is "nothing here" (by name: CamVid's class 0 is Sky, so never just id 0)."""
    if schema.multilabel:
        return None
    return next((c for c in schema if c.name.strip().lower() in BACKGROUND_NAMES), None)


def class_mapping(schema: ClassSchema, *, classes: tuple[str, ...] | None = None,
                  rename: Mapping[str, str] | None = None) -> ClassMapping:  # fmt: skip
    """Keep ``classes`` (names; ``None``: all; a semantic background class is always kept) and rename by
    ``rename`` (old name -> new name; classes given one new name merge into the first of them). Ids stay as they
    are when nothing is dropped or merged; otherwise the kept classes are numbered 0.. (bits 0..) in their order."""
    rename = {str(k): str(v) for k, v in (rename or {}).items()}
    names = list(schema.names)
    for n in [*(classes or ()), *rename]:
        if n not in names:
            raise UnknownKeyError("class", n, names)
    for old, new in rename.items():
        if not str(new).strip():
            raise DatasetExportError(f"The new name of class {old!r} is empty.", fix="Give --rename OLD=NEW a name.")
    bg = background_class(schema)
    keep = set(names) if classes is None else set(classes) | ({bg.name} if bg is not None else set())
    target = {c.name: (rename.get(c.name, c.name) if c.name in keep else None) for c in schema}
    kept = [c for c in schema if target[c.name] is not None]
    order: list[str] = []
    first: dict[str, ClassInfo] = {}
    for c in kept:
        t = str(target[c.name])
        if t not in first:
            first[t] = c
            order.append(t)
    if not order:
        raise DatasetExportError("No class is left to export.", fix="Keep at least one class (--classes).")
    same_ids = len(kept) == len(schema) and len(order) == len(kept)
    if same_ids:
        infos = tuple(ClassInfo(c.id, str(target[c.name]), c.colour, c.ignore) for c in schema)
        out = ClassSchema(infos, multilabel=schema.multilabel, ignore_index=schema.ignore_index)
        return ClassMapping(schema, out, target)
    new_id = {t: i for i, t in enumerate(order)}
    infos = tuple(ClassInfo(new_id[t], t, first[t].colour, first[t].ignore) for t in order)
    out = ClassSchema(infos, multilabel=schema.multilabel, ignore_index=schema.ignore_index)
    if schema.multilabel:
        bits = tuple((c.id, new_id[str(target[c.name])]) for c in kept)
        return ClassMapping(schema, out, target, bits=bits)
    if bg is not None:
        dropped_to = new_id[str(target[bg.name])]
    elif schema.ignore_index is not None:
        dropped_to = schema.ignore_index
    else:
        raise DatasetExportError(
            "The dataset has no class named background (and no ignore index) for the classes left out to become.",
            fix="Keep every class, or rename one of the kept classes to background with --rename NAME=background.",
        )
    size = 1 << (8 * schema.mask_dtype().itemsize)
    lut = np.arange(size, dtype=np.int64)
    for c in schema:
        goes_to = target[c.name]
        lut[c.id] = new_id[goes_to] if goes_to is not None else dropped_to
    return ClassMapping(schema, out, target, lut=lut.astype(np.uint16))


# --- what each sample exports -----------------------------------------------------------------------------------
def _pick_version(history: list[MaskVersion], *, version: str | int, accepted: bool) -> MaskVersion | None:
    cands = history if version == "latest" else [v for v in history if v.version <= int(version)]
    for v in reversed(cands):
        if accepted or v.source != MaskSource.ACCEPTED_PREDICTION:
            return v
    return None


def _choose(sample: Sample, history: list[MaskVersion], *, version: str | int, predictions: str,
            model: ModelPredictions | None) -> MaskChoice:  # fmt: skip
    """What ``sample`` exports (see the module docstring)."""
    if version != "original":
        v = _pick_version(history, version=version, accepted=predictions != "none")
        if v is not None:
            kind = "accepted_prediction" if v.source == MaskSource.ACCEPTED_PREDICTION else "correction"
            return MaskChoice(kind, version=v)
    if sample.has_gt:
        return MaskChoice("gt")
    if predictions == "unreviewed" and model is not None:
        e = model.entry(sample)
        if e is not None:
            return MaskChoice("model_prediction", prediction=e, stale=model.is_stale(sample))
    return MaskChoice("none")


def _check_version(version: str | int) -> str | int:
    if isinstance(version, int) and not isinstance(version, bool) and version >= 0:
        return version if version > 0 else "original"
    if isinstance(version, str):
        v = version.strip().lower()
        if v in ("latest", "original"):
            return v
        if v.isdigit():
            return _check_version(int(v))
    raise DatasetExportError(f"Unknown mask version {version!r}.",
                             fix="Use latest, original, or a version number (1, 2, ...).")  # fmt: skip


def choose_masks(dataset: Dataset, workspace: Workspace | None, samples: list[Sample], *, version: str | int,
                 predictions: str) -> list[MaskChoice]:  # fmt: skip
    """What each of ``samples`` exports (in order), reading the workspace's versions and, for
    ``predictions="unreviewed"``, its model predictions."""
    version = _check_version(version)
    if predictions not in PREDICTION_MODES:
        raise UnknownKeyError("predictions mode", predictions, list(PREDICTION_MODES))
    if workspace is None:
        return [MaskChoice("gt") if s.has_gt else MaskChoice("none") for s in samples]
    model = None
    if predictions == "unreviewed":
        cur = workspace.models.current()
        ckpt = cur.checkpoint if cur is not None else None
        model = ModelPredictions(workspace.predictions, dataset, checkpoint=ckpt)
    latest = workspace.versions.latest_all() if version != "original" else {}
    out = []
    for s in samples:
        v = latest.get(s.id)
        if v is None:
            history: list[MaskVersion] = []
        elif version == "latest" and (predictions != "none" or v.source != MaskSource.ACCEPTED_PREDICTION):
            history = [v]  # the usual case: one query for the whole dataset
        else:
            history = workspace.versions.versions(s.id)
        out.append(_choose(s, history, version=version, predictions=predictions, model=model))
    return out


def load_choice(dataset: Dataset, workspace: Workspace | None, sample: Sample, choice: MaskChoice) -> np.ndarray | None:
    """The mask of a choice in the dataset's schema (``schema.mask_dtype()``), or ``None`` for ``none``."""
    if choice.kind == "gt":
        return dataset.load_gt(sample)
    if choice.kind == "none":
        return None
    assert workspace is not None
    if choice.version is not None:
        m = workspace.versions.load(choice.version)
    else:
        assert choice.prediction is not None
        m = workspace.predictions.load(choice.prediction)
    if m.ndim != 2:
        raise SegstudioError(f"The saved mask of {sample.id} is not a 2-D mask ({m.shape}).",
                             path=choice.version.path if choice.version else None,
                             fix="Open the sample in the app and save it again.")  # fmt: skip
    return m.astype(dataset.schema.mask_dtype(), copy=False)



# --- figures ----------------------------------------------------------------------------------------------------
def change_counts(old: np.ndarray | None, new: np.ndarray | None, schema: ClassSchema) -> dict[str, tuple[int, int]]:
    """``class name -> (pixels added, pixels removed)`` going from ``old`` to ``new`` (either may be ``None``: no
    mask, i.e. all background), for classes with a change. Semantic values with no class are named by value."""
    if new is None and old is None:
        return {}
    ref = new if new is not None else old
    assert ref is not None
    if old is None:
        old = np.zeros_like(ref)
    if new is None:
        new = np.zeros_like(ref)
    out: dict[str, tuple[int, int]] = {}
    if schema.multilabel:
        o, n = old.astype(np.uint64, copy=False), new.astype(np.uint64, copy=False)
        diff = o ^ n
        idx = np.flatnonzero(diff)
        if not idx.size:
            return {}
        d, nn = diff.ravel()[idx], n.ravel()[idx]
        for c in schema:
            b = np.uint64(1) << np.uint64(c.id)
            changed = (d & b) != 0
            added = int(np.count_nonzero(changed & ((nn & b) != 0)))
            removed = int(np.count_nonzero(changed)) - added
            if added or removed:
                out[c.name] = (added, removed)
        return out
    changed = old != new
    if not changed.any():
        return {}
    o, n = old[changed].astype(np.int64), new[changed].astype(np.int64)
    size = int(max(o.max(), n.max())) + 1
    add, rem = np.bincount(n, minlength=size), np.bincount(o, minlength=size)
    for v in np.flatnonzero(add + rem):
        name = _value_name(schema, int(v))
        out[name] = (int(add[v]), int(rem[v]))
    return out


def class_pixels(mask: np.ndarray | None, schema: ClassSchema) -> dict[str, int]:
    """``class name -> pixels`` of one mask (classes present only)."""
    if mask is None:
        return {}
    if schema.multilabel:
        m = mask.astype(np.uint64, copy=False)
        out = {}
        for c in schema:
            k = int(np.count_nonzero(m & (np.uint64(1) << np.uint64(c.id))))
            if k:
                out[c.name] = k
        return out
    if mask.dtype == np.uint8:
        import cv2

        # a histogram: several times faster than bincount on a 1024² mask (every exported mask is counted)
        hist = cv2.calcHist([np.ascontiguousarray(mask)], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    else:
        hist = np.bincount(mask.ravel().astype(np.intp, copy=False))
    return {_value_name(schema, int(v)): int(hist[v]) for v in np.flatnonzero(hist)}


def _value_name(schema: ClassSchema, v: int) -> str:
    if schema.has_id(v):
        return schema.by_id(v).name
    return "(ignore)" if v == schema.ignore_index else f"(value {v})"
