"""Attack suite for the dataset readers (issue 13): every parser, through the public API.

Each input is written to a fresh folder and opened with ``segstudio.datasets.open_dataset``; then every sample's
image and GT is loaded. All of it runs inside ``fuzzkit.bounded``: the open must return or raise our error, each
load must return or raise our error, within the time and memory bounds. A ``ReaderFailedError`` (the safety net
that turns a reader's stray exception into our error) fails the test: it means a reader let something through.
Every problem reported must be printable and storable as UTF-8.

Inputs are valid fixtures mutated (hypothesis): JSON values replaced by wrong types, NaN / Infinity / 1e999,
huge or negative numbers, deep nesting, traversal strings, keys added or deleted, text truncated; text files
(class lists, colour tables, image lists) with hostile lines and bytes; image, mask and DICOM files truncated,
bit-flipped, or with headers declaring huge sizes (decompression bombs). Figures: ``fuzz.<parser>.inputs``.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from segstudio.core.errors import DatasetError
from segstudio.core.geometry import mask_to_rle
from segstudio.datasets import open_dataset
from segstudio.datasets.io import ReaderFailedError

from .conftest import FUZZ_EXAMPLES
from .fuzzkit import bounded, mutated_json

SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,  # hermetic: no .hypothesis folder in the checkout
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large,
                           HealthCheck.large_base_example, HealthCheck.filter_too_much],
)

#: Pixel limit of the fuzzed opens: the guard is the same code at any limit, and a lying header then costs at
#: most 4 Mpx of decoder memory (PIL allocates outside the traced Python heap).
MAX_PIXELS = 2048 * 2048

_COUNTS: dict[str, int] = {}


# --- the harness ------------------------------------------------------------------------------------------------


def _open_and_load(root: Path, fmt: str | None, options: dict[str, Any]) -> None:
    try:
        ds = open_dataset(root, format=fmt, max_pixels=MAX_PIXELS, **options)
    except ReaderFailedError as e:
        raise AssertionError(f"a reader let a raw exception through while opening: {e}") from e
    for s in ds.samples[:6]:
        for load in (ds.load_image, ds.load_gt):
            try:
                load(s)
            except ReaderFailedError as e:
                raise AssertionError(f"a reader let a raw exception through: {e}") from e
            except DatasetError:
                pass  # named, the next sample still loads
    for p in ds.all_problems():
        str(p).encode("utf-8")
        json.dumps(p.to_dict()).encode("utf-8")
    for s in ds.samples:
        s.id.encode("utf-8")


def attempt(parser: str, build: Callable[[Path], Path], *, fmt: str | None, what: str, **options: Any) -> None:
    """Build one hostile dataset in a fresh folder and open/load it inside the bounds."""
    _COUNTS[parser] = _COUNTS.get(parser, 0) + 1
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{parser}-") as tmp:
        root = build(Path(tmp))
        bounded(lambda: _open_and_load(root, fmt, options), what=f"{parser}: {what[:300]}", seconds=10.0)


# --- hostile JSON -----------------------------------------------------------------------------------------------

FRAGMENTS = [
    "NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-400", "-0.0", "0", "-1", "-2147483649", "1e9",
    "1000000000", "2147483648", "18446744073709551617", "1" + "0" * 5000, "3.5", "true", "false", "null", "[]",
    "{}", "[1, 2, 3]", "[[[]]]", '"1e999"', '"nan"', '"-1"', '""', '"../../x.png"', '"/etc/passwd"',
    '"..\\\\..\\\\x"', '"\\u0000"', '"\\ud800"', '"\\udcff.png"', '"' + "a" * 100_000 + '"',
    "[" * 100_000 + "]" * 100_000, '{"a":' * 20_000 + "1" + "}" * 20_000, "[" * 900 + "]" * 900,
    "[" + ",".join(["1e9"] * 2000) + "]", "[[0, 0, 1e9, 0, 1e9, 1e9, 0, 1e9]]", "[[0, 0, 1e8, 0, 0, 1e8]]",
    '{"size": [10, 12], "counts": "' + "o" * 40 + '0"}', '{"size": [10, 12], "counts": [0, 18446744073709551617]}',
    '{"size": [1e999, 12], "counts": "0"}', '{"size": [100000, 100000], "counts": [10000000000]}',
    '{"size": [10, 12], "counts": [-5, 125]}', '[[0, 0], [1e9, 0], [1e9, 1e9]]', '[["x", 1], [2, 2], [3, 0]]',
]
KEYS = ["x", "id", "image_id", "category_id", "segmentation", "height", "width", "file_name", "points", "label",
        "shape_type", "imagePath", "classes", "images", "annotations", "", "__proto__", "\u0000", "a" * 300]


@st.composite
def _fragment(draw: Any) -> str:
    return draw(st.one_of(
        st.sampled_from(FRAGMENTS),
        st.integers(min_value=-(2**80), max_value=2**80).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
        st.text(max_size=24).map(lambda t: json.dumps(t, ensure_ascii=True)),
        st.integers(min_value=1, max_value=200_000).map(lambda d: "[" * d + "]" * d),
        st.lists(st.floats(min_value=-1e12, max_value=1e12), max_size=16).map(json.dumps),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
            lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(KEYS), kids, max_size=4),
            max_leaves=12,
        ).map(lambda v: json.dumps(v, allow_nan=True)),
    ))


def mutated(base: Any) -> st.SearchStrategy[str]:
    return mutated_json(base, fragment=_fragment, keys=KEYS)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8", "surrogatepass"))


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


_IMG = np.arange(120, dtype=np.uint8).reshape(10, 12)


# --- COCO ---------------------------------------------------------------------------------------------------------

_COCO = {
    "images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 12},
               {"id": 2, "file_name": "b.png", "height": 10, "width": 12}],
    "categories": [{"id": 1, "name": "wall"}, {"id": 7, "name": "window"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 9, 1, 9, 8, 1, 8]], "area": 56},
        {"id": 2, "image_id": 1, "category_id": 7, "segmentation": {"size": [10, 12], "counts": [30, 5, 85]}},
        {"id": 3, "image_id": 2, "category_id": 7, "segmentation": mask_to_rle(_IMG > 90), "iscrowd": 1},
    ],
}


def _coco_builder(text: str) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        _png(tmp / "a.png", _IMG)
        _png(tmp / "b.png", _IMG)
        _write_text(tmp / "_annotations.coco.json", text)
        return tmp

    return build


@SETTINGS
@given(text=mutated(_COCO), overlap=st.sampled_from(["last", "smallest", "multilabel"]))
@example(text=json.dumps(_COCO).replace("[[1, 1, 9, 1, 9, 8, 1, 8]]", "[[0, 0, 1e9, 0, 1e9, 1e9, 0, 1e9]]"),
         overlap="last")  # case 1: pycocotools segfaulted
@example(text=json.dumps(_COCO).replace(mask_to_rle(_IMG > 90)["counts"], "o" * 40 + "0"), overlap="last")  # overflow
@example(text='{"images": [], "annotations": ' + "[" * 100_000 + "]" * 100_000 + "}", overlap="last")
@example(text=json.dumps(_COCO).replace('"height": 10', '"height": 1e999'), overlap="last")
@example(text=json.dumps(_COCO).replace('"image_id": 1', '"image_id": [1]'), overlap="smallest")
def test_fuzz_coco(text: str, overlap: str) -> None:
    attempt("coco", _coco_builder(text), fmt="coco", what=text, overlap=overlap)


# --- labelme and hand-bone -----------------------------------------------------------------------------------------

_LABELME = {
    "version": "5.0.1",
    "imagePath": "x.png",
    "shapes": [
        {"label": "lung", "points": [[1, 1], [9, 1], [9, 8], [1, 8]], "shape_type": "polygon"},
        {"label": "heart", "points": [[2, 2], [6, 6]], "shape_type": "rectangle"},
        {"label": "heart", "points": [[5, 5], [7, 7]], "shape_type": "circle"},
        {"label": "lung", "points": [[3, 3]], "shape_type": "point"},
    ],
}


@SETTINGS
@given(text=mutated(_LABELME), labels=st.sampled_from([None, "__ignore__\n_background_\nlung\nheart\n"]),
       multilabel=st.booleans())
@example(text=json.dumps(_LABELME).replace("[9, 1]", "[1e9, 1]"), labels=None, multilabel=False)
def test_fuzz_labelme(text: str, labels: str | None, multilabel: bool) -> None:
    def build(tmp: Path) -> Path:
        _png(tmp / "x.png", _IMG)
        _png(tmp / "y.png", _IMG)
        _write_text(tmp / "x.json", text)
        _write_text(tmp / "y.json", json.dumps(_LABELME).replace("x.png", "y.png"))
        if labels:
            _write_text(tmp / "labels.txt", labels)
        return tmp

    attempt("labelme", build, fmt="labelme", what=text, multilabel=multilabel)


_HAND = {"annotations": [
    {"id": "a", "type": "poly_seg", "label": "Radius", "points": [[1, 1], [9, 1], [9, 8], [1, 8]]},
    {"id": "b", "type": "poly_seg", "label": "finger-1", "points": [[2, 2], [6, 2], [6, 6]]},
]}


@SETTINGS
@given(text=mutated(_HAND))
@example(text=json.dumps(_HAND).replace("[9, 8]", "[1e9, 1e9]"))
def test_fuzz_hand_bone(text: str) -> None:
    def build(tmp: Path) -> Path:
        _png(tmp / "DCM" / "ID001" / "x.png", _IMG)
        _write_text(tmp / "outputs_json" / "ID001" / "x.json", text)
        return tmp

    attempt("hand_bone", build, fmt="hand-bone", what=text)


# --- text files: class lists, CamVid colour tables, VOC image lists --------------------------------------------------

_LINE_PARTS = ["0", "255", "256", "-1", "1e999", "NaN", "99999999999999999999", "64 128 64", "Void", "Sky",
               "a,b,c,d", '"', ",", "\t", "../../x", "/SegNet/CamVid/train/a.png", "\x00", "\udcff", "é",
               "x" * 2000, "name,r,g,b", "Animal,64,128,64"]


@st.composite
def hostile_text(draw: Any, base: str) -> bytes:
    """``base`` with lines replaced, added or removed; sometimes raw bytes, a huge line, or truncated."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.binary(max_size=300))
    lines = base.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        parts = draw(st.lists(st.sampled_from(_LINE_PARTS) | st.text(max_size=12), min_size=0, max_size=5))
        sep = draw(st.sampled_from([" ", "\t", ",", ""]))
        pos = draw(st.integers(0, len(lines)))
        if draw(st.booleans()) and lines:
            lines[min(pos, len(lines) - 1)] = sep.join(parts)
        else:
            lines.insert(pos, sep.join(parts))
    if choice == 1:
        lines.append("x" * draw(st.integers(10_000, 200_000)))
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if choice == 2:
        data = data[: draw(st.integers(0, len(data)))]
    if choice == 3:
        data += b"\xff\xfe\x00"
    return data


