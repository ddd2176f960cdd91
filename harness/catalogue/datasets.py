"""Datasets: where their images come from, how they are built, and their checksums.

Layout of a dataset on disk (under data/<id>/): HR/<stem>.png, LR/<stem>x4.png, checksums.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import DatasetError, ManifestError
from harness.core.files import sha256_file, write_bytes_atomic

if TYPE_CHECKING:
    import numpy as np

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
    build: Callable[[Path], None] | None = None  # None: the images are imported by the user
    stems: tuple[str, ...] = ()  # expected image stems, when known
    hr_origin: str = ""  # where the HR images come from, for people
    archives: tuple[tuple[str, str], ...] = ()  # (HR|LR, archive file name under the download URL)
    url_variable: str = ""  # environment variable that replaces the download URL (mirrors, tests)
    default_url: str = ""

    @property
    def url(self) -> str:
        return os.environ.get(self.url_variable, self.default_url).rstrip("/")

    def root(self, data_dir: Path) -> Path:
        return Path(data_dir) / self.id

    def hr_dir(self, data_dir: Path) -> Path:
        return self.root(data_dir) / "HR"

    def lr_dir(self, data_dir: Path) -> Path:
        return self.root(data_dir) / "LR"

    def __str__(self) -> str:  # the id, where a message or a path names the dataset
        return self.id

    def ground_truth(self, data_dir: Path) -> Path:
        """The HR folder, or an error saying where the HR images come from and what to do."""
        folder = self.hr_dir(data_dir)
        if not any(folder.glob("*.png")):
            origin = self.hr_origin or f"`harness fetch data {self.id}` downloads them"
            raise DatasetError(f"no ground-truth (HR) images for '{self.id}' in {folder}: {origin}",
                               hint=f"run `harness data import {self.id} --hr PATH` (a folder, archive or URL)"
                               if self.build is None and not self.archives
                               else f"run `harness fetch data {self.id}`")
        return folder

    def references(self, data_dir: Path) -> tuple[Path | None, Path]:
        """What outputs are compared with: the HR folder (None when the dataset has no ground truth, like the
        NTIRE test set until it is imported) and the LR folder, which must be there."""
        lr = self.lr_dir(data_dir)
        if not any(lr.glob("*.png")):
            raise DatasetError(f"no LR images for '{self.id}' in {lr}",
                               hint=f"run `harness fetch data {self.id}`" if self.build or self.archives
                               else f"run `harness data import {self.id} --lr PATH`")
        hr = self.hr_dir(data_dir)
        return (hr if any(hr.glob("*.png")) else None), lr


def lr_name(stem: str) -> str:
    return f"{stem}x{SCALE}.png"


def mini_images() -> dict[str, np.ndarray]:
    import numpy as np  # building images: numpy and scikit-image only here, not on every command's start
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
    from harness.imaging.matlab_resize import imresize
    from harness.imaging.pictures import encode_png

    for stem, hr in mini_images().items():
        write_bytes_atomic(target / "HR" / f"{stem}.png", encode_png(hr))
        write_bytes_atomic(target / "LR" / lr_name(stem), encode_png(imresize(hr, 1 / SCALE)))


# Datasets the harness builds or downloads; those whose images the user imports are declared by the
# challenges that use them (challenges/<id>.yaml, datasets with a title).
BUILTIN_DATASETS: dict[str, Dataset] = {
    "mini": Dataset("mini", "Embedded mini suite",
                    f"{len(MINI_SOURCES)} real photographs from scikit-image, LR by MATLAB-compatible bicubic x4",
                    build_mini, tuple(stem for stem, *_ in MINI_SOURCES)),
}

# Values measured on the model alone (parameters, FLOPs, activations, conv layers, a runtime averaged over the
# test sets): `published.model` in a manifest. It holds no images; nothing runs on it.
# The model check runs the network on the mini photographs (outputs x4 of the right size), so it is built as
# mini is.
BUILTIN_DATASETS["model"] = Dataset("model", "The model itself",
                                    "values measured on the network, not on images (published.model in a manifest); "
                                    "the network runs on the mini photographs", build_mini,
                                    tuple(stem for stem, *_ in MINI_SOURCES))
MODEL = "model"

DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K"
BUILTIN_DATASETS["div2k-valid"] = Dataset(
    "div2k-valid", "DIV2K validation set (0801-0900)",
    "the public DIV2K validation HR images and their bicubic x4 LR, as distributed by ETH Zurich",
    None, tuple(f"{i:04d}" for i in range(801, 901)), "",
    (("HR", "DIV2K_valid_HR.zip"), ("LR", "DIV2K_valid_LR_bicubic_X4.zip")), "HARNESS_DIV2K_URL", DIV2K_URL)


def all_datasets() -> dict[str, Dataset]:
    """The built-in datasets, then those the challenges declare."""
    from harness.catalogue.challenges import catalogue, dataset_problems, declared_datasets

    problems = dataset_problems(catalogue(), list(BUILTIN_DATASETS))
    if problems:
        raise ManifestError(problems)
    declared = {}
    for dataset_id, spec in declared_datasets().items():
        declared[dataset_id] = Dataset(dataset_id, spec["title"], spec["description"], None, stems_of(spec["images"]),
                                       spec["hr_origin"])
    return {**BUILTIN_DATASETS, **declared}


def stems_of(images: dict) -> tuple[str, ...]:
    """A declaration's image stems, sorted (the order of published per-image lists): each range first..last
    zero-padded to its digits."""
    ranges = [images, *images.get("also", [])]
    return tuple(sorted(f"{i:0{r.get('digits', 4)}d}" for r in ranges for i in range(r["first"], r["last"] + 1)))


def get(dataset_id: str) -> Dataset:
    known = all_datasets()
    if dataset_id not in known:
        import difflib

        close = difflib.get_close_matches(dataset_id, list(known), n=1)
        raise DatasetError(f"unknown dataset '{dataset_id}'",
                           hint=f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}")
    return known[dataset_id]


def file_checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p)
            for p in sorted(root.rglob("*.png"))}


def recorded_checksums(dataset_id: str) -> dict[str, str] | None:
    if dataset_id in ("mini", MODEL) and MINI_CHECKSUMS.exists():
        return json.loads(MINI_CHECKSUMS.read_text())
    return None
