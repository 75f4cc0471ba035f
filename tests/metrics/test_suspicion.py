"""Label suspicion on small real crops: the 40 Montgomery lung masks (and their X-rays) shrunk to 128², one label
spoilt per test the way an annotator spoils it; each check must fire with its reason, name the class, point at
the part, and rank the spoilt image first (or second, behind the one real label that runs beyond its lung). Then the declared rules, the model checks, and the report's shape."""

from __future__ import annotations

import math
import re
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from segstudio.core.types import ClassSchema
from segstudio.datasets.base import Dataset, Sample
from segstudio.metrics.label_rules import RulesError, read_rules, rules_from_dict
from segstudio.metrics.suspicion import CHECKS, class_thresholds, measure_sample, rank_dataset

SIZE = 128


@pytest.fixture(scope="module")
def lungs(montgomery: Path) -> Dataset:
    """The Montgomery set at 128², in memory (images and masks), as a Dataset."""
    from segstudio.datasets.registry import open_dataset

    real = open_dataset(montgomery, format="class-folders")
    images, gts = {}, {}
    for s in real.samples:
        img = real.load_image(s)
        images[s.id] = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        gts[s.id] = cv2.resize(real.load_gt(s), (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
    samples = [Sample(id=k, image=Path("/mem") / k, gt=k) for k in images]
    return Dataset(root=Path("/mem"), format_name="test", schema=real.schema, samples=samples,
                   read_image=lambda ds, s: images[s.id], read_gt=lambda ds, s: gts[s.id])


def _ids(ds: Dataset) -> dict[str, int]:
    return {c.name: c.id for c in ds.schema}


def _spoilt(ds: Dataset, victim: str, spoil) -> tuple[list, object]:  # noqa: ANN001
    def masks(sid: str) -> np.ndarray:
        m = ds.load_gt(sid).copy()
        return spoil(m) if sid == victim else m

    ranked = rank_dataset(ds, masks=masks)
    return ranked, next(s for s in ranked if s.sample_id == victim)


def _checks(s) -> set[str]:  # noqa: ANN001
    return {r.check for r in s.reasons}


def test_the_clean_set_has_nothing_strongly_suspicious(lungs: Dataset) -> None:
    ranked = rank_dataset(lungs)
    assert len(ranked) == 40 and all(s.error is None for s in ranked)
    # the highest is MCUCXR_0301, whose right-lung label runs beyond the lung on the film (its outline is off the
    # image's edges); a child's film, padded to the square, is measured against its content and is not suspect
    assert max(s.score for s in ranked) < 0.8
    assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)


def test_left_and_right_swapped(lungs: Dataset) -> None:
    ids = _ids(lungs)
    victim = lungs.samples[5].id

    def swap(m: np.ndarray) -> np.ndarray:
        out = m.copy()
        out[m == ids["left lung"]] = ids["right lung"]
        out[m == ids["right lung"]] = ids["left lung"]
        return out

    ranked, s = _spoilt(lungs, victim, swap)
    assert ranked[0].sample_id == victim and s.score > 0.9
    side = [r for r in s.reasons if r.check == "side"]
    assert {r.class_name for r in side} == {"left lung", "right lung"}
    assert "swapped" in side[0].text


def test_a_missing_class(lungs: Dataset) -> None:
    ids = _ids(lungs)
    victim = lungs.samples[7].id
    ranked, s = _spoilt(lungs, victim, lambda m: np.where(m == ids["right lung"], 0, m).astype(m.dtype))
    assert ranked[0].sample_id == victim and s.score == 1.0
    missing = [r for r in s.reasons if r.check == "missing"]
    assert len(missing) == 1 and missing[0].class_name == "right lung"
    assert "all 39 other images have it" in missing[0].text
    # framed where the class usually lies: the box holds the centre of the lung that was left out
    assert "framed where it usually lies" in missing[0].text and missing[0].box is not None
    ys, xs = np.nonzero(lungs.load_gt(victim) == ids["right lung"])
    y0, y1, x0, x1 = missing[0].box
    assert y0 <= ys.mean() < y1 and x0 <= xs.mean() < x1


def test_a_stray_blob_is_an_extra_part_pointed_at(lungs: Dataset) -> None:
    ids = _ids(lungs)
    victim = lungs.samples[11].id

    def blob(m: np.ndarray) -> np.ndarray:
        out = m.copy()
        cv2.circle(out, (64, 120), 5, ids["left lung"], -1)
        return out

    ranked, s = _spoilt(lungs, victim, blob)
    # above every clean label but one: MCUCXR_0301's right lung, whose drawn outline runs well beyond the lung on
    # the film (its edges reason, 0.72; a learned part count gives 0.8 × 0.8 = 0.64)
    assert victim in [x.sample_id for x in ranked[:2]]
    assert all(x.score < s.score for x in ranked[2:])
    parts = next(r for r in s.reasons if r.check == "parts")
    assert parts.class_name == "left lung" and "2 separate parts" in parts.text
    y0, y1, x0, x1 = parts.box
    assert y0 <= 120 < y1 and x0 <= 64 < x1  # the blob is what is highlighted


def test_a_shifted_mask_leaves_the_edges(lungs: Dataset) -> None:
    ids = _ids(lungs)
    victim = lungs.samples[3].id

    def shift(m: np.ndarray) -> np.ndarray:
        out = np.zeros_like(m)
        lung = m == ids["right lung"]
        out[m == ids["left lung"]] = ids["left lung"]
        out[np.roll(lung, (14, 10), axis=(0, 1))] = ids["right lung"]
        return out

    _, s = _spoilt(lungs, victim, shift)
    assert "edges" in _checks(s) or "position" in _checks(s)
    assert s.per_class["right lung"] > s.per_class["left lung"]


def test_a_coarse_polygon_outline(lungs: Dataset) -> None:
    ids = _ids(lungs)
    victim = lungs.samples[9].id

    def coarse(m: np.ndarray) -> np.ndarray:
        out = m.copy()
        plane = (m == ids["left lung"]).astype(np.uint8)
        contours, _ = cv2.findContours(plane, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        c = max(contours, key=cv2.contourArea)
        poly = cv2.approxPolyDP(c, 0.04 * cv2.arcLength(c, True), True)
        out[m == ids["left lung"]] = 0
        cv2.fillPoly(out, [poly], int(ids["left lung"]))
        return out

    ranked, s = _spoilt(lungs, victim, coarse)
    assert "coarse_outline" in _checks(s)
    assert ranked.index(s) < 3


def test_specks_and_holes(lungs: Dataset) -> None:
    ids = _ids(lungs)
    f = measure_sample("x", _with(lungs, ids), schema=lungs.schema, min_island_px=16)
    left = next(c for c in f.classes if c.class_id == ids["left lung"])
    assert left.islands == 2 and left.holes == 1


def _with(ds: Dataset, ids: dict[str, int]) -> np.ndarray:
    m = ds.load_gt(ds.samples[0].id).copy()
    ys, xs = np.nonzero(m == ids["left lung"])
    cy, cx = int(ys.mean()), int(xs.mean())
    m[cy - 2:cy + 2, cx - 2:cx + 2] = 0  # a hole inside the lung
    m[2, 2] = m[2, 6] = ids["left lung"]  # two one-pixel specks
    return m


def test_declared_rules_are_checked(lungs: Dataset) -> None:
    ids = _ids(lungs)
    rules = rules_from_dict({"classes": [
        {"name": "left lung", "components": 1, "image_side": "left", "area": [0.2, 0.5]},
    ]}, lungs.schema, path="rules.json")
    ranked = rank_dataset(lungs, rules=rules)
    # the rule puts the left lung on the image's left — wrong for a PA film — so every image breaks it, by rule
    texts = [r.text for s in ranked for r in s.reasons if r.check in ("side", "area") and r.class_name == "left lung"]
    assert len([t for t in texts if "where the rules put it on the left" in t]) == 40
    assert any("outside the declared 20.0%–50.0%" in t for t in texts)
    assert rules.of(ids["left lung"]).components == (1, 1)


def test_rules_files_name_their_mistakes(lungs: Dataset, tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="unknown key") as info:
        rules_from_dict({"classes": [{"name": "left lung", "componets": 1}]}, lungs.schema, path="r.json")
    assert "components" in info.value.fix
    with pytest.raises(RulesError, match="no class 'heart'"):
        rules_from_dict({"classes": [{"name": "heart", "components": 1}]}, lungs.schema)
    with pytest.raises(RulesError, match="area"):
        rules_from_dict({"classes": [{"name": "left lung", "area": [0.5, 0.1]}]}, lungs.schema)
    bad = tmp_path / "rules.json"
    bad.write_text("{not json")
    with pytest.raises(RulesError) as info2:
        read_rules(bad, lungs.schema)
    assert info2.value.path == bad


def test_forbidden_overlap_in_a_multilabel_mask() -> None:
    schema = ClassSchema.from_names(("radius", "ulna", "scaphoid"), multilabel=True)
    m = np.zeros((64, 64), np.uint64)
    m[10:30, 10:30] |= np.uint64(1 << 0)
    m[20:40, 20:40] |= np.uint64(1 << 1)
    m[45:55, 45:55] |= np.uint64(1 << 2)
    f = measure_sample("x", m, schema=schema)
    assert f.overlaps == ((0, 1, pytest.approx(100 / 64**2)),)
    from segstudio.metrics.suspicion import score_samples

    ok = rules_from_dict({"may_overlap": [["radius", "ulna"]]}, schema)
    strict = rules_from_dict({"classes": [{"name": "radius", "components": 1}]}, schema)
    assert "overlap" not in {r.check for r in score_samples([f], schema, rules=ok)[0].reasons}
    reasons = score_samples([f], schema, rules=strict)[0].reasons
    assert any(r.check == "overlap" and "radius and ulna overlap" in r.text for r in reasons)


def test_model_checks_disagreement_and_confident_learning(lungs: Dataset) -> None:
    ids = _ids(lungs)
    victim = lungs.samples[2].id
    schema_ids = list(lungs.schema.ids)

    def truth(sid: str) -> np.ndarray:
        return lungs.load_gt(sid)

    def label(sid: str) -> np.ndarray:  # the label of one image lost its right lung; the model still sees it
        m = truth(sid).copy()
        if sid == victim:
            m[m == ids["right lung"]] = ids["left lung"]
        return m

    def probs(sid: str) -> np.ndarray:  # a model sure of the truth, to a varying degree
        t = truth(sid)
        rng = np.random.default_rng(zlib.crc32(sid.encode()))
        p = np.full((len(schema_ids), *t.shape), 0.05, np.float32)
        for k, cid in enumerate(schema_ids):
            sel = t == cid
            p[k][sel] = rng.uniform(0.8, 1.0, int(sel.sum()))
        return p

    th = class_thresholds(((label(i), probs(i)) for i in [s.id for s in lungs.samples]), lungs.schema)
    assert th.shape == (3,) and all(0.8 < t < 0.95 for t in th)
    ranked = rank_dataset(lungs, masks=label, predictions=truth, probabilities=probs)
    assert ranked[0].sample_id == victim
    checks = _checks(ranked[0])
    assert {"disagreement", "confident_other"} <= checks
    conf = next(r for r in ranked[0].reasons if r.check == "confident_other")
    assert conf.class_name == "left lung" and "another class" in conf.text


def _eroded(m: np.ndarray, class_id: int, px: int) -> np.ndarray:
    out = m.copy()
    plane = (m == class_id).astype(np.uint8)
    out[(plane > 0) & (cv2.erode(plane, np.ones((2 * px + 1, 2 * px + 1), np.uint8)) == 0)] = 0
    return out


def test_the_image_edges_arbitrate_between_label_and_model(lungs: Dataset) -> None:
    """Where the model's outline sits on the X-ray's edges and the label's does not (a shrunk label), the model is
    believed fully; where the label's outline fits the edges and the model's was shrunk, the disagreement counts
    far less and the reason says the edges side with the label."""
    ids = _ids(lungs)
    left = ids["left lung"]
    bad_label, bad_model = lungs.samples[4].id, lungs.samples[6].id

    def label(sid: str) -> np.ndarray:
        m = lungs.load_gt(sid)
        return _eroded(m, left, 4) if sid == bad_label else m

    def prediction(sid: str) -> np.ndarray:
        m = lungs.load_gt(sid)
        return _eroded(m, left, 4) if sid == bad_model else m

    ranked = rank_dataset(lungs, masks=label, predictions=prediction)
    by_id = {s.sample_id: s for s in ranked}
    assert ranked[0].sample_id == bad_label
    shrunk = next(r for r in by_id[bad_label].reasons if r.check == "disagreement")
    assert shrunk.class_name == "left lung" and shrunk.value == 1.0 and "edges" not in shrunk.text
    doubted = next(r for r in by_id[bad_model].reasons if r.check == "disagreement")
    assert doubted.class_name == "left lung" and doubted.value <= 0.5
    # a shrunk prediction is explained by a shrinking of the label (fit), which the edges do not weigh (on the
    # real films they misjudged shifted labels: suspicion.py says how)
    fit = next(r for r in by_id[bad_model].reasons if r.check == "fit")
    assert fit.value == 1.0 and "shrunk by" in fit.text and "edges" not in fit.text
    assert by_id[bad_model].score < by_id[bad_label].score
    # the edges' verdict is said once, by the strongest of the model checks it weighs, not repeated by the others
    model_reasons = [r for r in by_id[bad_model].reasons if r.check in ("disagreement", "boundary", "confident_other")]
    assert len(model_reasons) >= 2
    assert "the image's edges side with the label" in model_reasons[0].text
    assert sum("the image's edges side with the label" in r.text for r in model_reasons) == 1


def test_a_model_that_cannot_segment_a_class_does_not_judge_it(lungs: Dataset) -> None:
    """A model that never finds the right lung (usual Dice 0) says nothing about right-lung labels, although it
    disagrees with every one of them; its left-lung checks still count."""
    ids = _ids(lungs)
    right, left = ids["right lung"], ids["left lung"]
    victim = lungs.samples[8].id

    def label(sid: str) -> np.ndarray:
        m = lungs.load_gt(sid)
        return _eroded(m, left, 4) if sid == victim else m

    def blind(sid: str) -> np.ndarray:
        m = lungs.load_gt(sid).copy()
        m[m == right] = 0
        return m

    ranked = rank_dataset(lungs, masks=label, predictions=blind, use_images=False)
    assert not any(r.class_name == "right lung" and r.check in ("disagreement", "boundary")
                   for s in ranked for r in s.reasons)
    assert ranked[0].sample_id == victim
    assert any(r.check == "disagreement" and r.class_name == "left lung" for r in ranked[0].reasons)


def test_reports_are_json_and_weights_documented(lungs: Dataset) -> None:
    import json

    ranked = rank_dataset(lungs, use_images=False)
    doc = json.loads(json.dumps([s.to_dict() for s in ranked], allow_nan=False))
    assert doc[0]["sample_id"] == ranked[0].sample_id
    assert all(0 < w <= 1 for w, _ in CHECKS.values())
    from segstudio.metrics import suspicion

    assert all(f"``{name}``" in suspicion.__doc__ for name in CHECKS)  # every check is in the documented table
    assert not any(math.isnan(s.score) for s in ranked)


def test_an_unreadable_label_is_listed_last_with_its_error(lungs: Dataset) -> None:
    from segstudio.core.errors import SegstudioError

    victim = lungs.samples[0].id

    def masks(sid: str) -> np.ndarray:
        if sid == victim:
            raise SegstudioError("The mask cannot be decoded.", path=Path("/mem") / sid)
        return lungs.load_gt(sid)

    ranked = rank_dataset(lungs, masks=masks)
    assert ranked[-1].sample_id == victim and "cannot be decoded" in ranked[-1].error


def _drawn_windows(seed: int, size: int = 512) -> np.ndarray:
    """A mask of 3-5 windows drawn as polygons of 4-6 vertices (the way an annotator clicks them)."""
    rng = np.random.default_rng(seed)
    m = np.zeros((size, size), np.uint8)
    for k in range(int(rng.integers(3, 6))):
        cy, cx = 80 + 110 * (k % 4), int(rng.integers(60, size - 60))
        n = int(rng.integers(4, 7))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = rng.uniform(25, 45, n)
        poly = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(m, [poly], 1)
    return m


def test_a_stray_blob_is_an_ellipse_unlike_the_drawn_outlines() -> None:
    schema = ClassSchema.from_names(("background", "window"))
    gts = {f"s{i}": _drawn_windows(i) for i in range(12)}
    victim = "s7"
    blob = gts[victim].copy()
    blob[:, 440:] = 0
    cv2.ellipse(blob, (476, 256), (30, 22), 30, 0, 360, 1, thickness=-1)  # painted with a round brush
    samples = [Sample(id=k, image=Path("/mem") / k, gt=k) for k in gts]
    ds = Dataset(root=Path("/mem"), format_name="test", schema=schema, samples=samples,
                 read_image=lambda d, s: np.zeros((512, 512, 3), np.uint8), read_gt=lambda d, s: gts[s.id])
    f = measure_sample("x", blob, schema=schema)
    assert f.classes[0].ellipse_gap < 0.01  # the drawn polygons lie ~10 % off their ellipses
    assert min(c.ellipse_gap for k in gts for c in measure_sample(k, gts[k], schema=schema).classes) > 0.03
    ranked = rank_dataset(ds, masks=lambda sid: blob if sid == victim else gts[sid], use_images=False)
    assert ranked[0].sample_id == victim
    r = next(r for r in ranked[0].reasons if r.check == "blob")
    assert r.class_name == "window" and "near-perfect ellipse" in r.text and "window" in r.text
    y0, y1, x0, x1 = r.box
    assert y0 <= 256 <= y1 and x0 <= 476 <= x1  # the blob is highlighted
    assert not any(r.check == "blob" for s in ranked[1:] for r in s.reasons if r.value > 0.3)


def test_a_class_of_specks_only_is_missing(lungs: Dataset) -> None:
    ids = _ids(lungs)
    victim = lungs.samples[3].id

    def specks(m: np.ndarray) -> np.ndarray:
        out = m.copy()
        out[m == ids["left lung"]] = 0
        out[60, 90] = out[64, 96] = out[70, 100] = ids["left lung"]  # all that is left of it: three 1-px specks
        return out

    ranked, s = _spoilt(lungs, victim, specks)
    missing = [r for r in s.reasons if r.check == "missing"]
    assert missing and missing[0].class_name == "left lung" and "3 speck(s) of it are left" in missing[0].text
    assert ranked[0].sample_id == victim


def test_edges_are_measured_on_the_outer_outline() -> None:
    """A facade moved 12 px off its edges keeps its windows in place: their outlines still lie on the image's
    edges, and they are the windows' outlines, not the facade's — measured, they would hide the move."""
    schema = ClassSchema.from_names(("background", "facade", "window"))
    img = np.full((512, 512, 3), 20, np.uint8)
    img[100:420, 100:420] = 200
    mask = np.zeros((512, 512), np.uint8)
    mask[112:432, 112:432] = 1
    for i in range(4):
        for j in range(4):
            y, x = 130 + 75 * i, 130 + 75 * j
            img[y:y + 40, x:x + 40] = 60
            mask[y:y + 40, x:x + 40] = 2
    f = measure_sample("x", mask, schema=schema, image=img)
    facade, window = f.classes
    assert facade.edge_alignment < 0.6 and window.edge_alignment > 0.9


@pytest.mark.parametrize("size", [512, 1024, 2048])
def test_an_outline_grown_by_14_image_pixels_is_measured_against_the_edge_it_left(size: int) -> None:
    """The band the edge is looked for in is the mask's own pixels: a square grown by 14 px (the issue's 5-15 px
    brush error) is off its edge at any image size; measured over too narrow a band, it would find no edge near
    the outline and, on a textured image (an X-ray's ribs), look as aligned as the true one."""
    schema = ClassSchema.from_names(("background", "tile"))
    s = size // 512
    texture = np.random.default_rng(0).normal(0.0, 25.0, (size // 4, size // 4))
    img = np.full((size, size), 80.0) + cv2.resize(texture, (size, size), interpolation=cv2.INTER_CUBIC)
    img[128 * s:384 * s, 128 * s:384 * s] += 90
    img = np.clip(img, 0, 255).astype(np.uint8)
    true = np.zeros((size, size), np.uint8)
    true[128 * s:384 * s, 128 * s:384 * s] = 1
    grown = cv2.dilate(true, cv2.getStructuringElement(cv2.MORPH_RECT, (29, 29)))
    on = measure_sample("x", true, schema=schema, image=img).classes[0].edge_alignment
    off = measure_sample("x", grown, schema=schema, image=img).classes[0].edge_alignment
    assert on > 0.9 and off < 0.5


def test_samples_tied_at_full_score_are_ordered_by_their_further_evidence(lungs: Dataset) -> None:
    """A rule every image breaks scores them all 1.0; the one with more wrong besides comes first, not the first
    in dataset order."""
    ids = _ids(lungs)
    rules = rules_from_dict({"classes": [{"name": "left lung", "image_side": "left"}]}, lungs.schema, path="r.json")
    victim = lungs.samples[17].id

    def masks(sid: str) -> np.ndarray:
        m = lungs.load_gt(sid).copy()
        if sid == victim:
            m[2, 2] = m[2, 6] = m[6, 2] = ids["right lung"]  # specks besides
        return m

    def evidence(s) -> float:  # noqa: ANN001
        return sum(CHECKS[r.check][0] * r.value for r in s.reasons)

    plain = rank_dataset(lungs, rules=rules)
    ranked = rank_dataset(lungs, masks=masks, rules=rules)
    assert all(s.score == 1.0 for s in ranked)
    assert [evidence(s) for s in ranked] == sorted((evidence(s) for s in ranked), reverse=True)
    position = {s.sample_id: i for i, s in enumerate(ranked)}
    assert position[victim] < [s.sample_id for s in plain].index(victim)
    assert "islands" in _checks(ranked[position[victim]])


def test_a_label_that_agrees_with_the_model_once_moved_or_grown_says_so(lungs: Dataset) -> None:
    """Against a model that sees the lungs as they are: one label shifted 6 px down (at 128², a 24 px shift of the
    512² film), one eroded by 2 px, and one image where the model itself missed the lower third of the left lung.
    The first two get the ``fit`` reason, saying which way and how far; the model's own mistake gets none and
    ranks below them."""
    ids = _ids(lungs)
    left, right = ids["left lung"], ids["right lung"]
    moved, thin, missed = lungs.samples[3].id, lungs.samples[7].id, lungs.samples[12].id

    def label(sid: str) -> np.ndarray:
        m = lungs.load_gt(sid)
        if sid == moved:
            out = m.copy()
            out[m == right] = 0
            out[np.roll(m == right, 6, axis=0)] = right
            return out
        return _eroded(m, left, 2) if sid == thin else m

    def prediction(sid: str) -> np.ndarray:
        m = lungs.load_gt(sid).copy()
        if sid == missed:
            rows = np.flatnonzero((m == left).any(axis=1))
            cut = rows[0] + int(0.67 * (rows[-1] - rows[0]))
            m[cut:][m[cut:] == left] = 0
        return m

    ranked = rank_dataset(lungs, masks=label, predictions=prediction, use_images=False)
    by_id = {s.sample_id: s for s in ranked}
    fit_moved = next(r for r in by_id[moved].reasons if r.check == "fit")
    assert fit_moved.class_name == "right lung" and "if it were moved 6 px up (Dice" in fit_moved.text
    fit_thin = next(r for r in by_id[thin].reasons if r.check == "fit")
    assert fit_thin.class_name == "left lung" and re.search(r"if it were grown by [23] px", fit_thin.text)  # L2 vs a square
    assert not any(r.check == "fit" for r in by_id[missed].reasons)
    assert any(r.check == "disagreement" for r in by_id[missed].reasons)
    order = [s.sample_id for s in ranked]
    assert order.index(missed) > max(order.index(moved), order.index(thin))


def test_areas_and_centres_are_measured_on_the_films_content_not_its_padding(montgomery: Path) -> None:
    """A film padded with black bands (as one resized into a square is) measures the same lung areas and centres
    as the film itself: the constant bands are left out (``content_box``)."""
    from segstudio.core.content import content_box
    from segstudio.datasets.registry import open_dataset

    ds = open_dataset(montgomery, format="class-folders")
    sample = ds.samples[1]
    image, gt = ds.load_image(sample), ds.load_gt(sample)
    top, bottom, left, right = 40, 120, 90, 10
    padded_image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
    padded_gt = cv2.copyMakeBorder(gt, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
    y0, y1, x0, x1 = content_box(image)
    assert content_box(padded_image) == (y0 + top, y1 + top, x0 + left, x1 + left)
    plain = measure_sample("plain", gt, schema=ds.schema, image=image)
    padded = measure_sample("padded", padded_gt, schema=ds.schema, image=padded_image)
    for a, b in zip(plain.classes, padded.classes, strict=True):
        assert a.present and b.present
        assert b.area == pytest.approx(a.area, rel=1e-6)
        assert (b.cy, b.cx) == pytest.approx((a.cy, a.cx), abs=1e-6)
    blank = np.full((64, 64), 7, np.uint8)
    assert content_box(blank) == (0, 64, 0, 64)  # nothing but a band: the whole image


def test_a_model_that_differs_from_every_label_the_same_way_does_not_make_them_all_suspect(lungs: Dataset) -> None:
    """A model that outlines every left lung a pixel inside the label (as the facade models fill every facade)
    gains each label about the same ``fit`` (0.05 here, which alone would count fully): it is the model's way, not
    the labels', and no label is suspect for it. A label moved 8 px among them still is."""
    ids = _ids(lungs)
    left = ids["left lung"]
    moved = lungs.samples[20].id

    def label(sid: str) -> np.ndarray:
        m = lungs.load_gt(sid)
        if sid != moved:
            return m
        out = m.copy()
        out[m == left] = 0
        out[np.roll(m == left, 8, axis=1)] = left
        return out

    def prediction(sid: str) -> np.ndarray:
        return _eroded(lungs.load_gt(sid), left, 1)

    ranked = rank_dataset(lungs, masks=label, predictions=prediction)
    fits = {s.sample_id: r for s in ranked for r in s.reasons if r.check == "fit" and r.class_name == "left lung"}
    assert moved in fits and re.search(r"if it were moved (1 px down and )?[78] px left", fits[moved].text)
    others = sorted((round(r.value, 3), sid) for sid, r in fits.items() if sid != moved)
    assert all(v < 0.6 for v, _ in others), others  # the tail of the usual gains, at most
    assert ranked[0].sample_id == moved
