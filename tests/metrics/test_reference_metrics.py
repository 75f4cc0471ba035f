"""Every metric of ``segstudio.metrics`` against an independent implementation, on the real Montgomery lung masks.

References: scikit-learn (confusion matrix, Dice = F1, IoU = Jaccard, precision, recall, specificity = recall of
"not the class", accuracy), MONAI (HD95 and average surface distance, and its edge definition), and a scipy
computation written here (``binary_erosion`` + ``distance_transform_edt(sampling=spacing)``). "Predictions" are
realistic perturbations of real GT masks: a lung eroded or dilated, a lung shifted, another patient's lungs, a lung
missed, part of one lung labelled as the other, a band of unlabelled (ignore) pixels.

MONAI computes in float32, so its figures are compared with a relative tolerance of 1e-6 (float32 rounding); the
float64 scipy reference is held to 1e-9.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from scipy import ndimage

from segstudio.core.types import ClassSchema
from segstudio.metrics.confusion import class_counts, confusion_matrix, multilabel_counts, normalize_confusion
from segstudio.metrics.scores import (
    average_surface_distance,
    class_accuracy,
    dice,
    hd95,
    iou,
    pixel_accuracy,
    precision,
    recall,
    specificity,
    surface_points,
)

IGNORE = 255
SCHEMA = ClassSchema.from_names(["background", "left lung", "right lung"], ignore_index=IGNORE)
LABELS = [0, 1, 2]
SPACINGS = [(1.0, 1.0), (0.7, 0.5)]
N_IMAGES = 3  # images per case: enough outlines of different shapes, quick on 2 cores


# ---- real masks and their perturbations ------------------------------------------------------------------------


def _names(root: Path) -> list[str]:
    names = sorted(p.name for p in (root / "leftMask").glob("*.png"))
    assert len(names) > N_IMAGES, f"expected Montgomery lung masks in {root / 'leftMask'}"
    return names


def _planes(root: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    def read(folder: str) -> np.ndarray:
        img = cv2.imread(str(root / folder / name), cv2.IMREAD_GRAYSCALE)
        assert img is not None, f"cannot read {root / folder / name}"
        return np.asarray(img) >= 128

    return read("leftMask"), read("rightMask")


def _compose(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    m = np.zeros(left.shape, np.uint8)
    m[left] = 1
    m[right] = 2
    return m


def _morph(plane: np.ndarray, op: int, size: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.morphologyEx(plane.view(np.uint8), op, k) != 0


def _shift(plane: np.ndarray, dy: int, dx: int) -> np.ndarray:
    m = cv2.warpAffine(plane.view(np.uint8), np.array([[1, 0, dx], [0, 1, dy]], np.float32), plane.shape[::-1])
    return np.asarray(m) != 0


def _case_eroded(left: np.ndarray, right: np.ndarray, **_: Any) -> tuple[np.ndarray, np.ndarray]:
    return _morph(left, cv2.MORPH_ERODE, 9), _morph(right, cv2.MORPH_ERODE, 5)


def _case_dilated(left: np.ndarray, right: np.ndarray, **_: Any) -> tuple[np.ndarray, np.ndarray]:
    return _morph(left, cv2.MORPH_DILATE, 7), _morph(right, cv2.MORPH_DILATE, 11)


def _case_shifted(left: np.ndarray, right: np.ndarray, **_: Any) -> tuple[np.ndarray, np.ndarray]:
    return _shift(left, 6, -9), _shift(right, -4, 3)


def _case_other_patient(left: np.ndarray, right: np.ndarray, *, other: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return other


def _case_left_missed(left: np.ndarray, right: np.ndarray, **_: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros_like(left), _morph(right, cv2.MORPH_CLOSE, 15)


def _case_confused(left: np.ndarray, right: np.ndarray, **_: Any) -> tuple[np.ndarray, np.ndarray]:
    """The lower third of the right lung labelled as left, plus a spurious left-lung blob."""
    rows = np.flatnonzero(right.any(axis=1))
    cut = int(rows[0] + 2 * (rows[-1] - rows[0]) // 3)
    moved = right.copy()
    moved[:cut] = False
    blob = np.zeros_like(left)
    cv2.circle(blob.view(np.uint8), (left.shape[1] // 2, left.shape[0] // 8), 9, 1, -1)
    return left | moved | blob, right & ~moved


CASES: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "eroded": _case_eroded,
    "dilated": _case_dilated,
    "shifted": _case_shifted,
    "other_patient": _case_other_patient,
    "left_missed": _case_left_missed,
    "confused": _case_confused,
}


def _pairs(root: Path, case: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(gt, pred)`` semantic ``uint8`` maps (0 background, 1 left, 2 right) for the first images."""
    names = _names(root)
    out = []
    for i in range(N_IMAGES):
        left, right = _planes(root, names[i])
        p_left, p_right = CASES[case](left, right, other=_planes(root, names[-1 - i]))
        out.append((_compose(left, right), _compose(p_left, p_right)))
    return out


