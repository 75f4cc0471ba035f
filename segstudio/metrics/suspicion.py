"""Label suspicion: which masks of a dataset are most likely wrong, and why — ranked, with reasons in words.

Two passes. The first measures each mask, class by class (parallel, OpenCV releases the GIL): area, parts,
islands, holes, centre, how many vertices its outline needs, how well its outline follows the image's edges, and —
when a prediction is given — Dice, the boundary distance (HD95) and, with the model's probabilities, the share of
pixels the model confidently assigns to another class (:mod:`segstudio.metrics.suspicion_features`). The second pass learns each class's distribution over the
dataset (median and spread, robustly: one bad mask cannot move it) and turns every figure into a check value in
``[0, 1]`` by how far it lies outside; declared rules (:mod:`segstudio.metrics.label_rules`) are checked as they
stand. A class's score combines its check values with the weights of :data:`CHECKS` as a noisy-OR,
``1 - Π(1 - weight · value)``: one strong reason is enough, several weak ones add up — except that the model checks
(``disagreement``, ``confident_other``, ``boundary``) are three views of one piece of evidence and count once, by
the strongest, and so do ``edges`` and ``edge_fit``; ``fit`` adds to the model checks, as it says what the
disagreement is (a constant move or growth). A sample's score is its most suspicious class's; samples that tie are ordered by all their reasons
added up (weight × value).

Checks (weight; what fires it):

==================  ======  ===============================================================================
``missing``          1.0    a class that (nearly) every other image has is absent
``side``             1.0    the class's centre lies on the other side of the image from where it belongs
``parts``            0.8    more or fewer separate parts than the class has (rule, else the dataset's usual)
``position``         0.7    the centre is far from where the class sits in the dataset
``area``             0.6    far larger or smaller than the class usually is (or outside the declared range)
``edges``            0.8    the outline runs where the image has no edge (shifted, eroded, dilated masks); the
                            outer outline only: what the class encloses (a facade's windows) is the enclosed
                            classes' outline and stays where it was when the class is moved
``edge_fit``         0.8    grown, shrunk or moved by a few pixels, the outline would meet far more of the
                            image's edges (:mod:`segstudio.metrics.edge_fit`): an outline drawn off its object
                            by a constant amount, without a model; far above the class's usual gain. ``edges``
                            and ``edge_fit`` are two views of one piece of evidence and count once
``coarse_outline``   0.8    the outline is a coarse polygon: far fewer vertices than the class's outlines need
``blob``             1.0    a part (of at least ``BLOB_MIN_SHARE`` of the image) is a near-perfect ellipse, far
                            rounder than the class's drawn outlines: a stray brush blob
``islands``          0.4    specks smaller than the minimum island size (a class of specks only is ``missing``)
``holes``            0.3    background enclosed by the class
``overlap``          0.9    two classes share pixels that may not (multi-label)
``disagreement``     1.0    1 − Dice against the model's prediction, far above the dataset's usual
``confident_other``  0.9    share of the class's pixels the model confidently gives to another class
                            (confident learning: per-class thresholds from the model's own mean confidence)
``boundary``         0.6    HD95 between the class's outline and the prediction's, far above the usual
``fit``              0.9    moved (up to 24 px) or grown or shrunk, the label would agree with the model far
                            better (:mod:`segstudio.metrics.outline_fit`): a misregistered label, or one drawn
                            with too wide or too narrow a brush, rather than a model's local mistake; and
                            far above the class's usual gain
==================  ======  ===============================================================================

The model checks count only as far as the model has earned it: per class by its usual Dice on the class
(:func:`~segstudio.metrics.suspicion_stats.reliability_of`: a model that cannot segment windows does not judge window labels), per outline by the
image's edges (:func:`_edge_trust`: where label and model disagree about where an outline runs, the one whose
outline lies on the image's edges is believed).

"Far" is a robust z-score (distance from the median in units of 1.4826 × the median absolute deviation): below
2 nothing, 6 and more the full value. Model checks need a prediction made by a model that did not train on the
image (out-of-fold predictions), else it has memorised the very label it judges.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from segstudio.core.types import ClassSchema
from segstudio.metrics.edge_fit import EdgeFit
from segstudio.metrics.label_rules import LabelRules
from segstudio.metrics.outline_fit import OutlineFit
from segstudio.metrics.suspicion_features import (
    ClassFeatures,
    SampleFeatures,
    class_thresholds,
    measure_sample,
)
from segstudio.metrics.suspicion_stats import (
    EXPECTED_SHARE,
    MIN_FOR_STATS,
    ClassStats,
    box_in,
    class_stats,
    count_value,
    outlier,
)

__all__ = ["CHECKS", "ClassFeatures", "Reason", "SampleFeatures", "SampleSuspicion", "measure_sample",
           "rank_dataset", "score_samples"]

#: check name -> (weight, one-line description)
CHECKS: dict[str, tuple[float, str]] = {
    "missing": (1.0, "a class nearly every image has is absent"),
    "side": (1.0, "the class lies on the wrong side of the image"),
    "parts": (0.8, "more or fewer separate parts than the class has"),
    "position": (0.7, "the class sits far from where it usually is"),
    "area": (0.6, "far larger or smaller than usual"),
    "edges": (0.8, "the outline does not follow the image's edges"),
    "coarse_outline": (0.8, "a coarse polygon outline"),
    "blob": (1.0, "a part is a perfect ellipse, unlike the class's drawn outlines"),
    "islands": (0.4, "specks smaller than the minimum island size"),
    "holes": (0.3, "background enclosed by the class"),
    "overlap": (0.9, "classes overlap that may not"),
    "disagreement": (1.0, "the model disagrees with the label"),
    "confident_other": (0.9, "the model confidently sees another class here"),
    "boundary": (0.6, "the outline is far from the model's"),
    "fit": (0.9, "the label agrees with the model once moved, grown or shrunk"),
    "edge_fit": (0.8, "the outline meets the image's edges once moved, grown or shrunk"),
}

#: the Dice a move or growth of the label must gain against the model before ``fit`` counts, and the gain at which
#: it counts fully: a good model's own mistakes are local, and no single move of a correct label gains much
#: (Montgomery, out-of-fold models: median 0.003, 90th percentile 0.01; 10-20 px shifts and 5-15 px erosions gained
#: 0.026-0.2)
FIT_GAIN_FLOOR = 0.01
FIT_GAIN_FULL = 0.05
#: the share of edge strength a move or growth of the outline must gain before ``edge_fit`` counts, and from which
#: it counts fully (and only as far as it is also far above the class's usual)
EDGE_FIT_FLOOR = 0.15
EDGE_FIT_FULL = 0.4



@dataclass(frozen=True, kw_only=True)
class Reason:
    check: str
    class_id: int | None
    class_name: str
    #: the check's value in [0, 1] (before its weight)
    value: float
    text: str
    #: what to highlight: (y0, y1, x0, x1) in the mask's pixels
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True, kw_only=True)
class SampleSuspicion:
    sample_id: str
    #: 0..1, higher = look first
    score: float
    #: strongest first
    reasons: tuple[Reason, ...]
    #: class name -> that class's score
    per_class: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"sample_id": self.sample_id, "score": round(self.score, 6),
                "per_class": {k: round(v, 6) for k, v in self.per_class.items()},
                "reasons": [{"check": r.check, "class": r.class_name, "value": round(r.value, 4), "text": r.text,
                             "box": list(r.box) if r.box else None} for r in self.reasons],
                "error": self.error}



def _side_of(f: ClassFeatures) -> tuple[str, str]:
    return ("left" if f.cx < 0.5 else "right"), ("top" if f.cy < 0.5 else "bottom")


#: how much a model check is believed where the image's edges side with the label instead (see :func:`_edge_trust`)
LEAST_TRUST = 0.2


def _edge_trust(f: ClassFeatures) -> float:
    """How far to believe the model where it disagrees with the label about an outline: the image's edges arbitrate.
    1 where the model's outline lies on the image's edges clearly better than the label's (an eroded, grown or
    shifted label), ½ where both fit them equally (a hard image the model gets wrong as often as the label is
    wrong), down to :data:`LEAST_TRUST` where the label's fits clearly better. Only where the two largely overlap
    (Dice ≥ ½), have as many parts and both outlines were measured: a missing, swapped or merged class, a stray
    part or a lost one is not a question of where an outline runs."""
    le, pe = f.edge_alignment, f.pred_edge_alignment
    if f.dice is None or f.dice < 0.5 or pe is None or not (math.isfinite(le) and math.isfinite(pe)) \
            or f.pred_parts != f.parts:
        return 1.0
    return float(min(1.0, max(LEAST_TRUST, 0.5 + 2.5 * (pe - le))))


def _trust_words(f: ClassFeatures, trust: float) -> str:
    if trust >= 1.0 or f.pred_edge_alignment is None:
        return ""
    return (f"; the image's edges side with the label as much as with the model (edge alignment "
            f"{f.edge_alignment:.2f} against the model's {f.pred_edge_alignment:.2f})" if trust >= 0.5 else
            f"; the image's edges side with the label (edge alignment {f.edge_alignment:.2f} against the "
            f"model's {f.pred_edge_alignment:.2f})")


def _reliability_words(st: ClassStats) -> str:
    if st.reliability >= 1.0 or st.model_dice is None:
        return ""
    return f"; believed in part: the model's usual Dice on this class is {st.model_dice:.2f}"


def _speck_reason(f: ClassFeatures, st: ClassStats, name: str, add: Callable[..., None]) -> None:
    if f.islands:
        v = outlier(math.log1p(f.islands), st.islands, side="high") if st.islands is not None else count_value(f.islands)
        add("islands", v, f"{name} has {f.islands} speck(s) smaller than the minimum island size", f.extra_box)


def _class_reasons(f: ClassFeatures, st: ClassStats, name: str, rules: LabelRules,
                   n_images: int, usual_box: tuple[int, int, int, int] | None = None) -> list[Reason]:
    """``usual_box``: where the class usually lies in this image (its pixels), framed when it is missing."""
    cid = f.class_id
    rule = rules.of(cid)
    out: list[Reason] = []

    def add(check: str, value: float, text: str, box: tuple[int, int, int, int] | None = None) -> None:
        if value > 0.0:
            out.append(Reason(check=check, class_id=cid, class_name=name, value=min(1.0, value), text=text,
                              box=box if box is not None else f.box))

    if not f.present or f.parts == 0:
        # a class of specks only has no body to measure: it is missing, and its specks are specks
        if f.present:
            _speck_reason(f, st, name, add)
        need = rule is not None and rule.components is not None and rule.components[0] > 0
        others = st.measured - 1
        share = st.present / others if others > 0 else 0.0
        if need or (others >= MIN_FOR_STATS and share >= EXPECTED_SHARE):
            if need:
                why = "the rules require it"
            elif st.present == others:
                why = f"all {others} other images have it"
            else:
                why = f"{st.present} of the {others} other images have it"
            left = f"; only {f.islands} speck(s) of it are left" if f.present else ""
            where = "; framed where it usually lies" if usual_box is not None else ""
            add("missing", 1.0, f"{name} is missing ({why}{left}){where}", usual_box)
        if f.dice is not None and f.dice < 0.5:
            add("disagreement", st.reliability, f"{name}: the model finds it here, the label has none"
                                                f"{_reliability_words(st)}")
        return out
    # declared rules
    if rule is not None and rule.components is not None:
        lo, hi = rule.components
        if not lo <= f.parts <= hi:
            want = str(lo) if lo == hi else f"{lo}–{hi}"
            add("parts", 1.0, f"{name} has {f.parts} separate parts where it has {want}",
                f.extra_box if f.parts > hi else f.box)
    elif st.parts_mode is not None and f.parts != st.parts_mode:
        # as strong as the dataset is unanimous: a part count 80 % of the images share is a habit, not a rule
        add("parts", min(1.0, 0.6 + 0.2 * abs(f.parts - st.parts_mode)) * min(1.0, (st.parts_share - 0.75) / 0.2),
            f"{name} has {f.parts} separate parts; in this dataset it has {st.parts_mode}",
            f.extra_box if f.parts > st.parts_mode else f.box)
    if rule is not None and rule.area is not None and not rule.area[0] <= f.area <= rule.area[1]:
        add("area", 1.0, f"{name} covers {f.area:.1%} of the image, outside the declared {rule.area[0]:.1%}–"
                         f"{rule.area[1]:.1%}")
    else:
        # on a log scale: areas vary by factors, and a class twice its usual size is as odd as one half of it
        v = outlier(math.log(f.area), st.area) if f.area > 0 else 0.0
        if v and st.area is not None:
            usual = math.exp(st.area[0])
            word = "larger" if f.area > usual else "smaller"
            add("area", v, f"{name} is much {word} than usual ({f.area:.1%} of the image; usually {usual:.1%})")
    side_rule = rule.image_side if rule is not None else None
    if side_rule is not None:
        lr, tb = _side_of(f)
        if side_rule not in (lr, tb):
            add("side", 1.0, f"{name} lies on the image's {lr if side_rule in ('left', 'right') else tb} side, "
                             f"where the rules put it on the {side_rule}")
    elif (st.cx is not None and math.isfinite(f.cx) and abs(st.cx[0] - 0.5) > 0.15 and st.same_side >= 0.95
          and (f.cx - 0.5) * (st.cx[0] - 0.5) < 0):
        add("side", 1.0, f"{name} lies on the other side of the image (centre at {f.cx:.0%} of the width, usually "
                         f"{st.cx[0]:.0%}): left and right swapped?")
    pos = max(outlier(f.cx, st.cx), outlier(f.cy, st.cy))
    if pos and st.cx is not None and st.cy is not None:
        add("position", pos, f"{name} sits away from its usual place (centre at {f.cx:.0%}, {f.cy:.0%}; usually "
                             f"{st.cx[0]:.0%}, {st.cy[0]:.0%})")
    v = outlier(f.edge_alignment, st.edge, side="low")
    if v and st.edge is not None:
        add("edges", v, f"{name}'s outline runs beside the image's edges, not on them (alignment "
                        f"{f.edge_alignment:.2f}, usually {st.edge[0]:.2f}): grown, shrunk or shifted?")
    if f.edge_fit is not None and st.edge_fit is not None:
        ef = f.edge_fit
        v = min(max(0.0, (ef.gain - EDGE_FIT_FLOOR) / (EDGE_FIT_FULL - EDGE_FIT_FLOOR)),
                outlier(ef.gain, st.edge_fit, side="high"))
        if v:
            add("edge_fit", v, f"{name}'s outline would run on the image's edges if it were {_edge_fit_words(ef)} "
                               f"(it meets {1.0 - ef.gain:.0%} of the edge it would meet then)")
    v = outlier(f.vertex_density, st.density, side="low")
    if v and st.density is not None:
        add("coarse_outline", v, f"{name}'s outline is a coarse polygon ({f.vertex_density:.0f} vertices per 1,000 px "
                                 f"of outline; usually {st.density[0]:.0f})")
    v = outlier(math.log(f.ellipse_gap), st.ellipse, side="low") if f.ellipse_gap > 0 else 0.0
    if v and st.ellipse is not None:
        add("blob", v, f"{name} has a part that is a near-perfect ellipse ({f.ellipse_gap:.1%} off the ellipse fitted "
                       f"to it; its parts usually {math.exp(st.ellipse[0]):.0%}): a stray brush blob?", f.ellipse_box)
    # specks and holes: counted against what is usual for the class (a facade encloses its windows)
    _speck_reason(f, st, name, add)
    if f.holes:
        v = outlier(math.log1p(f.holes), st.holes, side="high") if st.holes is not None else count_value(f.holes)
        add("holes", v, f"{name} encloses {f.holes} hole(s)")
    # against the model, believed as far as the image's edges side with it (:func:`_edge_trust`)
    # and as far as the model can segment this class at all (:func:`suspicion_stats.reliability_of`)
    edge = _edge_trust(f)
    trust = edge * st.reliability
    why = _trust_words(f, edge) + _reliability_words(st)
    if f.dice is not None:
        v = outlier(1.0 - f.dice, st.dice_loss, side="high")
        if st.dice_loss is None:
            v = max(0.0, min(1.0, (0.8 - f.dice) / 0.5))
        if v:
            add("disagreement", v * trust, f"the model disagrees with {name} (Dice {f.dice:.2f})")
    if f.hd95 is not None:
        v = outlier(f.hd95, st.hd95, side="high")
        if v:
            add("boundary", v * trust, f"{name}'s outline is {f.hd95:.0f} px from the model's (HD95)")
    if f.confident_other is not None:
        v = outlier(f.confident_other, st.conf, side="high")
        if st.conf is None:
            v = min(1.0, f.confident_other * 2.0)
        if v:
            add("confident_other", v * trust, f"the model is confident that {f.confident_other:.0%} of {name} is "
                                              "another class")
    if f.fit is not None and f.present:
        v = min(1.0, max(0.0, (f.fit.gain - FIT_GAIN_FLOOR) / (FIT_GAIN_FULL - FIT_GAIN_FLOOR)))
        if st.fit is not None:  # and far above the class's usual: where every label gains, the model differs
            v = min(v, outlier(f.fit.explained_px, st.fit, side="high"))
        if v:
            # believed as far as the model can segment the class, but not weighed by the image's edges: a
            # disagreement one move or growth explains is itself evidence against a model's local mistake, and a
            # lung label moved past the 16 px edge band lands on rib edges and looks aligned (weighing fit by the
            # edges lost a 14 px shift and a 6 px erosion on seed 4 of make quality: 0.62 instead of 0.88)
            add("fit", v * st.reliability, f"{name} would agree with the model if it were {_fit_words(f.fit)} "
                                           f"(Dice {f.fit.dice:.2f} → {f.fit.dice + f.fit.gain:.2f})"
                                           f"{_reliability_words(st)}", f.box)
    # how far the edges and the model's skill let the model be believed is said once, by the class's strongest
    # model reason (the order the sample's reasons are listed in), not after each of them
    model = [i for i, r in enumerate(out) if r.check in MODEL_CHECKS]
    if why and model:
        top = max(model, key=lambda i: CHECKS[out[i].check][0] * out[i].value)
        out[top] = replace(out[top], text=out[top].text + why)
    return out


def _change_words(grow: int | None, move: tuple[int, int]) -> str:
    """How the label would have to change: grown by ``grow`` px (negative: shrunk), or, with ``grow`` None, moved
    by ``move`` = (dy, dx) px, down and right positive."""
    if grow is not None:
        return f"{'grown' if grow > 0 else 'shrunk'} by {abs(grow)} px"
    dy, dx = move
    parts = [f"{abs(dy)} px {'down' if dy > 0 else 'up'}" if dy else "",
             f"{abs(dx)} px {'right' if dx > 0 else 'left'}" if dx else ""]
    return "moved " + " and ".join(p for p in parts if p)


def _edge_fit_words(ef: EdgeFit) -> str:
    return _change_words(ef.grow if ef.by_growth else None, ef.move)


def _fit_words(fit: OutlineFit) -> str:
    """Where the label would have to go to agree with the model: the label lies ``fit.move`` from the prediction,
    so it goes the other way."""
    return _change_words(fit.grow if fit.kind == "grow" else None, (-fit.move[0], -fit.move[1]))


def score_samples(features: Sequence[SampleFeatures], schema: ClassSchema, *,
                  rules: LabelRules | None = None) -> list[SampleSuspicion]:
    """Pass two: every sample's suspicion against the dataset's distributions and the rules, most suspicious
    first (ties in dataset order)."""
    rules = rules or LabelRules()
    names = {c.id: c.name for c in schema}
    ok = [f for f in features if f.error is None]
    ids = sorted({c.class_id for f in ok for c in f.classes})
    stats = {cid: class_stats(ok, cid) for cid in ids}
    out = []
    for order, s in enumerate(features):
        if s.error is not None:
            out.append((order, SampleSuspicion(sample_id=s.sample_id, score=0.0, reasons=(), error=s.error)))
            continue
        reasons: list[Reason] = []
        per_class: dict[str, float] = {}
        for f in s.classes:
            st = stats[f.class_id]
            usual = box_in(s, st.usual_box) if not f.present or f.parts == 0 else None
            rs = _class_reasons(f, st, names.get(f.class_id, str(f.class_id)), rules, len(ok), usual)
            reasons += rs
            per_class[names.get(f.class_id, str(f.class_id))] = _combine(rs)
        for a, b, frac in s.overlaps:
            if not rules.overlap_allowed(a, b) and (rules.may_overlap or not rules.empty):
                r = Reason(check="overlap", class_id=a, class_name=names.get(a, str(a)), value=min(1.0, 0.5 + frac * 50),
                           text=f"{names.get(a, a)} and {names.get(b, b)} overlap ({frac:.2%} of the image), which the "
                                "rules do not allow")
                reasons.append(r)
                per_class[r.class_name] = max(per_class.get(r.class_name, 0.0), _combine([r]))
        score = max(per_class.values(), default=0.0)
        reasons.sort(key=lambda r: -CHECKS[r.check][0] * r.value)
        out.append((order, SampleSuspicion(sample_id=s.sample_id, score=score, reasons=tuple(reasons),
                                           per_class=per_class)))
    out.sort(key=lambda t: (t[1].error is not None, -t[1].score, -_evidence(t[1].reasons), t[0]))
    return [s for _, s in out]


def _evidence(reasons: Sequence[Reason]) -> float:
    """All of a sample's reasons added up (weight × value): what orders samples whose scores tie (several at 1.0,
    each with one certain reason): the one with more, or stronger, further reasons first."""
    return float(sum(CHECKS[r.check][0] * r.value for r in reasons))


#: the checks that read the model's prediction: three views of one piece of evidence (the model disagrees), so a
#: class's score counts only the strongest of them
MODEL_CHECKS = frozenset({"disagreement", "confident_other", "boundary"})


#: the checks that are views of one piece of evidence each, and count once, by the strongest
EVIDENCE_GROUPS = (MODEL_CHECKS, frozenset({"edges", "edge_fit"}))


def _combine(reasons: Sequence[Reason]) -> float:
    keep = 1.0
    strongest = [0.0] * len(EVIDENCE_GROUPS)
    for r in reasons:
        v = CHECKS[r.check][0] * r.value
        group = next((i for i, g in enumerate(EVIDENCE_GROUPS) if r.check in g), None)
        if group is None:
            keep *= 1.0 - v
        else:
            strongest[group] = max(strongest[group], v)
    for v in strongest:
        keep *= 1.0 - v
    return 1.0 - keep


def rank_dataset(dataset: Any, *, masks: Callable[[str], np.ndarray | None] | None = None,
                 predictions: Callable[[str], np.ndarray | None] | None = None,
                 probabilities: Callable[[str], np.ndarray | None] | None = None,
                 images: Callable[[str], np.ndarray] | None = None, rules: LabelRules | None = None,
                 sample_ids: Sequence[str] | None = None, workers: int = 2, use_images: bool = True,
                 progress: Callable[[int, int], None] | None = None) -> list[SampleSuspicion]:
    """Rank the labels of ``dataset`` (a ``segstudio.datasets.base.Dataset``), most suspicious first.

    ``masks``: the labels to judge (default the GT; a correction store or a corrupted copy can stand in).
    ``predictions`` / ``probabilities``: the model's, per sample id (out-of-fold, so the model has not learned the
    label it judges); None = model-free checks only. ``images``: default ``dataset.load_image``; ``use_images=False``
    skips the image (no ``edges`` check). A sample whose files cannot be read is listed last with its error."""
    from segstudio.core.errors import SegstudioError

    schema: ClassSchema = dataset.schema
    ids = list(sample_ids) if sample_ids is not None else [s.id for s in dataset.samples]
    load_mask = masks or dataset.load_gt
    load_image = images or dataset.load_image
    thresholds = None
    if probabilities is not None:
        thresholds = class_thresholds(((m, p) for m, p in ((load_mask(i), probabilities(i)) for i in ids)
                                       if m is not None and p is not None), schema)

    def measure(sid: str) -> SampleFeatures:
        try:
            mask = load_mask(sid)
            if mask is None:
                return SampleFeatures(sample_id=sid, shape=(0, 0), classes=(), error="no label")
            image = load_image(sid) if use_images else None
            return measure_sample(sid, mask, schema=schema, image=image,
                                  prediction=predictions(sid) if predictions is not None else None,
                                  probabilities=probabilities(sid) if probabilities is not None else None,
                                  thresholds=thresholds)
        except (SegstudioError, OSError, ValueError) as exc:
            return SampleFeatures(sample_id=sid, shape=(0, 0), classes=(), error=str(exc).splitlines()[0])

    feats: list[SampleFeatures] = []
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="segstudio-quality") as pool:
        for i, f in enumerate(pool.map(measure, ids)):
            feats.append(f)
            if progress is not None:
                progress(i + 1, len(ids))
    return score_samples([f for f in feats if f.error != "no label"], schema, rules=rules)
