"""Image reading and writing with the organizers' semantics: OpenCV read, 8-bit RGB, alpha dropped."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from harness.core.errors import EvaluationError
from harness.core.files import write_bytes_atomic


def read_rgb8(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB. 16-bit samples are reduced as OpenCV does (high byte); alpha is dropped."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EvaluationError(f"{path}: cannot be read as an image",
                              hint="the file is missing, truncated or not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_png(rgb: np.ndarray) -> bytes:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8, got {rgb.dtype} {rgb.shape}")
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                              [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise EvaluationError("PNG encoding failed")
    return buffer.tobytes()


def write_rgb8(path: Path, rgb: np.ndarray) -> None:
    write_bytes_atomic(path, encode_png(rgb))