def _with_ignore(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A band of unlabelled GT rows across both lungs and an abstaining prediction block."""
    gt, pred = gt.copy(), pred.copy()
    rows = np.flatnonzero((gt > 0).any(axis=1))
    mid = int(rows[len(rows) // 2])
    gt[mid : mid + 12] = IGNORE
    pred[rows[0] : rows[0] + 20, : gt.shape[1] // 3] = IGNORE
    return gt, pred


@pytest.fixture(scope="module")
def sk() -> Any:
    return pytest.importorskip("sklearn.metrics")


@pytest.fixture(scope="module")
def monai_metrics() -> Iterator[Any]:
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("monai.metrics")
    # MONAI's many small torch.any calls on a 512² mask cost ~17x more with an intra-op thread pool on a busy
    # 2-core machine; one thread for this module, the caller's setting back afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield metrics
    torch.set_num_threads(threads)


# ---- counts, scores and the confusion matrix against scikit-learn -------------------------------------------------


def _nan_equal(ours: Any, ref: Any, tol: float = 1e-12) -> None:
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), (ours, ref)
    ok = ~np.isnan(ref)
    assert np.allclose(ours[ok], ref[ok], rtol=0, atol=tol), (ours, ref)


@pytest.mark.parametrize("ignore", [False, True], ids=["all_pixels", "ignore_index"])
@pytest.mark.parametrize("case", list(CASES))
def test_scores_and_confusion_match_sklearn(montgomery: Path, sk: Any, case: str, ignore: bool) -> None:
    for gt, pred in _pairs(montgomery, case):
        if ignore:
            gt, pred = _with_ignore(gt, pred)
        keep = (gt != IGNORE) & (pred != IGNORE)
        y, yp = gt[keep], pred[keep]
        assert y.size < gt.size if ignore else y.size == gt.size

        ref_m = sk.confusion_matrix(y, yp, labels=LABELS)
        ours_m = confusion_matrix(gt, pred, num_classes=3, ignore_index=IGNORE if ignore else None)
        assert ours_m.tolist() == ref_m.tolist()
        # the 16-bit and signed general paths agree with the 8-bit fast path
        assert confusion_matrix(gt.astype(np.uint16), pred.astype(np.uint16), num_classes=3,
                                ignore_index=IGNORE if ignore else None).tolist() == ref_m.tolist()
        gi, pi = gt.astype(np.int32), pred.astype(np.int32)
        gi[gt == IGNORE], pi[pred == IGNORE] = -1, -1
        assert confusion_matrix(gi, pi, num_classes=3, ignore_index=-1).tolist() == ref_m.tolist()
        for over, axis in (("true", 1), ("pred", 0), ("all", None)):
            shares = normalize_confusion(ours_m, over=over)
            # scikit-learn writes 0 in a row/column without pixels (a missed lung's column); segstudio NaN
            empty = np.broadcast_to(ours_m.sum(axis=axis, keepdims=True) == 0, shares.shape)
            assert np.array_equal(np.isnan(shares), empty)
            ref_shares = sk.confusion_matrix(y, yp, labels=LABELS, normalize=over)
            assert np.allclose(np.where(empty, 0.0, shares), ref_shares, rtol=0, atol=1e-12)

        c = class_counts(gt, pred, schema=SCHEMA)
        assert c.valid == y.size and c.class_ids == (0, 1, 2)
        kw = {"labels": LABELS, "average": None, "zero_division": np.nan}
        _nan_equal(dice(c), sk.f1_score(y, yp, **kw))
        # jaccard_score takes no NaN zero_division; every class here is in GT or prediction, so none is needed
        assert not np.isnan(iou(c)).any()
        _nan_equal(iou(c), sk.jaccard_score(y, yp, labels=LABELS, average=None, zero_division=0))
        _nan_equal(precision(c), sk.precision_score(y, yp, **kw))
        _nan_equal(recall(c), sk.recall_score(y, yp, **kw))
        # specificity of class k = recall of "not k"; defined for every class here (all present in GT or pred)
        ref_spec = [sk.recall_score(y != k, yp != k, zero_division=np.nan) for k in LABELS]
        _nan_equal(specificity(c), ref_spec)
        _nan_equal(class_accuracy(c), [sk.accuracy_score(y == k, yp == k) for k in LABELS])
        assert pixel_accuracy(gt, pred, valid=keep) == pytest.approx(sk.accuracy_score(y, yp), abs=1e-12)
        # the class means the app shows (lungs only; NaN classes left out) = sklearn's macro averages
        fg = [1, 2]
        present = [k for k in fg if np.any(y == k) or np.any(yp == k)]
        assert np.nanmean(dice(c)[1:]) == pytest.approx(
            sk.f1_score(y, yp, labels=present, average="macro", zero_division=np.nan), abs=1e-12
        )
        assert np.nanmean(iou(c)[1:]) == pytest.approx(
            sk.jaccard_score(y, yp, labels=present, average="macro", zero_division=0), abs=1e-12
        )


def test_multilabel_counts_match_sklearn(montgomery: Path, sk: Any) -> None:
    """Overlapping classes (left, right, and both lungs as a third bit): per-class counts and scores."""
    for case in ("dilated", "shifted", "confused"):
        for gt, pred in _pairs(montgomery, case):
            def bits(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                planes = np.stack([m == 1, m == 2, m > 0], axis=-1)
                word = (planes.astype(np.uint64) << np.arange(3, dtype=np.uint64)).sum(-1).astype(np.uint64)
                return word, planes.reshape(-1, 3)

            gw, gy = bits(gt)
            pw, py = bits(pred)
            c = multilabel_counts(gw, pw, class_ids=[0, 1, 2])
            ref = sk.multilabel_confusion_matrix(gy, py)  # (3, 2, 2): [[tn, fp], [fn, tp]]
            assert c.tn.tolist() == ref[:, 0, 0].tolist() and c.fp.tolist() == ref[:, 0, 1].tolist()
            assert c.fn.tolist() == ref[:, 1, 0].tolist() and c.tp.tolist() == ref[:, 1, 1].tolist()
            kw = {"average": None, "zero_division": np.nan}
            _nan_equal(dice(c), sk.f1_score(gy, py, **kw))
            _nan_equal(iou(c), sk.jaccard_score(gy, py, average=None, zero_division=0))
            _nan_equal(precision(c), sk.precision_score(gy, py, **kw))
            _nan_equal(recall(c), sk.recall_score(gy, py, **kw))
            _nan_equal(specificity(c), [sk.recall_score(~gy[:, k], ~py[:, k]) for k in range(3)])


def test_empty_class_conventions(montgomery: Path, sk: Any) -> None:
    """A class in neither mask is "not applicable" (NaN) in every ratio score, specificity included, where
    scikit-learn's specificity (recall of the negatives) says 1.0 — a documented, chosen difference."""
    schema = ClassSchema.from_names(["background", "left lung", "right lung", "heart"])
    gt, pred = _pairs(montgomery, "eroded")[0]
    c = class_counts(gt, pred, schema=schema)
    for score in (dice, iou, precision, recall, specificity):
        assert math.isnan(score(c)[3]), score.__name__
    assert sk.recall_score(gt.ravel() != 3, pred.ravel() != 3) == 1.0
    assert class_accuracy(c)[3] == 1.0
    # the specificity of a class that covers every counted pixel has no negative to reject
    full = np.ones((4, 4), np.uint8)
    assert math.isnan(specificity(class_counts(full, full, schema=schema))[1])
    # a missed lung: recall 0, precision NaN (nothing predicted), specificity 1
    left_missed = _pairs(montgomery, "left_missed")[0]
    c = class_counts(*left_missed, schema=schema)
    assert recall(c)[1] == 0.0 and math.isnan(precision(c)[1]) and specificity(c)[1] == 1.0 and dice(c)[1] == 0.0


# ---- surface distances against MONAI and scipy -------------------------------------------------------------------


def _scipy_surface(m: np.ndarray) -> np.ndarray:
    """MONAI's edge written out with scipy: the mask minus its erosion by the 4-connected cross."""
    return m & ~ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(2, 1), border_value=0)


