"""Datasets: where their images come from, how they are built, and their checksums.

Layout of a dataset on disk (under data/<id>/): HR/<stem>.png, LR/<stem>x4.png, checksums.json.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ChecksumMismatch, DatasetError
from .fsutil import replace_dir, sha256_file, write_bytes_atomic, write_json_atomic
from .imageio import encode_png
from .imresize import imresize

SCALE = 4
CHECKSUMS = "checksums.json"
MINI_CHECKSUMS = Path(__file__).with_name("mini_checksums.json")

# (stem, scikit-image loader, top, left, height, width): real photographs shipped in the wheel,
# each cropped to a region whose sides are multiples of 4.
MINI_SOURCES = [
    ("0001", "astronaut", 16, 96, 320, 320),
    ("0002", "coffee", 40, 140, 320, 320),
    ("0003", "chelsea", 0, 60, 300, 320),
    ("0004", "rocket", 40, 160, 320, 320),
    ("0005", "hubble_deep_field", 276, 340, 320, 320),
    ("0006", "immunohistochemistry", 96, 96, 320, 320),
]


@dataclass(frozen=True)
class Dataset:
    id: str
    title: str
    description: str
    build: Callable[[Path], None]

    def root(self, data_dir: Path) -> Path:
        return Path(data_dir) / self.id

    def hr_dir(self, data_dir: Path) -> Path:
        return self.root(data_dir) / "HR"

    def lr_dir(self, data_dir: Path) -> Path:
        return self.root(data_dir) / "LR"


def lr_name(stem: str) -> str:
    return f"{stem}x{SCALE}.png"


def mini_images() -> dict[str, np.ndarray]:
    import skimage.data

    images = {}
    for stem, loader, top, left, height, width in MINI_SOURCES:
        full = getattr(skimage.data, loader)()
        crop = np.ascontiguousarray(full[top:top + height, left:left + width, :3])
        if crop.shape != (height, width, 3) or height % SCALE or width % SCALE:
            raise DatasetError(f"mini: {loader} gives a {crop.shape} crop, expected {(height, width, 3)}")
        images[stem] = crop
    return images


def build_mini(target: Path) -> None:
    """Write HR and MATLAB-bicubic LR PNGs for the embedded dataset into target."""
    for stem, hr in mini_images().items():
        write_bytes_atomic(target / "HR" / f"{stem}.png", encode_png(hr))
        write_bytes_atomic(target / "LR" / lr_name(stem), encode_png(imresize(hr, 1 / SCALE)))


DATASETS: dict[str, Dataset] = {
    "mini": Dataset("mini", "Embedded mini suite",
                    f"{len(MINI_SOURCES)} real photographs from scikit-image, LR by MATLAB-compatible bicubic x4",
                    build_mini),
}


def get(dataset_id: str) -> Dataset:
    if dataset_id not in DATASETS:
        import difflib

        close = difflib.get_close_matches(dataset_id, list(DATASETS), n=1)
        raise DatasetError(f"unknown dataset '{dataset_id}'",
                           hint=f"did you mean '{close[0]}'?" if close else f"known: {', '.join(DATASETS)}")
    return DATASETS[dataset_id]


def file_checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p)
            for p in sorted(root.rglob("*.png"))}


def recorded_checksums(dataset_id: str) -> dict[str, str] | None:
    if dataset_id == "mini" and MINI_CHECKSUMS.exists():
        return json.loads(MINI_CHECKSUMS.read_text())
    return None


def fetch(dataset_id: str, data_dir: Path) -> Path:
    """Build or fetch a dataset into data_dir/<id>, verified against its recorded checksums."""
    dataset = get(dataset_id)
    root = dataset.root(data_dir)
    expected = recorded_checksums(dataset_id)
    if root.is_dir() and (root / CHECKSUMS).exists():
        verify(dataset_id, data_dir)
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{dataset_id}."))
    try:
        dataset.build(staging)
        actual = file_checksums(staging)
        if expected is not None:
            _compare(dataset_id, expected, actual)
        write_json_atomic(staging / CHECKSUMS, actual)
        replace_dir(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def verify(dataset_id: str, data_dir: Path) -> dict[str, str]:
    """Check the files on disk against checksums.json (and the recorded ones); return them."""
    root = get(dataset_id).root(data_dir)
    listed_path = root / CHECKSUMS
    if not listed_path.exists():
        raise DatasetError(f"dataset '{dataset_id}' is not in {root}",
                           hint=f"run `harness fetch data {dataset_id}`")
    listed = json.loads(listed_path.read_text())
    _compare(dataset_id, listed, file_checksums(root))
    expected = recorded_checksums(dataset_id)
    if expected is not None:
        _compare(dataset_id, expected, listed)
    return listed


def _compare(dataset_id: str, expected: dict[str, str], actual: dict[str, str]) -> None:
    problems = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            problems.append(f"{name}: missing")
        elif name not in expected:
            problems.append(f"{name}: not part of the dataset")
        elif expected[name] != actual[name]:
            problems.append(f"{name}: sha256 {actual[name][:12]}… differs from the recorded {expected[name][:12]}…")
    if problems:
        raise ChecksumMismatch(f"dataset '{dataset_id}' does not match its checksums:\n  " + "\n  ".join(problems),
                               hint=f"remove data/{dataset_id} and run `harness fetch data {dataset_id}` again")
