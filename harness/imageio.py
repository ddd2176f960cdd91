"""Image reading and writing with the organizers' semantics: OpenCV read, 8-bit RGB, alpha dropped."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import EvaluationError
from .fsutil import write_bytes_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOR_TYPES = {0: "gray", 2: "rgb", 3: "palette", 4: "gray+alpha", 6: "rgba"}


@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    bit_depth: int
    color: str

    @property
    def is_plain_rgb8(self) -> bool:
        return self.bit_depth == 8 and self.color == "rgb"


def read_png_header(path: Path) -> PngHeader | None:
    """The IHDR fields of a PNG, or None when the file is not a readable PNG."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(33)
    except OSError:
        return None
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, depth, color = struct.unpack(">IIBB", head[16:26])
    return PngHeader(width, height, depth, PNG_COLOR_TYPES.get(color, f"type {color}"))


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