def _scipy_distances(a: np.ndarray, b: np.ndarray, spacing: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    sa, sb = _scipy_surface(a), _scipy_surface(b)
    d_ab = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    d_ba = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    return d_ab, d_ba


def _one_hot(m: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.stack([m == k for k in LABELS]).astype(np.float32))[None]


@pytest.mark.parametrize("case", list(CASES))
def test_surface_is_monai_edge(montgomery: Path, monai_metrics: Any, case: str) -> None:
    from monai.metrics.utils import get_mask_edges

    for gt, pred in _pairs(montgomery, case):
        for k in (1, 2):
            a, b = pred == k, gt == k
            if not (a.any() or b.any()):
                continue
            e_pred, e_gt = get_mask_edges(a, b, crop=False)  # numpy in, numpy out
            for plane, edges in ((a, e_pred), (b, e_gt)):
                pts = surface_points(plane)
                ours = np.zeros(plane.shape, bool)
                if pts is not None:
                    ours[pts[:, 0].astype(int), pts[:, 1].astype(int)] = True
                assert np.array_equal(ours, np.asarray(edges, bool))
                assert np.array_equal(ours, _scipy_surface(plane))


@pytest.mark.parametrize("spacing", SPACINGS, ids=["px", "mm_0.7x0.5"])
@pytest.mark.parametrize("case", list(CASES))
def test_hd95_and_asd_match_monai(montgomery: Path, monai_metrics: Any, case: str, spacing: tuple[float, float]) -> None:
    for gt, pred in _pairs(montgomery, case):
        yp, y = _one_hot(pred), _one_hot(gt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MONAI warns about the missed lung; the value is what is checked
            ref_hd = monai_metrics.compute_hausdorff_distance(yp, y, percentile=95, spacing=list(spacing))[0]
            ref_h = monai_metrics.compute_hausdorff_distance(yp, y, spacing=list(spacing))[0]
            ref_asd = monai_metrics.compute_average_surface_distance(yp, y, symmetric=True, spacing=list(spacing))[0]
            ref_dir = monai_metrics.compute_average_surface_distance(yp, y, symmetric=False, spacing=list(spacing))[0]
        for j, k in enumerate((1, 2)):
            a, b = gt == k, pred == k
            pairs = (
                (hd95(a, b, spacing=spacing), ref_hd[j]),
                (hd95(b, a, spacing=spacing), ref_hd[j]),
                (hd95(a, b, spacing=spacing, percentile=100.0), ref_h[j]),
                (average_surface_distance(a, b, spacing=spacing), ref_asd[j]),
                (average_surface_distance(a, b, spacing=spacing, symmetric=False), ref_dir[j]),
            )
            for n, (ours, ref) in enumerate(pairs):
                ref = float(ref)
                if n < 2 and math.isnan(ref) and (a.any() != b.any()):
                    # the one documented difference: MONAI's percentile HD of a missed object is NaN (see below)
                    assert ours == math.inf
                elif math.isinf(ref):
                    assert ours == ref
                else:
                    assert ours == pytest.approx(ref, rel=1e-6, abs=1e-6), (case, k, spacing)


@pytest.mark.parametrize("spacing", SPACINGS, ids=["px", "mm_0.7x0.5"])
@pytest.mark.parametrize("case", [c for c in CASES if c != "left_missed"])
def test_hd95_and_asd_match_scipy_distance_transform(montgomery: Path, case: str, spacing: tuple[float, float]) -> None:
    for gt, pred in _pairs(montgomery, case):
        for k in (1, 2):
            a, b = gt == k, pred == k
            d_ab, d_ba = _scipy_distances(a, b, spacing)
            ref_hd = max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))
            assert hd95(a, b, spacing=spacing) == pytest.approx(ref_hd, rel=0, abs=1e-9)
            ref_asd = np.concatenate([d_ab, d_ba]).mean()
            assert average_surface_distance(a, b, spacing=spacing) == pytest.approx(ref_asd, rel=0, abs=1e-9)
            assert average_surface_distance(a, b, spacing=spacing, symmetric=False) == pytest.approx(
                d_ba.mean(), rel=0, abs=1e-9
            )


