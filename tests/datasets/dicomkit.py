"""Writing real-looking DICOM files for tests: Montgomery chest X-ray pixels in a pydicom-built file, with the
header (window, rescale, photometric, spacing) each test needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset as DicomDataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def montgomery_pixels(montgomery: Path, index: int = 0) -> tuple[str, np.ndarray]:
    """``(stem, (H, W) uint8)`` of the index-th Montgomery X-ray."""
    path = sorted((montgomery / "cxr").glob("*.png"))[index]
    return path.stem, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


def write_dicom(path: Path, pixels: np.ndarray, *, modality: str = "CR", photometric: str = "MONOCHROME2",
                **tags: Any) -> Path:
    """A DICOM file of ``pixels`` (uint8/uint16/int16), with the extra header ``tags`` (pydicom keywords)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = DicomDataset()
    ds.file_meta = meta
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = tags.pop("BitsStored", ds.BitsAllocated)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    assert pydicom.dcmread(path).pixel_array.shape == pixels.shape
    return path


def voi_linear(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 (VOI LINEAR) to 0..255, written out piecewise as the standard does, truncated."""
    x = x.astype(np.float64)
    lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    y = np.where(x <= lo, 0.0,
                 np.where(x > hi, 255.0, ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0))
    return np.floor(y).astype(np.uint8)


def min_max(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.floor((x - x.min()) / (x.max() - x.min()) * 255.0).astype(np.uint8)
