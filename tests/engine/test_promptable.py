"""The SAM adapter's mechanics with randomly initialised models of the real architecture (a 2-block, 64-wide
image encoder; the real prompt encoder and mask decoder): loading a .pth and ONNX pairs, shapes, that every
prompt reaches the decoder, torch/onnxruntime agreement, the embedding cache, and the errors for bad files. The
masks of a random model mean nothing: quality is not tested here."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from segstudio.engine.embedding_cache import EmbeddingCache, embedding_key, pixel_digest
from segstudio.engine.promptable import (
    Embedding,
    PromptableModelError,
    SamCheckpointModel,
    load_promptable,
    sam_architecture,
)
from segstudio.engine.promptable_export import build_random_sam, export_onnx_pair, save_checkpoint
from segstudio.engine.promptable_onnx import SamOnnxPair

pytest.importorskip("segment_anything")
pytest.importorskip("onnxruntime")

TINY = {"encoder_depth": 2, "embed_dim": 64, "num_heads": 2}


@pytest.fixture(scope="module")
def sam_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny random SAM as a .pth, as an ONNX pair returning every mask and as a single-mask pair."""
    root = tmp_path_factory.mktemp("sam")
    sam = build_random_sam("vit_b", **TINY, seed=3)
    pth = save_checkpoint(sam, root / "tiny_sam.pth")
    export_onnx_pair(sam, root / "pair", stem="tiny")
    export_onnx_pair(sam, root / "single", stem="tiny", return_single_mask=True)
    return {"pth": pth, "pair": root / "pair", "single": root / "single"}


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 60, (300, 420, 3), np.uint8)
    img[80:200, 120:300] += 150  # a bright object, so that the prompts land on different things
    return img


@pytest.fixture(scope="module")
def models(sam_files: dict[str, Path]) -> dict[str, object]:
    return {"torch": load_promptable(sam_files["pth"], decoder_backend="torch"),
            "ort": load_promptable(sam_files["pth"]),
            "pair": load_promptable(sam_files["pair"]),
            "single": load_promptable(sam_files["single"] / "tiny_decoder.onnx")}


@pytest.fixture(scope="module")
def embedding(models: dict[str, object], image: np.ndarray) -> Embedding:
    return models["torch"].embed(image)  # type: ignore[attr-defined]


def test_the_architecture_is_read_from_the_state_dict(sam_files: dict[str, Path]) -> None:
    tiny = sam_architecture(torch.load(sam_files["pth"], weights_only=True))
    assert (tiny.embed_dim, tiny.depth, tiny.num_heads, tiny.global_attn_indexes) == (64, 2, 2, (1,))
    vit_b = sam_architecture(build_random_sam("vit_b").state_dict())
    assert (vit_b.name, vit_b.embed_dim, vit_b.depth, vit_b.num_heads) == ("vit_b", 768, 12, 12)
    assert vit_b.global_attn_indexes == (2, 5, 8, 11)
    with pytest.raises(ValueError, match="image_encoder.pos_embed"):
        sam_architecture({"conv.weight": torch.zeros(3)})


def test_checkpoint_loads_embeds_and_decodes_at_the_image_size(models: dict[str, object],
                                                               image: np.ndarray) -> None:
    m = models["torch"]
    assert isinstance(m, SamCheckpointModel) and m.device == "cpu" and m.decoder_backend == "torch"
    assert models["ort"].decoder_backend == "onnxruntime"  # type: ignore[attr-defined]
    assert m.name == "SAM vit (64 wide, 2 blocks)"
    for img in (image, image[..., 0], np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])):
        emb = m.embed(img)
        assert emb.features.shape == (1, 256, 64, 64) and emb.features.dtype == np.float32
        assert emb.original_size == (300, 420) and emb.input_size == (731, 1024)
        assert emb.nbytes == 256 * 64 * 64 * 4
    out = m.decode(emb, points=[(200, 150, True)])
    assert out.mask.shape == (300, 420) and out.mask.dtype == np.bool_
    assert out.low_res_logits.shape == (1, 1, 256, 256) and np.isfinite(out.score)
    with pytest.raises(ValueError, match="point or a box"):
        m.decode(emb)
    with pytest.raises(ValueError, match="uint8"):
        m.embed(image.astype(np.float32))