def test_spacing_scales_and_is_checked(montgomery: Path) -> None:
    gt, pred = _pairs(montgomery, "shifted")[0]
    a, b = gt == 1, pred == 1
    # one number is isotropic; a uniform spacing scales every distance
    assert hd95(a, b, spacing=0.5) == pytest.approx(0.5 * hd95(a, b), rel=1e-12)
    assert average_surface_distance(a, b, spacing=(0.5, 0.5)) == pytest.approx(0.5 * average_surface_distance(a, b), rel=1e-12)
    # anisotropic: between the two isotropic extremes
    lo, hi = hd95(a, b, spacing=0.5), hd95(a, b, spacing=0.7)
    assert lo <= hd95(a, b, spacing=(0.7, 0.5)) <= hi
    for bad in ((0.0, 1.0), (1.0, -1.0), (1.0, math.nan), (1.0, 2.0, 3.0)):
        with pytest.raises(ValueError, match="spacing"):
            hd95(a, b, spacing=bad)
    with pytest.raises(ValueError, match="percentile"):
        hd95(a, b, percentile=101.0)


def test_surface_empty_conventions_match_monai(montgomery: Path, monai_metrics: Any) -> None:
    """Both masks empty: NaN; exactly one: inf — for HD95 and ASD. MONAI agrees except for HD95 with one mask
    empty, where ``compute_hausdorff_distance(percentile=95)`` returns NaN (``torch.quantile`` over a tensor of
    infs interpolates inf - inf) while its plain Hausdorff (``percentile=None``) and its ASD return inf. segstudio
    returns inf there too: a missed or hallucinated lung is the worst error, and NaN would drop it from every
    mean as "not applicable"."""
    gt, _ = _pairs(montgomery, "eroded")[0]
    lung = gt == 1
    empty = np.zeros_like(lung)

    def ref(fn: Any, a: np.ndarray, b: np.ndarray, **kw: Any) -> float:
        import torch

        t = lambda m: torch.from_numpy(m.astype(np.float32))[None, None]  # noqa: E731
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(fn(t(b), t(a), include_background=True, **kw)[0, 0])

    for a, b in ((lung, empty), (empty, lung), (empty, empty)):
        ours_h = hd95(a, b)
        ours_a = average_surface_distance(a, b)
        ref_h = ref(monai_metrics.compute_hausdorff_distance, a, b)
        ref_a = ref(monai_metrics.compute_average_surface_distance, a, b, symmetric=True)
        for ours, r in ((ours_h, ref_h), (ours_a, ref_a)):
            assert (math.isnan(ours) and math.isnan(r)) or ours == r == math.inf
        ref_h95 = ref(monai_metrics.compute_hausdorff_distance, a, b, percentile=95)
        assert math.isnan(ref_h95)  # MONAI 1.6: NaN for both cases; if this changes, revisit the docstring
        assert ours_h == math.inf if a.any() != b.any() else math.isnan(ours_h)
    assert math.isnan(hd95(empty, empty)) and hd95(lung, empty) == math.inf
    assert math.isnan(average_surface_distance(empty, empty)) and average_surface_distance(empty, lung) == math.inf
