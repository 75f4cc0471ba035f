"""The promotion gate on constructed cases: a regressed class refuses, a gain inside the noise is not proven, a clear
gain is promoted, a clear loss is refused; the interval and the per-class changes are what the numbers say."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segstudio.metrics.compare import ClassScore, SampleComparison
from segstudio.metrics.gate import GateResult, GateThresholds, Verdict, promotion_gate


def _score(cid: int, name: str, dice: float, size: int = 1000) -> ClassScore:
    """A class with ``size`` GT pixels predicted at the given Dice (fp = fn, so 2tp / (2tp + 2fn) = dice)."""
    tp = round(size * dice)
    fn = fp = size - tp
    d = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan
    return ClassScore(class_id=cid, name=name, gt_pixels=size, pred_pixels=tp + fp, tp=tp, fp=fp, fn=fn,
                      dice=d, iou=math.nan, precision=math.nan, recall=math.nan)


def _sample(sid: str, dices: dict[str, float]) -> SampleComparison:
    per = tuple(_score(i + 1, name, d) for i, (name, d) in enumerate(dices.items()))
    mean = float(np.mean([s.dice for s in per]))
    return SampleComparison(per_class=per, scored_ids=tuple(s.class_id for s in per), mean_dice=mean,
                            mean_iou=math.nan, pixel_accuracy=math.nan, valid_pixels=10_000, sample_id=sid)


def _pair(before: list[dict[str, float]], after: list[dict[str, float]]) -> tuple[list, list]:
    return ([_sample(f"s{i}", d) for i, d in enumerate(before)], [_sample(f"s{i}", d) for i, d in enumerate(after)])


def test_a_clear_gain_is_promoted() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0.70, 0.80, size=12)
    b, a = _pair([{"left": v, "right": v} for v in base], [{"left": v + 0.05, "right": v + 0.04} for v in base])
    res = promotion_gate(b, a)
    assert res.verdict is Verdict.PROMOTE and res.promote
    assert res.images == 12
    assert 0.03 < res.ci_low <= res.mean_delta <= res.ci_high < 0.06
    assert [c.name for c in res.per_class] == ["left", "right"]
    assert all(c.delta > 0 and not c.regressed for c in res.per_class)
    assert "better" in res.reason


def test_a_better_mean_with_one_regressed_class_is_refused() -> None:
    base = np.linspace(0.6, 0.8, 10)
    # the mean rises by 0.04 on every image, but "heart" loses 0.06 while the lungs gain 0.09
    b, a = _pair([{"left": v, "right": v, "heart": v} for v in base],
                 [{"left": v + 0.09, "right": v + 0.09, "heart": v - 0.06} for v in base])
    res = promotion_gate(b, a, thresholds=GateThresholds(class_margin=0.02))
    assert res.mean_delta > 0.03 and res.ci_low > 0  # the mean alone would promote
    assert res.verdict is Verdict.REFUSED
    assert [c.name for c in res.regressed] == ["heart"]
    heart = res.regressed[0]
    assert heart.delta == pytest.approx(-0.06, abs=0.002)
    assert "heart" in res.reason
    # within a wider margin the same model passes
    assert promotion_gate(b, a, thresholds=GateThresholds(class_margin=0.1)).verdict is Verdict.PROMOTE


def test_a_gain_inside_the_noise_is_not_proven() -> None:
    rng = np.random.default_rng(7)
    base = rng.uniform(0.5, 0.9, size=8)
    noise = rng.normal(0.0, 0.08, size=8)
    noise += 0.01 - noise.mean()  # mean change +0.01, spread 0.08: the interval straddles zero
    b, a = _pair([{"lung": v} for v in base], [{"lung": float(np.clip(v + e, 0, 1))} for v, e in zip(base, noise, strict=True)])
    res = promotion_gate(b, a, thresholds=GateThresholds(class_margin=0.5))
    assert res.verdict is Verdict.NOT_PROVEN
    assert res.ci_low < 0 < res.ci_high
    assert res.mean_delta > 0
    assert "not proven" in res.reason


def test_one_image_cannot_decide() -> None:
    b, a = _pair([{"lung": 0.5}, {"lung": 0.9}], [{"lung": 0.9}, {"lung": 0.95}])
    res = promotion_gate(b, a, thresholds=GateThresholds(class_margin=0.5))
    assert res.verdict is Verdict.NOT_PROVEN and res.images == 2


def test_a_clear_loss_is_refused() -> None:
    base = np.linspace(0.7, 0.9, 10)
    b, a = _pair([{"lung": v} for v in base], [{"lung": v - 0.01} for v in base])
    res = promotion_gate(b, a, thresholds=GateThresholds(class_margin=0.05))  # no class beyond the margin
    assert res.verdict is Verdict.REFUSED and res.ci_high < 0
    assert "worse" in res.reason


def test_min_gain_raises_the_bar() -> None:
    base = np.linspace(0.7, 0.8, 10)
    b, a = _pair([{"lung": v} for v in base], [{"lung": v + 0.01} for v in base])
    assert promotion_gate(b, a).verdict is Verdict.PROMOTE
    assert promotion_gate(b, a, thresholds=GateThresholds(min_gain=0.02)).verdict is Verdict.NOT_PROVEN


def test_pairs_by_sample_id_and_reports_the_unpaired() -> None:
    b = [_sample("x", {"lung": 0.5}), _sample("y", {"lung": 0.6}), _sample("z", {"lung": 0.7}),
         _sample("only-before", {"lung": 0.1})]
    a = [_sample("z", {"lung": 0.8}), _sample("y", {"lung": 0.7}), _sample("x", {"lung": 0.6})]
    res = promotion_gate(b, a)
    assert res.images == 3 and res.unpaired == ("only-before",)
    assert res.mean_delta == pytest.approx(0.1, abs=1e-3)


def test_same_seed_same_interval_and_round_trip() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0.6, 0.8, size=9)
    b, a = _pair([{"lung": v} for v in base], [{"lung": v + rng.normal(0.02, 0.02)} for v in base])
    r1, r2 = promotion_gate(b, a), promotion_gate(b, a)
    assert (r1.ci_low, r1.ci_high) == (r2.ci_low, r2.ci_high)
    back = GateResult.from_dict(r1.to_dict())
    assert back.verdict is r1.verdict and back.ci_low == pytest.approx(r1.ci_low, abs=1e-6)
    assert back.per_class[0].name == "lung" and back.thresholds == r1.thresholds


@pytest.mark.parametrize("bad", [{"confidence": 1.0}, {"class_margin": -0.1}, {"resamples": 5}])
def test_thresholds_are_checked(bad: dict) -> None:
    with pytest.raises(ValueError):
        GateThresholds(**bad)