_LABEL_COLORS = "64 128 64\tAnimal\n192 0 128\tArchway\n0 128 192\tBicyclist\n0 0 0\tVoid\n"
_CLASS_DICT = "name,r,g,b\nAnimal,64,128,64\nArchway,192,0,128\nBicyclist,0,128,192\nVoid,0,0,0\n"


@SETTINGS
@given(data=st.data(), csv=st.booleans())
@example(data=None, csv=False)
def test_fuzz_camvid_colour_files(data: Any, csv: bool) -> None:
    base = _CLASS_DICT if csv else _LABEL_COLORS
    content = data.draw(hostile_text(base)) if data is not None else b"300 0 0\tHot\n"

    def build(tmp: Path) -> Path:
        rgb = np.zeros((10, 12, 3), np.uint8)
        rgb[:5] = (64, 128, 64)
        rgb[5:, :3] = (1, 2, 3)  # a colour no class has
        _png(tmp / "f1.png", np.stack([_IMG] * 3, -1))
        _png(tmp / "f1_L.png", rgb)
        (tmp / ("class_dict.csv" if csv else "label_colors.txt")).write_bytes(content)
        return tmp

    attempt("camvid_colours", build, fmt="camvid-rgb", what=repr(content[:300]))


_SEGNET_LIST = "/SegNet/CamVid/train/a.png /SegNet/CamVid/trainannot/a.png\n"


