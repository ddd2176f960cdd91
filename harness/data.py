"""Datasets: where their images come from, how they are built, and their checksums.

Layout of a dataset on disk (under data/<id>/): HR/<stem>.png, LR/<stem>x4.png, checksums.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ChecksumMismatch, DatasetError, ManifestError
from .fsutil import replace_dir, sha256_file, write_bytes_atomic, write_json_atomic

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
    from .imageio import encode_png
    from .imresize import imresize

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
    from .challenge import catalogue, dataset_problems, declared_datasets

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


def ground_truth(dataset_id: str, data_dir: Path) -> Path:
    """The dataset's HR folder, or an error saying where the HR images come from and what to do."""
    dataset = get(dataset_id)
    folder = dataset.hr_dir(data_dir)
    if not any(folder.glob("*.png")):
        origin = dataset.hr_origin or f"`harness fetch data {dataset_id}` downloads them"
        raise DatasetError(f"no ground-truth (HR) images for '{dataset_id}' in {folder}: {origin}",
                           hint=f"run `harness data import {dataset_id} --hr PATH` (a folder, archive or URL)"
                           if dataset.build is None and not dataset.archives
                           else f"run `harness fetch data {dataset_id}`")
    return folder


def references(dataset_id: str, data_dir: Path) -> tuple[Path | None, Path]:
    """What outputs are compared with: the HR folder (None when the dataset has no ground truth, like the
    NTIRE test set until it is imported) and the LR folder, which must be there."""
    dataset = get(dataset_id)
    lr = dataset.lr_dir(data_dir)
    if not any(lr.glob("*.png")):
        raise DatasetError(f"no LR images for '{dataset_id}' in {lr}",
                           hint=f"run `harness fetch data {dataset_id}`" if dataset.build or dataset.archives
                           else f"run `harness data import {dataset_id} --lr PATH`")
    hr = dataset.hr_dir(data_dir)
    return (hr if any(hr.glob("*.png")) else None), lr


def file_checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p)
            for p in sorted(root.rglob("*.png"))}


def recorded_checksums(dataset_id: str) -> dict[str, str] | None:
    if dataset_id in ("mini", MODEL) and MINI_CHECKSUMS.exists():
        return json.loads(MINI_CHECKSUMS.read_text())
    return None


def fetch(dataset_id: str, data_dir: Path, downloads: Path | None = None, pins: Path | None = None,
          progress=None) -> Path:
    """Build, download or verify a dataset in data_dir/<id>, checked against its recorded checksums.

    Downloaded archives resume after an interruption; each archive's sha256 is pinned in `pins` at
    its first download and a later mismatch is refused, naming the file.
    """
    with _writing(dataset_id, data_dir):
        return _fetch(dataset_id, data_dir, downloads, pins, progress)


@contextlib.contextmanager
def _writing(dataset_id: str, data_dir: Path):
    """One writer per dataset; staging folders a killed process left behind are removed first."""
    from . import locks

    get(dataset_id)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    with locks.held(Path(data_dir) / dataset_id, f"dataset '{dataset_id}'"):
        for abandoned in Path(data_dir).glob(f".{dataset_id}.*"):
            if abandoned.is_dir():
                shutil.rmtree(abandoned, ignore_errors=True)
        yield


