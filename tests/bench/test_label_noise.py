"""The label-noise benchmark harness (bench/label_noise.py, issue 16): each corruption does what its name says,
deterministically; the corrupted set is a seeded, recorded share; precision and recall at k."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import label_noise as ln  # noqa: E402
from segstudio.core.types import ClassSchema  # noqa: E402
from segstudio.datasets.base import Dataset, Sample  # noqa: E402

LUNGS = ClassSchema.from_names(("background", "left lung", "right lung"))


def lungs(size: int = 200, *, jitter: int = 0) -> np.ndarray:
    """Two "lungs": upright ellipses, the left lung (1) on the image's right as on a chest X-ray."""
    m = np.zeros((size, size), np.uint8)
    s = size / 200
    cv2.ellipse(m, (int(65 * s) + jitter, int(100 * s)), (int(30 * s), int(60 * s)), 0, 0, 360, 2, -1)
    cv2.ellipse(m, (int(135 * s) - jitter, int(100 * s)), (int(30 * s), int(60 * s)), 0, 0, 360, 1, -1)
    return m


def area(m: np.ndarray, c: int) -> int:
    return int(np.count_nonzero(m == c))


def centroid(m: np.ndarray, c: int) -> np.ndarray:
    ys, xs = np.nonzero(m == c)
    return np.array([xs.mean(), ys.mean()])


def n_components(m: np.ndarray, c: int) -> int:
    return cv2.connectedComponents((m == c).astype(np.uint8), connectivity=8)[0] - 1


def run(kind: str, mask: np.ndarray, seed: int = 0, schema: ClassSchema = LUNGS):
    before = mask.copy()
    out, detail = ln.corrupt(kind, mask, schema, np.random.default_rng(seed))
    assert np.array_equal(mask, before), "the input mask was modified"
    assert out.shape == mask.shape and out.dtype == mask.dtype
    return out, detail


# the corruptions -------------------------------------------------------------------------------------------------


def test_sizes_are_the_images_own_pixels_unless_a_reference_size_scales_them():
    assert ln.scaled_px(10, (512, 400)) == 10  # as the issue states them: pixels of the image itself
    assert ln.scaled_px(10, (1000, 1000), 1000) == 10
    assert ln.scaled_px(10, (512, 400), 1000) == 5
    assert ln.scaled_px(5, (200, 200), 1000) == 2
    assert ln.scaled_px(15, (100, 50), 1000) == 2  # never below 2


def test_a_reference_size_scales_the_drawn_sizes_down_on_smaller_images():
    m = lungs()
    _, own = ln.corrupt("erode", m, LUNGS, np.random.default_rng(0))
    _, scaled = ln.corrupt("erode", m, LUNGS, np.random.default_rng(0), 1000)
    assert 5 <= own["px"] <= 15 and scaled["px"] == max(2, round(own["px"] * 200 / 1000))
    _, own = ln.corrupt("shift", lungs(400), LUNGS, np.random.default_rng(1))
    _, scaled = ln.corrupt("shift", lungs(400), LUNGS, np.random.default_rng(1), 1000)
    assert np.hypot(scaled["dx"], scaled["dy"]) == pytest.approx(0.4 * np.hypot(own["dx"], own["dy"]), abs=1.5)


@pytest.mark.parametrize("seed", range(4))
def test_erode_shrinks_one_class_inside_its_outline(seed):
    m = lungs()
    out, d = run("erode", m, seed)
    c, other = d["class_id"], 3 - d["class_id"]
    assert 5 <= d["px"] <= 15  # the 5-15 px
    assert area(out, c) < area(m, c)
    assert np.all(m[out == c] == c), "the eroded class left its original outline"
    assert np.array_equal(out == other, m == other)
    assert set(np.unique(out[(m == c) & (out != c)])) == {0}, "given-up pixels go back to the background"
    # an elliptical erosion by px removes about a px-wide rim
    kept = cv2.erode((m == c).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d["px"] + 1,) * 2))
    assert np.array_equal(out == c, kept.astype(bool))


@pytest.mark.parametrize("seed", range(4))
def test_dilate_grows_one_class_around_its_outline(seed):
    m = lungs()
    out, d = run("dilate", m, seed)
    c = d["class_id"]
    assert area(out, c) > area(m, c)
    assert np.all(out[m == c] == c)
    grown = cv2.dilate((m == c).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d["px"] + 1,) * 2))
    assert np.array_equal(out == c, grown.astype(bool))


