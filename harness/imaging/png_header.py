"""What a PNG says about itself (its signature and IHDR), read without decoding it."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

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
