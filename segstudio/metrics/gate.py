"""The promotion gate: is a retrained model better than the current one, by evidence a clinic can defend?

Both models are scored on the same frozen validation images against the same references. The gate pairs the
images and asks two questions:

1. **Is the gain real?** The per-image change in mean Dice (new − current, each image weighing the same) is
   resampled with a paired bootstrap (``resamples`` draws of the images with replacement); the percentile
   interval at ``confidence`` bounds the mean change. The gain is *proven* when the interval's lower end is above
   ``min_gain``; a model whose interval lies wholly below zero is *worse*.
2. **Did any class get worse?** Per class, Dice pooled over the paired images (2ΣTP / (2ΣTP + ΣFP + ΣFN), the
   dataset Dice) before and after; a class whose Dice drops by more than ``class_margin`` is a regression, whatever
   the mean does — a better mean over lungs must not hide a lost heart border.

Verdicts: ``promote`` (gain proven, no class regressed), ``refused`` (a class regressed, or the model is worse),
``not_proven`` (the interval straddles the threshold, or too few images to tell). Pure numpy; deterministic for a
given ``seed``.

```python
result = promotion_gate(before.samples, after.samples, thresholds=GateThresholds(class_margin=0.02))
result.verdict, result.ci_low, result.ci_high, [c.delta for c in result.per_class]
```
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from segstudio.metrics.compare import SampleComparison

__all__ = ["ClassChange", "GateResult", "GateThresholds", "Verdict", "promotion_gate"]

#: fewer paired images than this and nothing can be proven
MIN_IMAGES = 3


class Verdict(enum.StrEnum):
    PROMOTE = "promote"
    NOT_PROVEN = "not_proven"
    REFUSED = "refused"

    @property
    def label(self) -> str:
        return {"promote": "better (proven)", "not_proven": "not proven", "refused": "refused"}[self.value]


@dataclass(frozen=True, kw_only=True)
class GateThresholds:
    """The gate's settings (the workspace's ``gate_*`` settings)."""

    #: two-sided confidence of the bootstrap interval
    confidence: float = 0.95
    #: the interval's lower end must be above this change in mean Dice (0 = any proven gain)
    min_gain: float = 0.0
    #: a class whose pooled Dice drops by more than this is a regression
    class_margin: float = 0.02
    #: bootstrap resamples
    resamples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError(f"confidence must be in [0.5, 1), not {self.confidence}")
        if not 0.0 <= self.class_margin <= 1.0 or not -1.0 <= self.min_gain <= 1.0:
            raise ValueError("class_margin must be in [0, 1] and min_gain in [-1, 1]")
        if not 100 <= self.resamples <= 1_000_000:
            raise ValueError(f"resamples must be in [100, 1000000], not {self.resamples}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> GateThresholds:
        known = {k: d[k] for k in ("confidence", "min_gain", "class_margin", "resamples", "seed") if k in d}
        return GateThresholds(**known)


@dataclass(frozen=True, kw_only=True)
class ClassChange:
    """One class's pooled Dice before and after (``NaN`` when the class is in no mask of the paired images)."""

    class_id: int
    name: str
    before: float
    after: float
    regressed: bool

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass(frozen=True, kw_only=True)
class GateResult:
    verdict: Verdict
    #: one sentence: why this verdict
    reason: str
    images: int
    mean_before: float
    mean_after: float
    #: the mean per-image change and its bootstrap interval
    mean_delta: float
    ci_low: float
    ci_high: float
    per_class: tuple[ClassChange, ...]
    thresholds: GateThresholds = field(default_factory=GateThresholds)
    #: validation images left out of the pairing (scored by one model only, or empty in both)
    unpaired: tuple[str, ...] = ()

    @property
    def promote(self) -> bool:
        return self.verdict is Verdict.PROMOTE

    @property
    def regressed(self) -> tuple[ClassChange, ...]:
        return tuple(c for c in self.per_class if c.regressed)

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if not math.isfinite(v) else round(float(v), 6)

        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "images": self.images,
            "mean_before": num(self.mean_before),
            "mean_after": num(self.mean_after),
            "mean_delta": num(self.mean_delta),
            "ci_low": num(self.ci_low),
            "ci_high": num(self.ci_high),
            "per_class": [{"class_id": c.class_id, "name": c.name, "before": num(c.before), "after": num(c.after),
                           "delta": num(c.delta), "regressed": c.regressed} for c in self.per_class],
            "thresholds": self.thresholds.to_dict(),
            "unpaired": list(self.unpaired),
        }

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> GateResult:
        def num(v: Any) -> float:
            return math.nan if v is None else float(v)

        return GateResult(
            verdict=Verdict(d["verdict"]), reason=str(d.get("reason", "")), images=int(d.get("images", 0)),
            mean_before=num(d.get("mean_before")), mean_after=num(d.get("mean_after")),
            mean_delta=num(d.get("mean_delta")), ci_low=num(d.get("ci_low")), ci_high=num(d.get("ci_high")),
            per_class=tuple(ClassChange(class_id=int(c["class_id"]), name=str(c["name"]), before=num(c["before"]),
                                        after=num(c["after"]), regressed=bool(c["regressed"]))
                            for c in d.get("per_class", [])),
            thresholds=GateThresholds.from_dict(d.get("thresholds", {})),
            unpaired=tuple(str(s) for s in d.get("unpaired", [])),
        )