def test_drop_part_removes_the_whole_class_when_it_has_one_part():
    m = lungs()
    out, d = run("drop_part", m)
    c = d["class_id"]
    assert d["whole_class"] is True
    assert area(out, c) == 0
    assert np.array_equal(out == 3 - c, m == 3 - c)


def test_drop_part_removes_one_component_of_a_class_with_several():
    m = np.zeros((200, 200), np.uint8)
    m[20:60, 20:60] = 1
    m[120:180, 120:180] = 1
    m[20:60, 120:180] = 2  # a second class with one part: dropping it whole is also a drop_part
    seen = set()
    for seed in range(12):
        out, d = run("drop_part", m, seed)
        if d["class_id"] == 1:
            assert d["whole_class"] is False and d["parts"] == 2
            assert n_components(out, 1) == 1
            kept = out == 1
            assert np.all(m[kept] == 1)
            seen.add(int(kept.sum()))
    assert seen == {1600, 3600}, "either part can be the one dropped"


def test_a_dropped_window_becomes_the_facade_around_it_and_a_dropped_facade_keeps_its_windows():
    schema = ClassSchema.from_names(("background", "facade", "window"))
    m = np.zeros((200, 200), np.uint8)
    m[30:170, 30:170] = 1
    m[60:90, 60:90] = 2
    out_win = ln._relayer(m, 2, np.zeros(m.shape, bool), schema)
    assert area(out_win, 2) == 0 and np.all(out_win[60:90, 60:90] == 1)
    out_fac = ln._relayer(m, 1, np.zeros(m.shape, bool), schema)
    assert area(out_fac, 1) == 0 and np.all(out_fac[60:90, 60:90] == 2) and area(out_fac, 2) == area(m, 2)
    # and a shifted facade slides under its window, which stays where it was
    out, d = run("shift", m, 0, schema)
    if d["class_id"] == 1:
        assert np.array_equal(out == 2, m == 2)


def test_merge_classes_relabels_one_present_class_as_the_other():
    m = lungs()
    out, d = run("merge_classes", m)
    a, b = d["class_id"], d["into_class_id"]
    assert {a, b} == {1, 2}
    assert area(out, a) == 0 and area(out, b) == area(m, 1) + area(m, 2)
    assert np.array_equal(out == 0, m == 0)


def test_merge_needs_two_classes():
    m = lungs()
    m[m == 2] = 0
    with pytest.raises(ln.NotApplicable):
        run("merge_classes", m)


def test_swap_left_right_exchanges_the_two_labels_exactly():
    m = lungs()
    out, d = run("swap_left_right", m)
    assert d["left_right"] is True and {d["class_id"], d["with_class_id"]} == {1, 2}
    expected = m.copy()
    expected[m == 1], expected[m == 2] = 2, 1
    assert np.array_equal(out, expected)


def test_left_right_pairs_are_found_by_name_and_else_two_classes_swap():
    schema = ClassSchema.from_names(("background", "Lung_R", "heart", "lung_l", "left clavicle", "right clavicle"))
    assert sorted(ln.left_right_pairs(schema)) == [(3, 1), (4, 5)]
    plain = ClassSchema.from_names(("background", "sky", "road", "car"))
    assert ln.left_right_pairs(plain) == []
    m = np.zeros((100, 100), np.uint8)
    m[:40], m[60:], m[45:55, 40:60] = 1, 2, 3
    out, d = run("swap_left_right", m, 0, plain)
    a, b = d["class_id"], d["with_class_id"]
    assert d["left_right"] is False and a != b
    assert np.array_equal(out == a, m == b) and np.array_equal(out == b, m == a)


@pytest.mark.parametrize("seed", range(4))
def test_shift_moves_one_class_by_the_drawn_amount(seed):
    m = lungs(400)
    out, d = run("shift", m, seed)
    c, dx, dy = d["class_id"], d["dx"], d["dy"]
    assert 10 - 1 <= np.hypot(dx, dy) <= 20 + 1  # the 10-20 px (rounded per axis)
    assert area(out, c) == area(m, c)
    assert np.allclose(centroid(out, c) - centroid(m, c), [dx, dy], atol=1e-6)
    expected = np.roll(m == c, (dy, dx), axis=(0, 1))
    assert np.array_equal(out == c, expected)
    assert np.all(out[(m == c) & ~expected] == 0)