def test_every_prompt_reaches_the_decoder(models: dict[str, object], embedding: Embedding) -> None:
    m = models["torch"]
    base = m.decode(embedding, points=[(200, 150, True)])  # type: ignore[attr-defined]

    def differs(**kw: object) -> bool:
        out = m.decode(embedding, **kw)  # type: ignore[attr-defined]
        return float(np.abs(out.low_res_logits - base.low_res_logits).max()) > 1e-3

    assert differs(points=[(20, 20, True)])  # another place
    assert differs(points=[(200, 150, False)])  # a negative point
    assert differs(points=[(200, 150, True), (30, 250, False)])  # a second point
    assert differs(points=[(200, 150, True)], box=(100, 60, 320, 220))  # a box
    assert differs(box=(100, 60, 320, 220))
    assert differs(points=[(200, 150, True)], multimask=False)  # the one-mask answer, not the best of three
    assert differs(points=[(200, 150, True)], previous_low_res_logits=base.low_res_logits)  # refinement
    again = m.decode(embedding, points=[(200, 150, True)])  # type: ignore[attr-defined]
    assert np.array_equal(again.low_res_logits, base.low_res_logits)  # deterministic


PROMPTS = [
    {"points": [(200, 150, True)]},
    {"points": [(200, 150, True), (30, 250, False)]},
    {"box": (100, 60, 320, 220)},
    {"points": [(200, 150, True)], "box": (100, 60, 320, 220)},
    {"points": [(200, 150, True), (210, 100, True)], "refine": True},
]


@pytest.mark.parametrize("prompt", PROMPTS, ids=["point", "two-points", "box", "point-box", "refine"])
def test_torch_onnxruntime_and_the_onnx_pair_agree(models: dict[str, object], embedding: Embedding, image: np.ndarray,
                                                   prompt: dict) -> None:
    kw = {k: v for k, v in prompt.items() if k != "refine"}
    if prompt.get("refine"):
        kw["previous_low_res_logits"] = models["torch"].decode(  # type: ignore[attr-defined]
            embedding, points=[(200, 150, True)]).low_res_logits
    ref = models["torch"].decode(embedding, **kw)  # type: ignore[attr-defined]
    # a single-mask export answers exactly when the prompt has 3 or more tokens (pads and box corners included);
    # a lone point or a lone box gets extra padding there, which moves its logits a little
    tokens = len(kw.get("points", ())) + (2 if "box" in kw else 1)
    names = ["ort", "pair"] + (["single"] if tokens >= 3 else [])
    for name in names:
        out = models[name].decode(embedding, **kw)  # type: ignore[attr-defined]
        assert np.abs(out.low_res_logits - ref.low_res_logits).max() < 1e-3, name
        assert abs(out.score - ref.score) < 1e-3, name
        assert np.mean(out.mask != ref.mask) < 1e-3, name


def test_the_onnx_encoder_matches_torch(models: dict[str, object], embedding: Embedding, image: np.ndarray) -> None:
    pair = models["pair"]
    assert isinstance(pair, SamOnnxPair) and pair.device == "cpu"
    emb = pair.embed(image)
    assert emb.input_size == embedding.input_size and emb.original_size == embedding.original_size
    assert np.abs(emb.features - embedding.features).max() < 1e-3


def test_a_single_mask_export_still_gives_one_mask_or_the_best_of_three(models: dict[str, object],
                                                                        embedding: Embedding) -> None:
    ref = models["torch"].decode(embedding, points=[(200, 150, True)])  # type: ignore[attr-defined]
    single = models["single"].decode(embedding, points=[(200, 150, True)])  # type: ignore[attr-defined]
    assert np.abs(single.low_res_logits - ref.low_res_logits).max() < 1e-3  # the best of three, as torch's
    one = models["single"].decode(embedding, points=[(200, 150, True)], multimask=False)  # type: ignore[attr-defined]
    assert np.abs(one.low_res_logits - ref.low_res_logits).max() > 1e-3  # the one-mask answer instead


def test_onnx_pair_naming_rule(sam_files: dict[str, Path], tmp_path: Path) -> None:
    pair = sam_files["pair"]
    by_file = load_promptable(pair / "tiny_decoder.onnx")
    by_encoder = load_promptable(pair / "tiny_encoder.onnx")
    assert isinstance(by_file, SamOnnxPair) and isinstance(by_encoder, SamOnnxPair)
    assert by_file.encoder_path == by_encoder.encoder_path == pair / "tiny_encoder.onnx"
    # a decoder alone: the error names the encoder it looked for
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "sam_vit_b_decoder.onnx").write_bytes((pair / "tiny_decoder.onnx").read_bytes())
    with pytest.raises(PromptableModelError, match="expected sam_vit_b_encoder.onnx") as err:
        load_promptable(lone / "sam_vit_b_decoder.onnx")
    assert err.value.path == lone / "sam_vit_b_decoder.onnx" and err.value.fix
    with pytest.raises(PromptableModelError, match="exactly one of each"):
        load_promptable(lone)
    # another name of the encoder: the folder's only *encoder*.onnx
    (lone / "image_encoder.onnx").write_bytes((pair / "tiny_encoder.onnx").read_bytes())
    assert load_promptable(lone / "sam_vit_b_decoder.onnx").encoder_path == lone / "image_encoder.onnx"
    (lone / "model.onnx").write_bytes(b"x")
    with pytest.raises(PromptableModelError, match="not named as half of an ONNX pair"):
        load_promptable(lone / "model.onnx")