@SETTINGS
@given(lst=hostile_text(_SEGNET_LIST), labels=hostile_text("Sky\nBuilding\nVoid\n"))
@example(lst=_SEGNET_LIST.encode() + b"x" * 5000, labels=b"Sky\n")  # a name too long: is_file() raised
def test_fuzz_camvid_segnet_lists(lst: bytes, labels: bytes) -> None:
    def build(tmp: Path) -> Path:
        _png(tmp / "train" / "a.png", _IMG)
        _png(tmp / "trainannot" / "a.png", (_IMG % 3).astype(np.uint8))
        (tmp / "train.txt").write_bytes(lst)
        (tmp / "labels.txt").write_bytes(labels)
        return tmp

    attempt("camvid_lists", build, fmt="camvid-segnet", what=repr(lst[:200]) + repr(labels[:100]))


@SETTINGS
@given(lst=hostile_text("a\nb\n"), labels=st.none() | hostile_text("background\ncat\n"))
def test_fuzz_voc_lists(lst: bytes, labels: bytes | None) -> None:
    def build(tmp: Path) -> Path:
        for stem in ("a", "b"):
            _png(tmp / "JPEGImages" / f"{stem}.png", _IMG)
            m = Image.fromarray((_IMG % 2).astype(np.uint8), mode="L").convert("P")
            (tmp / "SegmentationClass").mkdir(exist_ok=True)
            m.save(tmp / "SegmentationClass" / f"{stem}.png")
        (tmp / "ImageSets" / "Segmentation").mkdir(parents=True)
        (tmp / "ImageSets" / "Segmentation" / "train.txt").write_bytes(lst)
        if labels is not None:
            (tmp / "labels.txt").write_bytes(labels)
        return tmp

    attempt("voc_lists", build, fmt="voc", what=repr(lst[:300]))