def _pooled_dice(comps: Sequence[SampleComparison], class_id: int) -> float:
    tp = fp = fn = 0
    for c in comps:
        try:
            s = c.score(class_id)
        except KeyError:
            continue
        tp, fp, fn = tp + s.tp, fp + s.fp, fn + s.fn
    den = 2 * tp + fp + fn
    return 2 * tp / den if den else math.nan


def _key(c: SampleComparison, i: int) -> str:
    return c.sample_id if c.sample_id is not None else f"#{i}"


def promotion_gate(before: Sequence[SampleComparison], after: Sequence[SampleComparison], *,
                   thresholds: GateThresholds | None = None) -> GateResult:
    """Judge ``after`` (the new model's per-image comparisons) against ``before`` (the current model's), paired by
    sample id (by position when ids are missing)."""
    th = thresholds or GateThresholds()
    b = {_key(c, i): c for i, c in enumerate(before)}
    a = {_key(c, i): c for i, c in enumerate(after)}
    paired = [k for k in b if k in a and math.isfinite(b[k].mean_dice) and math.isfinite(a[k].mean_dice)]
    unpaired = tuple(sorted((set(b) | set(a)) - set(paired)))
    pb, pa = [b[k] for k in paired], [a[k] for k in paired]

    scored = sorted({cid for c in pb + pa for cid in c.scored_ids})
    names = {s.class_id: s.name for c in pb + pa for s in c.per_class}
    changes = []
    for cid in scored:
        d0, d1 = _pooled_dice(pb, cid), _pooled_dice(pa, cid)
        worse = math.isfinite(d0) and (not math.isfinite(d1) or d1 < d0 - th.class_margin)
        changes.append(ClassChange(class_id=cid, name=names.get(cid, str(cid)), before=d0, after=d1, regressed=worse))

    n = len(paired)
    x0 = np.array([c.mean_dice for c in pb], dtype=np.float64)
    x1 = np.array([c.mean_dice for c in pa], dtype=np.float64)
    deltas = x1 - x0
    mean_b = float(x0.mean()) if n else math.nan
    mean_a = float(x1.mean()) if n else math.nan
    mean_d = float(deltas.mean()) if n else math.nan
    if n:
        rng = np.random.default_rng(th.seed)
        means = deltas[rng.integers(0, n, size=(th.resamples, n))].mean(axis=1)
        tail = (1.0 - th.confidence) / 2.0
        lo, hi = (float(v) for v in np.quantile(means, [tail, 1.0 - tail]))
    else:
        lo = hi = math.nan

    pct = f"{th.confidence:.0%}"
    regressed = [c for c in changes if c.regressed]
    if regressed:
        worst = min(regressed, key=lambda c: c.delta if math.isfinite(c.delta) else -math.inf)
        verdict = Verdict.REFUSED
        reason = (f"class {worst.name!r} got worse: Dice {worst.before:.3f} → {worst.after:.3f} "
                  f"(more than the allowed {th.class_margin:.3f})")
        if len(regressed) > 1:
            reason += f", and {len(regressed) - 1} other class(es)"
    elif n < MIN_IMAGES:
        verdict = Verdict.NOT_PROVEN
        reason = f"{n} paired validation image(s): at least {MIN_IMAGES} are needed to tell a gain from noise"
    elif hi < 0.0:
        verdict = Verdict.REFUSED
        reason = f"worse: mean Dice change {mean_d:+.4f}, {pct} interval [{lo:+.4f}, {hi:+.4f}] is below zero"
    elif lo > th.min_gain:
        verdict = Verdict.PROMOTE
        reason = (f"better: mean Dice change {mean_d:+.4f}, {pct} interval [{lo:+.4f}, {hi:+.4f}] "
                  f"above {th.min_gain:+.4f}, no class worse by more than {th.class_margin:.3f}")
    else:
        verdict = Verdict.NOT_PROVEN
        reason = (f"not proven: mean Dice change {mean_d:+.4f}, {pct} interval [{lo:+.4f}, {hi:+.4f}] "
                  f"includes {th.min_gain:+.4f} over {n} image(s)")
    return GateResult(verdict=verdict, reason=reason, images=n, mean_before=mean_b, mean_after=mean_a,
                      mean_delta=mean_d, ci_low=lo, ci_high=hi, per_class=tuple(changes), thresholds=th,
                      unpaired=unpaired)
