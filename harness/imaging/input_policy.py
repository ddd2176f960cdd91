"""The input policy: what the harness accepts from folders other people made (outputs, imports).

- regular files only; a link is followed only when it stays inside the folder given;
- names that would collide on a case-insensitive file system are refused;
- an image's real format is read from its first bytes, not from its name;
- an image's declared size is checked against a limit before any pixel is decoded.

Each refusal names the file and the rule.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import InputRefused

DEFAULT_MAX_MEGAPIXELS = 50  # a 4K image enlarged x4 is 133 MP; a 2K one 45 MP (settings: max_image_megapixels)

SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP",
              b"RIFF": "WEBP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


@dataclass(frozen=True)
class ImageFacts:
    format: str | None  # PNG, JPEG, ... or None when unknown
    width: int | None
    height: int | None


def files_in(folder: Path, pattern: str, label: str) -> list[Path]:
    """The files of `folder` matching `pattern`, sorted, under the policy (links, kinds, case)."""
    folder = Path(folder)
    inside = folder.resolve()
    chosen: list[Path] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob(pattern)):
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(inside):
                raise InputRefused(f"{label}: {path.name} is a link to {target}, outside {folder}",
                                   rule="links must stay inside the folder given")
            if not target.is_file():
                raise InputRefused(f"{label}: {path.name} is a link to nothing readable",
                                   rule="regular files only")
        elif not path.is_file():
            raise InputRefused(f"{label}: {path.name} is {'a folder' if path.is_dir() else 'not a regular file'}",
                               rule="regular files only")
        folded = path.name.casefold()
        if folded in seen:
            raise InputRefused(f"{label}: {seen[folded]} and {path.name} differ only in case",
                               rule="names must differ on a case-insensitive file system")
        seen[folded] = path.name
        chosen.append(path)
    return chosen


def image_facts(path: Path) -> ImageFacts:
    """The format from the first bytes and, for a PNG, the size its header declares."""
    with open(path, "rb") as handle:
        head = handle.read(33)
    kind = next((name for magic, name in SIGNATURES.items() if head.startswith(magic)), None)
    if kind == "PNG" and len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return ImageFacts(kind, width, height)
    return ImageFacts(kind, None, None)


def check_size(path: Path, facts: ImageFacts, max_megapixels: float, label: str) -> None:
    """Refuses an image whose declared size is past the limit, before it is decoded."""
    if facts.width is None or facts.height is None:
        return
    pixels = facts.width * facts.height
    if pixels > max_megapixels * 1e6:
        raise InputRefused(f"{label}: {path.name} declares {facts.width}x{facts.height} pixels "
                           f"({pixels / 1e6:.0f} MP), past the limit of {max_megapixels:g} MP",
                           rule="image size limit (max_image_megapixels in params.yaml raises it)")