_CLASSES_JSON = {"classes": [{"id": 0, "name": "background", "colour": [0, 0, 0]},
                             {"id": 1, "name": "lesion", "colour": [255, 0, 0]},
                             {"id": 2, "name": "halo", "colour": [0, 255, 0], "ignore": False}],
                 "ignore_index": 255, "multilabel": False}
_CLASS_FOLDERS_JSON = {"images": "cxr", "multilabel": False, "classes": [
    {"name": "left lung", "folder": "leftMask", "colour": [255, 0, 0]},
    {"name": "right lung", "folder": "rightMask", "colour": [0, 0, 255]}]}


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(["classes.json", "labels.txt", "class-folders classes.json"]))
def test_fuzz_class_files(data: Any, kind: str) -> None:
    if kind == "labels.txt":
        content = data.draw(hostile_text("background\nlesion\nhalo\n"))
    else:
        content = data.draw(mutated(_CLASS_FOLDERS_JSON if kind.startswith("class-") else _CLASSES_JSON)).encode(
            "utf-8", "surrogatepass")

    def build(tmp: Path) -> Path:
        m = np.zeros((10, 12), np.uint8)
        m[:4] = 1
        m[8:, :2] = 2
        if kind.startswith("class-"):
            for folder in ("cxr", "leftMask", "rightMask"):
                _png(tmp / folder / "a.png", _IMG if folder == "cxr" else m * 120)
            (tmp / "classes.json").write_bytes(content)
        else:
            _png(tmp / "images" / "a.png", _IMG)
            _png(tmp / "masks" / "a.png", m)
            (tmp / kind).write_bytes(content)
        return tmp

    fmt = "class-folders" if kind.startswith("class-") else "paired-folders"
    attempt("class_files", build, fmt=fmt, what=repr(content[:300]))