def _fetch(dataset_id: str, data_dir: Path, downloads: Path | None, pins: Path | None, progress) -> Path:
    dataset = get(dataset_id)
    root = dataset.root(data_dir)
    expected = recorded_checksums(dataset_id)
    if root.is_dir() and (root / CHECKSUMS).exists():
        verify(dataset_id, data_dir)
        return root
    if dataset.build is None and not dataset.archives:
        raise DatasetError(f"dataset '{dataset_id}' must be imported: {dataset.hr_origin}",
                           hint=f"run `harness data import {dataset_id} --hr PATH [--lr PATH]` "
                                "(a folder or a .zip/.tar archive)")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{dataset_id}."))
    try:
        if dataset.archives:
            _fetch_archives(dataset, staging, Path(downloads or Path(data_dir) / ".downloads"),
                            Path(pins or Path(data_dir) / "pins.json"), progress)
        elif dataset.build is not None:
            dataset.build(staging)
        actual = file_checksums(staging)
        if expected is not None:
            _compare(dataset_id, expected, actual)
        write_json_atomic(staging / CHECKSUMS, actual)
        replace_dir(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _fetch_archives(dataset: Dataset, staging: Path, downloads: Path, pins_path: Path, progress) -> None:
    from .archive import materialise
    from .download import download

    pins = json.loads(pins_path.read_text()) if pins_path.exists() else {}
    pinned = pins.setdefault(dataset.id, {})
    for part, name in dataset.archives:
        url = f"{dataset.url}/{name}"
        archive = download(url, downloads / name, pinned.get(name), progress(name) if progress else None)
        digest = sha256_file(archive)
        if name in pinned and pinned[name] != digest:  # a file already on disk, changed since
            raise ChecksumMismatch(f"{name}: sha256 {digest} differs from the one pinned at its first download "
                                   f"({pinned[name]}, in {pins_path.name})",
                                   hint=f"delete {archive} and fetch again")
        materialise(archive, staging / part, "*.png")
        pinned[name] = digest
    problems = check_layout(dataset, staging)
    if problems:
        raise DatasetError(f"'{dataset.id}' from {dataset.url} is not as expected:\n  " + "\n  ".join(problems))
    write_json_atomic(pins_path, pins)  # pinned only once the archives proved usable


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


def local_source(source: str | Path, downloads: Path, progress=None) -> Path:
    """A folder or archive on disk; an http(s) URL is downloaded first (resumable)."""
    from .download import download

    text = str(source)
    if text.startswith(("http://", "https://")):
        name = text.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "download"
        return download(text, Path(downloads) / name, None, progress(name) if progress else None)
    path = Path(source)
    if not path.exists():
        raise DatasetError(f"{path} does not exist", hint="give a folder, a .zip/.tar archive or an http(s) URL")
    return path


def import_dataset(dataset_id: str, data_dir: Path, hr: str | Path | None, lr: str | Path | None,
                   downloads: Path | None = None, progress=None, subset: bool = False) -> Path:
    """Import user-supplied HR (and LR) images: a folder, an archive or a URL of one, checked and checksummed.
    With `subset`, some of the declared images are enough (their names must be declared ones): published
    per-image values are then compared image by image, and means over the whole set are not."""
    with _writing(dataset_id, data_dir):
        return _import(dataset_id, data_dir, hr, lr, downloads, progress, subset)


def _import(dataset_id: str, data_dir: Path, hr, lr, downloads: Path | None, progress, subset: bool) -> Path:
    from .archive import materialise

    dataset = get(dataset_id)
    if hr is None and lr is None:
        raise DatasetError("nothing to import", hint="give --hr PATH and/or --lr PATH")
    root = dataset.root(data_dir)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{dataset_id}."))
    try:
        if root.is_dir():
            shutil.copytree(root, staging, dirs_exist_ok=True)
        for part, source in (("HR", hr), ("LR", lr)):
            if source is not None:
                shutil.rmtree(staging / part, ignore_errors=True)
                materialise(local_source(source, downloads or Path(data_dir) / ".downloads", progress),
                            staging / part, "*.png")
        _name_lr_as_declared(dataset, staging / "LR")
        problems = check_layout(dataset, staging, subset)
        if problems:
            raise DatasetError(f"'{dataset_id}' import refused:\n  " + "\n  ".join(problems),
                               hint="fix the files and import again; nothing was changed")
        (staging / CHECKSUMS).unlink(missing_ok=True)
        write_json_atomic(staging / CHECKSUMS, file_checksums(staging))
        replace_dir(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _name_lr_as_declared(dataset: Dataset, lr_dir: Path) -> None:
    """LR files named by their stem alone (NTIRE 2022's test set: 0901.png) take the layout's name (0901x4.png);
    only declared stems, and never over a file of that name."""
    for path in sorted(lr_dir.glob("*.png")) if lr_dir.is_dir() else []:
        target = lr_dir / lr_name(path.stem)
        if path.stem in dataset.stems and not target.exists():
            path.rename(target)


def check_layout(dataset: Dataset, root: Path, subset: bool = False) -> list[str]:
    """Expected names in HR/ and LR/ (with `subset`, some of them, the same in both), and every HR exactly
    SCALE times its LR."""
    from .png import read_png_header

    problems = []
    hr = {p.stem: p for p in (root / "HR").glob("*.png")}
    lr = {p.stem[:-len(f"x{SCALE}")]: p for p in (root / "LR").glob(f"*x{SCALE}.png")}
    misnamed = sorted(p.name for p in (root / "LR").glob("*.png") if not p.stem.endswith(f"x{SCALE}"))
    if misnamed:
        problems.append(f"LR: {len(misnamed)} file(s) not named <stem>x{SCALE}.png: {', '.join(misnamed[:8])}")
    for part, found in (("HR", hr), ("LR", lr)):
        if dataset.archives and not found:  # a downloaded dataset comes with both
            problems.append(f"{part}: no images")
    for part, found in (("HR", hr), ("LR", lr)):
        if not found or not dataset.stems:
            continue
        other = lr if part == "HR" else hr  # with a subset, HR and LR hold the same images
        missing = sorted(set(other or found) - set(found)) if subset else sorted(set(dataset.stems) - set(found))
        extra = sorted(set(found) - set(dataset.stems))
        if missing:
            problems.append(f"{part}: {len(missing)} expected image(s) missing: {', '.join(missing[:8])}"
                            + (" …" if len(missing) > 8 else ""))
        if extra:
            named = [f"{stem}x{SCALE}.png" if part == "LR" else f"{stem}.png" for stem in extra]
            problems.append(f"{part}: {len(extra)} unexpected image(s): {', '.join(named[:8])}")
    for part, found in (("HR", hr), ("LR", lr)):  # the content, not the name, makes a PNG
        for _, path in sorted(found.items()):
            if read_png_header(path) is None:
                problems.append(f"{part}/{path.name}: not a PNG (its first bytes say otherwise)")
    for stem in sorted(set(hr) & set(lr)):
        h, l_ = read_png_header(hr[stem]), read_png_header(lr[stem])
        if h is None or l_ is None:
            continue
        elif (h.width, h.height) != (l_.width * SCALE, l_.height * SCALE):
            problems.append(f"HR/{stem}.png is {h.width}x{h.height}, expected {l_.width * SCALE}x{l_.height * SCALE} "
                            f"(LR x{SCALE})")
    if not hr and not lr:
        problems.append("no PNG images found")
    return problems