def test_coarse_polygon_replaces_the_outline_by_a_few_vertices():
    m = lungs(400)
    out, d = run("coarse_polygon", m)
    c = d["class_id"]
    assert 6 <= d["max_vertices"] <= 10 and d["outlines"] == 1
    assert not np.array_equal(out == c, m == c)
    inter = np.count_nonzero((out == c) & (m == c))
    union = np.count_nonzero((out == c) | (m == c))
    assert 0.8 < inter / union < 1.0, "a coarse version of the same region"
    contours, _ = cv2.findContours((out == c).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    assert len(contours) == 1
    assert len(cv2.approxPolyDP(contours[0], 1.5, True)) <= d["max_vertices"]
    assert np.array_equal(out == 3 - c, m == 3 - c)


@pytest.mark.parametrize("seed", range(4))
def test_stray_blob_adds_one_component_of_a_class_where_it_is_not(seed):
    m = lungs()
    out, d = run("stray_blob", m, seed)
    c = d["class_id"]
    assert n_components(out, c) == n_components(m, c) + 1
    assert np.all(out[m == c] == c), "the class keeps its pixels"
    added = (out == c) & (m != c)
    assert d["area"] == np.count_nonzero(added)
    assert 0.003 * m.size * 0.8 <= d["area"] <= 0.02 * m.size * 1.2
    near = cv2.dilate((m == c).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert not (added & near).any(), "the blob lies apart from the class"


@pytest.mark.parametrize("kind", ln.ALL)
def test_each_kind_is_deterministic_for_a_seed(kind):
    m = lungs()
    a, da = run(kind, m, seed=7)
    b, db = run(kind, m, seed=7)
    assert np.array_equal(a, b) and da == db
    assert not np.array_equal(a, m), "every corruption changes the mask"


def test_the_public_functions_return_the_corrupted_mask():
    m = lungs()
    for kind in ln.ALL:
        got = getattr(ln, kind)(m, LUNGS, np.random.default_rng(3))
        assert np.array_equal(got, ln.corrupt(kind, m, LUNGS, np.random.default_rng(3))[0])


def test_seeds_give_different_corruptions():
    m = lungs()
    outs = {run("stray_blob", m, seed)[0].tobytes() for seed in range(5)}
    assert len(outs) == 5


# the corrupted set -----------------------------------------------------------------------------------------------


def lungs_dataset(n: int, *, size: int = 64, no_gt: int = 0) -> Dataset:
    """``n`` in-memory lung masks (each slightly different) plus ``no_gt`` samples without GT."""
    gts = {f"img{i:02d}.png": lungs(size, jitter=i % 5) for i in range(n)}
    samples = [Sample(id=k, image=Path("/mem") / k, gt=k) for k in gts]
    samples += [Sample(id=f"nogt{i}.png", image=Path("/mem") / f"nogt{i}.png") for i in range(no_gt)]
    loads: list[str] = []
    ds = Dataset(root=Path("/mem"), format_name="test", schema=LUNGS, samples=samples,
                 read_image=lambda ds, s: np.zeros((size, size), np.uint8),
                 read_gt=lambda ds, s: (loads.append(s.id), None if s.gt is None else gts[s.id].copy())[1])
    ds.options["loads"] = loads
    return ds


@pytest.mark.parametrize(("n", "k"), [(40, 8), (50, 10), (23, 5), (10, 2), (2, 0)])
def test_corrupt_dataset_picks_a_rounded_fifth_of_the_samples_with_gt(n, k):
    cs = ln.corrupt_dataset(lungs_dataset(n, no_gt=3))
    assert len(cs.corrupted) == k
    assert all(sid.startswith("img") for sid in cs.corrupted)
    assert len(cs.sample_ids) == n
    if k >= len(ln.ALL):
        assert set(cs.corrupted.values()) == set(ln.ALL)
        counts = [list(cs.corrupted.values()).count(kind) for kind in ln.ALL]
        assert max(counts) - min(counts) <= 1, "round-robin"


def test_the_set_is_lazy_cached_and_gives_the_gt_of_the_others():
    ds = lungs_dataset(40)
    cs = ln.corrupt_dataset(ds)
    assert ds.options["loads"] == [], "nothing is read before a mask is asked for"
    chosen = sorted(cs.corrupted)[0]
    clean = next(s.id for s in ds if s.id not in cs.corrupted)
    a = cs.masks(chosen)
    assert not np.array_equal(a, ds.load_gt(chosen))
    assert np.array_equal(cs.masks(clean), ds.load_gt(clean))
    a[:] = 0  # the caller's copy: the cache is not touched
    assert np.array_equal(cs.masks(chosen), cs.masks(chosen)) and cs.masks(chosen).any()
    assert ds.options["loads"].count(chosen) == 2  # once for the set, once for the comparison above


def test_as_dataset_serves_the_corrupted_masks_as_gt_and_leaves_the_dataset_alone():
    ds = lungs_dataset(10)
    cs = ln.corrupt_dataset(ds)
    noisy = cs.as_dataset()
    assert [s.id for s in noisy] == [s.id for s in ds] and noisy.schema == ds.schema
    for sid in cs.sample_ids:
        assert np.array_equal(noisy.load_gt(sid), cs.masks(sid))
    chosen = next(iter(cs.corrupted))
    assert not np.array_equal(ds.load_gt(chosen), noisy.load_gt(chosen))


def test_the_same_seed_gives_the_same_set_and_masks_in_any_order():
    ds = lungs_dataset(40)
    a, b = ln.corrupt_dataset(ds, seed=3), ln.corrupt_dataset(ds, seed=3)
    assert a.corrupted == b.corrupted
    for sid in sorted(a.corrupted):
        a.masks(sid)
    for sid in sorted(b.corrupted, reverse=True):
        assert np.array_equal(a.masks(sid), b.masks(sid))
    assert a.manifest() == b.manifest()
    assert ln.corrupt_dataset(ds, seed=4).corrupted != a.corrupted


def test_a_kind_the_mask_does_not_allow_falls_back_to_the_next_and_is_recorded():
    ds = lungs_dataset(10)
    one_class = lungs(64)
    one_class[one_class == 2] = 0
    ds.read_gt = lambda _ds, s: one_class.copy()
    cs = ln.corrupt_dataset(ds, fraction=1.0, kinds=("merge_classes", "swap_left_right", "erode"))
    cs.materialise()
    assert set(cs.corrupted.values()) == {"erode"}
    man = cs.manifest()
    merged = [e for e in man["corrupted"] if e["assigned"] == "merge_classes"]
    assert merged and all(e["kind"] == "erode" and e["detail"]["instead_of"] == "merge_classes" for e in merged)


def test_unknown_kinds_and_fractions_are_refused():
    ds = lungs_dataset(5)
    with pytest.raises(ValueError, match="unknown noise kinds"):
        ln.corrupt_dataset(ds, kinds=("smudge",))
    with pytest.raises(ValueError, match="fraction"):
        ln.corrupt_dataset(ds, fraction=1.5)


def test_the_manifest_is_json_and_names_seed_fraction_ids_and_kinds():
    cs = ln.corrupt_dataset(lungs_dataset(40), seed=5)
    cs.materialise()
    man = cs.manifest()
    assert json.loads(json.dumps(man, allow_nan=False)) == man
    assert man["seed"] == 5 and man["fraction"] == 0.2 and man["n"] == 40 and man["k"] == 8
    assert {e["sample_id"]: e["kind"] for e in man["corrupted"]} == cs.corrupted


# scoring ---------------------------------------------------------------------------------------------------------


def test_precision_and_recall_at_k():
    ranked = ["a", "x", "b", "y", "c", "z"]
    assert ln.precision_recall_at_k(ranked, {"a", "b", "c"}) == (2 / 3, 2 / 3)
    assert ln.precision_recall_at_k(ranked, ["a", "x"]) == (1.0, 1.0)
    assert ln.precision_recall_at_k(ranked, {"z"}) == (0.0, 0.0)
    assert ln.precision_recall_at_k(["a"], {"a", "b"}) == (0.5, 0.5)  # a ranking shorter than k
    with pytest.raises(ValueError):
        ln.precision_recall_at_k(ranked, set())


def test_per_kind_recall_counts_each_kinds_images_within_the_first_k():
    ranked = ["a", "x", "b", "y", "c", "d"]
    corrupted = {"a": "erode", "b": "erode", "c": "shift", "d": "stray_blob"}  # k = 4: a, x, b, y
    assert ln.per_kind_recall(ranked, corrupted) == {"erode": 1.0, "shift": 0.0, "stray_blob": 0.0}


def test_evaluate_ranking_reports_ranks_and_scores():
    ranked = [SimpleNamespace(sample_id=s, score=1.0 - i / 10) for i, s in enumerate(["a", "x", "b"])]
    row = ln.evaluate_ranking(ranked, {"a": "erode", "b": "shift"})
    assert row["precision_at_k"] == 0.5 and row["recall_at_k"] == 0.5
    assert row["per_kind_recall"] == {"erode": 1.0, "shift": 0.0}
    assert row["corrupted_ranks"]["b"] == {"kind": "shift", "rank": 3, "score": pytest.approx(0.8)}


def test_the_runner_writes_the_figures_and_the_manifest(tmp_path, monkeypatch, capsys):
    ds = lungs_dataset(20)

    def oracle(dataset, corrupted):  # ranks by how much each mask differs from the GT: a perfect scorer
        diff = {sid: float(np.count_nonzero(corrupted.masks(sid) != dataset.load_gt(sid))) for sid in corrupted.sample_ids}
        return [SimpleNamespace(sample_id=s, score=v) for s, v in sorted(diff.items(), key=lambda t: -t[1])]

    import segstudio.datasets.registry as registry

    monkeypatch.setattr(registry, "open_dataset", lambda path, **kw: ds)
    monkeypatch.setattr(ln, "MODES", {"without_model": oracle})
    monkeypatch.setattr(ln, "SHARED", tmp_path)
    (tmp_path / "montgomery_cxr" / "data").mkdir(parents=True)
    out = tmp_path / "label_noise.json"
    assert ln.main(["--datasets", "montgomery", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    row = doc["datasets"]["montgomery"]["without_model"]
    assert row["n"] == 20 and row["k"] == 4 and row["precision_at_k"] == 1.0 and row["recall_at_k"] == 1.0
    assert doc["datasets"]["montgomery"]["manifest"]["k"] == 4 and doc["machine"]
    assert "montgomery" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        ln.main(["--datasets", "nope", "--out", str(out)])


# the real data ---------------------------------------------------------------------------------------------------


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.stat(p)
            out[os.path.relpath(p, root)] = (st.st_mtime_ns, st.st_size)
    return out


def test_montgomery_corrupted_set_is_recorded_and_leaves_the_shared_folder_alone(montgomery):
    from segstudio.datasets.registry import open_dataset

    before = _listing(montgomery)
    ds = open_dataset(montgomery)
    cs = ln.corrupt_dataset(ds, seed=0)
    assert len(cs.sample_ids) == 40 and len(cs.corrupted) == 8
    assert set(cs.corrupted.values()) == set(ln.ALL), "one image of each kind"
    cs.materialise()
    for sid, kind in cs.corrupted.items():
        assert kind == cs.assigned[sid], f"{sid}: {kind} fell back from {cs.assigned[sid]}"
        gt = ds.load_gt(sid)
        assert np.count_nonzero(cs.masks(sid) != gt) >= 0.001 * gt.size
    man = cs.manifest()
    assert json.loads(json.dumps(man, allow_nan=False)) == man
    again = ln.corrupt_dataset(open_dataset(montgomery), seed=0)
    again.materialise()
    assert again.manifest() == man
    assert _listing(montgomery) == before


def test_the_fold_predictions_cache_is_kept_per_config_and_retrained_when_the_recipe_changes(tmp_path, monkeypatch):
    """``--cache`` keeps the out-of-fold predictions of a seed; a recipe whose contents change (not only its name
    or overrides) must train its fold models anew instead of reusing the old ones."""
    from segstudio.engine import recipes

    corrupted = SimpleNamespace(px_reference=None, fraction=0.2)
    trained: list[str] = []

    def fake_training(cs, *, name, folds):
        trained.append(name)
        m = lungs(32)
        return SimpleNamespace(masks={"a.png": m}, probabilities={"a.png": np.zeros((3, 32, 32), np.float16)})

    monkeypatch.setattr(ln, "out_of_fold_predictions", fake_training)
    first = ln.cached_out_of_fold(corrupted, name="montgomery", folds=4, seed=0, cache=tmp_path)
    again = ln.cached_out_of_fold(corrupted, name="montgomery", folds=4, seed=0, cache=tmp_path)
    assert trained == ["montgomery"] and np.array_equal(again.masks["a.png"], first.masks["a.png"])
    assert len(list(tmp_path.glob("montgomery-seed0-k4-*.npz"))) == 1

    real = recipes.load_recipe

    def changed(name):  # the same recipe name and overrides, other contents
        cfg = real(name)
        return cfg.with_overrides(["augment.preset=xray"] if cfg.augment.preset != "xray" else ["augment.preset=chest"])

    monkeypatch.setattr(recipes, "load_recipe", changed)
    ln.cached_out_of_fold(corrupted, name="montgomery", folds=4, seed=0, cache=tmp_path)
    assert trained == ["montgomery", "montgomery"]
    assert len(list(tmp_path.glob("montgomery-seed0-k4-*.npz"))) == 2
