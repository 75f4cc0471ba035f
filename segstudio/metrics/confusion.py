"""Pixel counts between a ground-truth mask and a prediction: the input of every score.

Two mask kinds (``segstudio.core.types.ClassSchema``):

* semantic — 2-D ``uint8``/``uint16`` class-index maps; one ``(C, C)`` confusion matrix (rows GT, columns
  prediction: scikit-learn's ``confusion_matrix(gt, pred, labels=range(C))`` layout) from a single
  ``np.bincount``. GT pixels equal to ``ignore_index`` are left out; so are prediction pixels equal to
  ``ignore_index`` *together with their GT pixel*, because a model that abstains says nothing about that pixel.
  The ignored pixels are in no cell, so ``matrix.sum()`` is the number of counted pixels (``ClassCounts.valid``).
  Any other value outside ``0..C-1`` is an error, not a silently dropped pixel.
* multi-label — 2-D ``uint64`` bitmasks, bit ``c`` per class; per-class TP/FP/FN/TN from bitwise operations and
  a 16-bit histogram per word (a per-bit ``count_nonzero`` loop is ~8x slower on a 2048², 29-class mask).

Both end in the same value object, :class:`ClassCounts`, so scores never care which kind produced them.
The tests check both against scikit-learn (``confusion_matrix``, ``multilabel_confusion_matrix``) on real masks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segstudio.core.types import ClassSchema


@dataclass(frozen=True)
class ClassCounts:
    """Per-class pixel counts, aligned with ``class_ids``.

    ``tp``, ``fp``, ``fn``, ``tn`` are ``(K,) int64`` arrays; ``valid`` is the number of pixels that counted
    (not ignored). For every class ``tp + fp + fn + tn == valid``.
    """

    class_ids: tuple[int, ...]
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    valid: int

    def __post_init__(self) -> None:
        for a in (self.tp, self.fp, self.fn, self.tn):
            a.setflags(write=False)

    @property
    def gt_pixels(self) -> np.ndarray:
        """``(K,) int64`` pixels of each class in the GT."""
        return self.tp + self.fn

    @property
    def pred_pixels(self) -> np.ndarray:
        """``(K,) int64`` pixels of each class in the prediction."""
        return self.tp + self.fp

    def index(self, class_id: int) -> int:
        return self.class_ids.index(class_id)

    def __add__(self, other: ClassCounts) -> ClassCounts:
        """Counts of two samples pooled (dataset-level "micro" figures)."""
        if other.class_ids != self.class_ids:
            raise ValueError(f"cannot add counts over classes {self.class_ids} and {other.class_ids}")
        return ClassCounts(
            class_ids=self.class_ids,
            tp=self.tp + other.tp,
            fp=self.fp + other.fp,
            fn=self.fn + other.fn,
            tn=self.tn + other.tn,
            valid=self.valid + other.valid,
        )


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> None:
    if gt.shape != pred.shape:
        raise ValueError(f"GT and prediction differ in shape: {gt.shape} vs {pred.shape}")


def confusion_matrix(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    num_classes: int,
    ignore_index: int | None = None,
) -> np.ndarray:
    """``(num_classes, num_classes) int64`` matrix ``M[g, p]`` = pixels with GT ``g`` and prediction ``p``.

    ``gt``, ``pred``: same-shape integer index maps (any shape, usually ``(H, W)`` ``uint8``/``uint16``).
    Pixels whose GT or prediction equals ``ignore_index`` are not counted. Any other value outside
    ``0..num_classes-1`` raises ``ValueError`` naming it, since silently dropping it would hide a broken mask.
    """
    _check_pair(gt, pred)
    g = np.asarray(gt).ravel()
    p = np.asarray(pred).ravel()
    if g.dtype == np.uint8 and p.dtype == np.uint8:
        return _confusion_u8(g, p, num_classes=num_classes, ignore_index=ignore_index)
    if ignore_index is not None:
        keep = (g != ignore_index) & (p != ignore_index)
        if not keep.all():
            g, p = g[keep], p[keep]
    for name, a in (("GT", g), ("prediction", p)):
        if a.size and (int(a.max()) >= num_classes or (a.dtype.kind == "i" and int(a.min()) < 0)):
            bad = sorted({int(v) for v in np.unique(a) if not 0 <= int(v) < num_classes})
            raise ValueError(f"{name} holds class values {bad[:10]} outside 0..{num_classes - 1}")
    # Combined index in the narrowest type that holds it: bincount's cast to intp is then the only big copy.
    wide = np.dtype(np.uint16 if num_classes * num_classes <= 65536 else np.int64)
    combined = g.astype(wide, copy=False) * np.asarray(num_classes, wide) + p.astype(wide, copy=False)
    return np.bincount(combined, minlength=num_classes * num_classes).reshape(num_classes, num_classes).astype(np.int64)


_CHUNK = 1 << 18


def _confusion_u8(g: np.ndarray, p: np.ndarray, *, num_classes: int, ignore_index: int | None) -> np.ndarray:
    """8-bit maps: one joint 256x256 histogram, no masking pass — the ignore rows/columns and any
    out-of-range value are read off the histogram afterwards (3 passes over the pixels instead of ~8)."""
    # In chunks of 256k pixels: bincount's int64 copy of its input then stays in cache (~2x on 2048²).
    hist = np.zeros(65536, np.int64)
    for i in range(0, g.size, _CHUNK):
        hist += np.bincount((g[i : i + _CHUNK].astype(np.uint16) << 8) | p[i : i + _CHUNK], minlength=65536)
    full = hist.reshape(256, 256)
    if ignore_index is not None and 0 <= ignore_index < 256:
        full[ignore_index, :] = 0
        full[:, ignore_index] = 0
    for name, present in (("GT", full.sum(axis=1)), ("prediction", full.sum(axis=0))):
        bad = [int(v) for v in np.flatnonzero(present[num_classes:]) + num_classes]
        if bad:
            raise ValueError(f"{name} holds class values {bad[:10]} outside 0..{num_classes - 1}")
    n = min(num_classes, 256)
    out = np.zeros((num_classes, num_classes), np.int64)
    out[:n, :n] = full[:n, :n]
    return out


def normalize_confusion(matrix: np.ndarray, *, over: str = "true") -> np.ndarray:
    """``(C, C) float64`` confusion matrix as shares, like scikit-learn's ``normalize=`` argument.

    ``over="true"``: each GT row sums to 1 (row ``g`` = where class ``g``'s pixels went; the diagonal is the
    recall); ``"pred"``: each prediction column sums to 1 (the diagonal is the precision); ``"all"``: the whole
    matrix sums to 1. A row/column/matrix without pixels stays ``NaN`` (scikit-learn writes 0 there), for the
    same reason as the scores' empty-class rule: "no pixel" is not "all wrong".
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix is square, got shape {m.shape}")
    if over == "true":
        den = m.sum(axis=1, keepdims=True)
    elif over == "pred":
        den = m.sum(axis=0, keepdims=True)
    elif over == "all":
        den = np.full((1, 1), m.sum())
    else:
        raise ValueError(f"unknown normalisation {over!r}; valid: 'true', 'pred', 'all'")
    out = np.full(m.shape, np.nan)
    np.divide(m, den, out=out, where=np.broadcast_to(den > 0, m.shape))
    return out