# --- image and mask files -----------------------------------------------------------------------------------------


def _encoded(fmt: str, arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _lying_png(width: int, height: int, *, depth: int = 8, colour: int = 0) -> bytes:
    """A PNG whose header declares ``width x height`` over a few bytes of data (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


_IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp"}
_SIZES = [0, 1, 7, 65535, 65536, 100_000, 2**31 - 1, 2**32 - 1]


@st.composite
def hostile_image(draw: Any, *, mask: bool) -> tuple[str, bytes]:
    """``(suffix, bytes)``: a valid small image mutated, a lying header, or random bytes."""
    fmt = draw(st.sampled_from(sorted(_IMAGE_FORMATS)))
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return _IMAGE_FORMATS[fmt], draw(st.binary(max_size=400))
    if kind == 1:
        w, h = draw(st.sampled_from(_SIZES)), draw(st.sampled_from(_SIZES))
        return ".png", _lying_png(w, h, depth=draw(st.sampled_from([1, 8, 16])), colour=draw(st.sampled_from([0, 2])))
    if mask:
        dtype = np.uint16 if fmt in ("PNG", "TIFF") and draw(st.booleans()) else np.uint8
        values = draw(st.lists(st.sampled_from([0, 1, 2, 3, 127, 128, 255, 256, 1000, 65535]), min_size=1, max_size=4))
        vals = np.array([v for v in values if v <= np.iinfo(dtype).max] or [0], dtype)
        arr = vals[np.arange(120).reshape(10, 12) % len(vals)]
        if fmt in ("JPEG", "BMP"):
            arr = arr.astype(np.uint8)
    else:
        arr = _IMG if draw(st.booleans()) else np.stack([_IMG] * 3, -1)
    data = bytearray(_encoded(fmt, arr))
    for _ in range(draw(st.integers(0 if kind > 4 else 1, 4))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if kind in (2, 3):
        data = data[: draw(st.integers(0, len(data)))]
    if kind == 4 and fmt == "BMP" and len(data) > 26:  # BMP width/height fields
        data[18:26] = struct.pack("<ii", draw(st.sampled_from([-1, 0, 2**31 - 1, 70000])),
                                  draw(st.sampled_from([-(2**31), -1, 0, 2**31 - 1, 70000])))
    return _IMAGE_FORMATS[fmt], bytes(data)


#: A 12x10 PNG whose IDAT chunk claims 512 MiB: PIL read(declared length) while skipping it (found by this suite).
_LYING_CHUNK = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x0c\x00\x00\x00\n\x08\x00\x00\x00\x00\xa5G\xe0&"
                b" \x00\x00\x0cIDATx\x9cc`\x18h\x00\x00\x00\x82\x00\x01_\xf5\x9b%\x00\x00\x00\x00IEND\xaeB`\x82")


@SETTINGS
@given(img=hostile_image(mask=False))
@example(img=(".png", _lying_png(100_000, 100_000)))  # a decompression bomb's header
@example(img=(".png", _LYING_CHUNK))
@example(img=(".tif", b""))  # OpenCV asserted on an empty TIFF
def test_fuzz_image_files(img: tuple[str, bytes]) -> None:
    suffix, data = img

    def build(tmp: Path) -> Path:
        (tmp / f"x{suffix}").write_bytes(data)
        _png(tmp / "ok.png", _IMG)
        return tmp

    attempt("images", build, fmt="image-folder", what=f"{suffix} {data[:120]!r}")


@SETTINGS
@given(mask=hostile_image(mask=True), others=st.sampled_from(["0/1", "0/255", "none"]))
@example(mask=(".png", _LYING_CHUNK), others="0/1")
def test_fuzz_mask_files(mask: tuple[str, bytes], others: str) -> None:
    suffix, data = mask

    def build(tmp: Path) -> Path:
        _png(tmp / "images" / "x.png", _IMG)
        (tmp / "masks").mkdir()
        (tmp / "masks" / f"x{suffix}").write_bytes(data)
        if others != "none":
            _png(tmp / "images" / "y.png", _IMG)
            _png(tmp / "masks" / "y.png", ((_IMG > 60) * (1 if others == "0/1" else 255)).astype(np.uint8))
        return tmp

    attempt("masks", build, fmt="paired-folders", what=f"{suffix} {data[:120]!r}")


# --- DICOM headers --------------------------------------------------------------------------------------------------


def _dicom_bytes() -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["segstudio-fuzz"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.Rows, ds.Columns = 10, 12
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = (np.arange(120, dtype=np.int16) - 60).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


_DICOM = _dicom_bytes()
#: (tag group, element, VR) of the header fields a lie is planted in; values are written raw (explicit VR LE).
_DICOM_TAGS = {"Rows": (0x0028, 0x0010), "Columns": (0x0028, 0x0011), "BitsAllocated": (0x0028, 0x0100),
               "PixelRepresentation": (0x0028, 0x0103), "SamplesPerPixel": (0x0028, 0x0002)}


@st.composite
def hostile_dicom(draw: Any) -> bytes:
    data = bytearray(_DICOM)
    kind = draw(st.integers(0, 5))
    if kind == 0:  # a lying US value in a known tag
        group, elem = _DICOM_TAGS[draw(st.sampled_from(sorted(_DICOM_TAGS)))]
        tag = struct.pack("<HH", group, elem) + b"US"
        pos = bytes(data).find(tag)
        if pos >= 0:
            data[pos + 8 : pos + 10] = struct.pack("<H", draw(st.sampled_from([0, 1, 3, 7, 255, 65535])))
        return bytes(data)
    if kind == 1:  # a lying element length
        pos = draw(st.integers(132, len(data) - 8))
        data[pos : pos + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 0xFFFFFFFF, 2**31, 7])))
        return bytes(data)
    if kind == 2:
        return bytes(data[: draw(st.integers(0, len(data)))])
    if kind == 3:
        return bytes(data[:132]) + draw(st.binary(max_size=300))
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(128, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    return bytes(data)


@SETTINGS
@given(dcm=hostile_dicom())
@example(dcm=_DICOM[:132] + b"\x00" * 7 + b" ")  # an element declaring 512 MiB: pydicom reserved it
def test_fuzz_dicom_headers(dcm: bytes) -> None:
    def build(tmp: Path) -> Path:
        (tmp / "a.dcm").write_bytes(dcm)
        (tmp / "b.dcm").write_bytes(_DICOM)
        return tmp

    attempt("dicom", build, fmt="dicom", what=repr(dcm[128:260]))


def test_dicom_fixture_is_valid(tmp_path: Path) -> None:
    """The unmutated fixture opens and loads: the fuzzing starts from a file the reader accepts."""
    (tmp_path / "a.dcm").write_bytes(_DICOM)
    ds = open_dataset(tmp_path, format="dicom")
    assert ds.load_image(ds[0]).shape == (10, 12)


@pytest.mark.parametrize("parser", ["coco", "labelme", "hand-bone"])
def test_json_fixtures_are_valid(tmp_path: Path, parser: str) -> None:
    """The unmutated JSON fixtures open and draw: the mutations start from documents the readers accept."""
    if parser == "coco":
        root = _coco_builder(json.dumps(_COCO))(tmp_path)
    elif parser == "labelme":
        _png(tmp_path / "x.png", _IMG)
        _write_text(tmp_path / "x.json", json.dumps(_LABELME))
        root = tmp_path
    else:
        _png(tmp_path / "DCM" / "ID001" / "x.png", _IMG)
        _write_text(tmp_path / "outputs_json" / "ID001" / "x.json", json.dumps(_HAND))
        root = tmp_path
    ds = open_dataset(root, format=parser)
    assert all(ds.load_gt(s).any() for s in ds)


def test_zz_record_figures(figures: Any) -> None:
    for parser, n in sorted(_COUNTS.items()):
        figures.add(f"fuzz.{parser}.inputs", n)
    assert _COUNTS, "the fuzz tests above ran no input"  # runs last: pytest keeps the file's order