def test_bad_files_get_clear_errors(sam_files: dict[str, Path], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(np.random.default_rng(1).bytes(5000))
    truncated = tmp_path / "truncated.pth"
    data = sam_files["pth"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    for bad in (garbage, truncated):
        with pytest.raises(PromptableModelError, match="cannot be read as a PyTorch checkpoint") as err:
            load_promptable(bad)
        assert err.value.path == bad and "Fix:" in str(err.value) and "downloads nothing" in str(err.value)
    other = tmp_path / "unet.pth"
    torch.save(torch.nn.Conv2d(3, 4, 3).state_dict(), other)
    with pytest.raises(PromptableModelError, match="not a SAM one"):
        load_promptable(other)
    wrong = tmp_path / "wrong.pth"
    state = torch.load(sam_files["pth"], weights_only=True)
    state["mask_decoder.iou_token.weight"] = torch.zeros(2, 7)
    torch.save(state, wrong)
    with pytest.raises(PromptableModelError, match="does not fit"):
        load_promptable(wrong)
    with pytest.raises(PromptableModelError, match="no promptable model"):
        load_promptable(tmp_path / "missing.pth")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x_encoder.onnx").write_bytes(b"not onnx")
    (broken / "x_decoder.onnx").write_bytes(b"not onnx")
    with pytest.raises(PromptableModelError, match="cannot be opened by onnxruntime"):
        load_promptable(broken)


def test_without_segment_anything_the_error_names_the_fix(sam_files: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "segment_anything", None)
    with pytest.raises(PromptableModelError, match=r"pip install segstudio\[sam\]"):
        load_promptable(sam_files["pth"])


def test_a_missing_gpu_falls_back_to_the_cpu(sam_files: dict[str, Path]) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    assert load_promptable(sam_files["pth"], device="cuda").device == "cpu"


class _Blob:
    def __init__(self, mb: float) -> None:
        self.nbytes = int(mb * 2**20)


def test_embedding_cache_lru_bounds_and_digest_rule(image: np.ndarray) -> None:
    cache = EmbeddingCache(max_items=3, max_mb=10)
    keys = [embedding_key(model="m.pth", sample_id=f"s{i}", pixels=image) for i in range(5)]
    assert cache.get(keys[0]) is None
    for k in keys[:3]:
        cache.put(k, _Blob(2))
    assert cache.get(keys[0]) is not None  # now the most recent
    cache.put(keys[3], _Blob(2))  # count bound: the least recent (s1) goes
    assert keys[1] not in cache and keys[0] in cache and len(cache) == 3
    cache.put(keys[4], _Blob(7))  # byte bound: 2 + 2 + 7 > 10, so the least recent go until it fits
    st = cache.stats
    assert keys[4] in cache and st.bytes <= 10 * 2**20 and st.evictions == 3
    assert (st.hits, st.misses) == (1, 1)
    cache.put(embedding_key(model="m.pth", sample_id="huge", pixels=image), _Blob(11))  # larger than the bound
    assert len(cache) == 2
    cache.drop_model("m.pth")
    assert len(cache) == 0 and cache.stats.bytes == 0
    # the key: same pixels, same key; a changed pixel (an edit, another window/level) or another sample: another
    windowed = image.copy()
    windowed[0, 0, 0] ^= 1
    k = embedding_key(model="m", sample_id="a", pixels=image)
    assert k == embedding_key(model="m", sample_id="a", pixels=image.copy())
    assert k != embedding_key(model="m", sample_id="a", pixels=windowed)
    assert k != embedding_key(model="m", sample_id="b", pixels=image)
    assert k != embedding_key(model="n", sample_id="a", pixels=image)
    assert pixel_digest(image) != pixel_digest(image[..., 0])  # shape counts
    with pytest.raises(ValueError):
        EmbeddingCache(max_items=0)


def test_embedding_cache_is_thread_safe() -> None:
    cache = EmbeddingCache(max_items=50, max_mb=1000)
    pixels = np.zeros((4, 4), np.uint8)

    def work(t: int) -> None:
        for i in range(300):
            k = embedding_key(model="m", sample_id=f"{t}-{i % 80}", pixels=pixels)
            cache.put(k, _Blob(1))
            cache.get(k)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    st = cache.stats
    assert st.items == len(cache) <= 50 and st.bytes == st.items * 2**20