def counts_from_matrix(matrix: np.ndarray, class_ids: Sequence[int]) -> ClassCounts:
    """One-vs-rest counts of ``class_ids`` from a confusion matrix (``(C, C)``, rows GT, columns prediction)."""
    m = np.asarray(matrix, dtype=np.int64)
    ids = np.asarray(list(class_ids), dtype=np.intp)
    total = int(m.sum())
    tp = m[ids, ids]
    fn = m.sum(axis=1)[ids] - tp
    fp = m.sum(axis=0)[ids] - tp
    tn = total - tp - fp - fn
    return ClassCounts(class_ids=tuple(int(i) for i in ids), tp=tp, fp=fp, fn=fn, tn=tn, valid=total)


@functools.cache
def _bit_table() -> np.ndarray:
    """``(65536, 16) int64``: row ``v`` holds the 16 bits of ``v``."""
    return ((np.arange(65536, dtype=np.uint32)[:, None] >> np.arange(16, dtype=np.uint32)) & 1).astype(np.int64)


def _add_word_histograms(acc: np.ndarray, words: np.ndarray) -> None:
    """Add to ``acc`` (``(K, 65536) int64``) the histograms of the 16-bit pieces ``0..K-1`` of ``words``."""
    # Little-endian view: column k of the uint16 halves holds bits 16k..16k+15.
    halves = np.ascontiguousarray(words, dtype="<u8").view("<u2").reshape(-1, 4)
    for k in range(acc.shape[0]):
        acc[k] += np.bincount(halves[:, k], minlength=65536)


def _bits_from_histograms(acc: np.ndarray, n_bits: int) -> np.ndarray:
    """``(n_bits,) int64`` per-bit counts from 16-bit piece histograms (only occupied values are decoded)."""
    out = np.zeros(n_bits, np.int64)
    bits_of = _bit_table()
    for k in range(acc.shape[0]):
        nz = np.flatnonzero(acc[k, 1:]) + 1
        lo, hi = 16 * k, min(n_bits, 16 * k + 16)
        out[lo:hi] = (acc[k, nz] @ bits_of[nz])[: hi - lo]
    return out


def multilabel_counts(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    class_ids: Sequence[int],
    valid: np.ndarray | None = None,
) -> ClassCounts:
    """Per-class TP/FP/FN/TN of two ``uint64`` bitmasks (bit ``c`` = class ``c``), aligned with ``class_ids``.

    ``valid``: optional same-shape ``bool`` array; pixels where it is False are not counted (the multi-label
    analogue of an ignore index).
    """
    _check_pair(gt, pred)
    g = np.ascontiguousarray(gt, dtype=np.uint64).ravel()
    p = np.ascontiguousarray(pred, dtype=np.uint64).ravel()
    if valid is not None:
        if valid.shape != gt.shape:
            raise ValueError(f"valid mask shape {valid.shape} differs from the masks' {gt.shape}")
        keep = np.asarray(valid, bool).ravel()
        g, p = g[keep], p[keep]
    ids = [int(c) for c in class_ids]
    n_bits = max(ids, default=-1) + 1
    total = int(g.size)
    pieces = (n_bits + 15) // 16
    tp_h, fp_h, fn_h = (np.zeros((pieces, 65536), np.int64) for _ in range(3))
    # Chunks of 256k pixels keep the temporaries in cache; pixels empty in both masks add only TNs, so they
    # are dropped before the six histograms (whole empty chunks cost one pass).
    for i in range(0, total, _CHUNK):
        gc, pc = g[i : i + _CHUNK], p[i : i + _CHUNK]
        either = (gc | pc) != 0
        n_either = int(np.count_nonzero(either))
        if n_either == 0:
            continue
        if n_either < 0.75 * gc.size:
            gc, pc = gc[either], pc[either]
        _add_word_histograms(tp_h, gc & pc)
        _add_word_histograms(fp_h, pc & ~gc)
        _add_word_histograms(fn_h, gc & ~pc)
    tp_all, fp_all, fn_all = (_bits_from_histograms(h, n_bits) for h in (tp_h, fp_h, fn_h))
    idx = np.asarray(ids, dtype=np.intp)
    tp, fp, fn = tp_all[idx], fp_all[idx], fn_all[idx]
    return ClassCounts(class_ids=tuple(ids), tp=tp, fp=fp, fn=fn, tn=total - tp - fp - fn, valid=total)


def class_counts(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    schema: ClassSchema,
    valid: np.ndarray | None = None,
) -> ClassCounts:
    """Counts for every non-ignored class of ``schema``, for either mask kind.

    Semantic: ``gt``/``pred`` are index maps; ``schema.ignore_index`` pixels are skipped (``valid`` is also
    honoured). Multi-label: ``uint64`` bitmasks; ``valid`` marks the pixels that count.
    """
    ids = [c.id for c in schema if not c.ignore]
    if schema.multilabel:
        return multilabel_counts(gt, pred, class_ids=ids, valid=valid)
    n = max(schema.max_id, max(ids, default=0)) + 1
    g, p = gt, pred
    if valid is not None:
        keep = np.asarray(valid, bool)
        g, p = gt[keep], pred[keep]
    ignore = schema.ignore_index
    # Classes flagged ``ignore`` behave like the ignore index: not scored, and their pixels do not count.
    ignored_ids = [c.id for c in schema if c.ignore]
    if ignored_ids:
        drop = np.isin(g, ignored_ids) | np.isin(p, ignored_ids)
        g, p = g[~drop], p[~drop]
    m = confusion_matrix(g, p, num_classes=n, ignore_index=ignore)
    return counts_from_matrix(m, ids)
