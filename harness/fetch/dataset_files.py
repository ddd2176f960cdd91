"""Datasets fetched, built, imported and checked: each into data/<id>/ through a staging folder, against its
recorded checksums (the datasets themselves are declared in harness.catalogue.datasets)."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path

from harness.catalogue.datasets import CHECKSUMS, SCALE, Dataset, file_checksums, lr_name, recorded_checksums
from harness.core.errors import ChecksumMismatch, DatasetError
from harness.core.files import replace_dir, sha256_file, write_json_atomic


def fetch(dataset: Dataset, data_dir: Path, downloads: Path | None = None, pins: Path | None = None,
          progress=None) -> Path:
    """Build, download or verify a dataset in data_dir/<id>, checked against its recorded checksums.

    Downloaded archives resume after an interruption; each archive's sha256 is pinned in `pins` at
    its first download and a later mismatch is refused, naming the file.
    """
    with _writing(dataset, data_dir):
        return _fetch(dataset, data_dir, downloads, pins, progress)


@contextlib.contextmanager
def _writing(dataset: Dataset, data_dir: Path):
    """One writer per dataset; staging folders a killed process left behind are removed first."""
    from harness.core import locks

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    with locks.held(Path(data_dir) / dataset.id, f"dataset '{dataset}'"):
        for abandoned in Path(data_dir).glob(f".{dataset}.*"):
            if abandoned.is_dir():
                shutil.rmtree(abandoned, ignore_errors=True)
        yield


def _fetch(dataset: Dataset, data_dir: Path, downloads: Path | None, pins: Path | None, progress) -> Path:
    root = dataset.root(data_dir)
    expected = recorded_checksums(dataset.id)
    if root.is_dir() and (root / CHECKSUMS).exists():
        check_checksums(dataset, data_dir)
        return root
    if dataset.build is None and not dataset.archives:
        raise DatasetError(f"dataset '{dataset}' must be imported: {dataset.hr_origin}",
                           hint=f"run `harness data import {dataset} --hr PATH [--lr PATH]` "
                                "(a folder or a .zip/.tar archive)")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{dataset}."))
    try:
        if dataset.archives:
            _fetch_archives(dataset, staging, Path(downloads or Path(data_dir) / ".downloads"),
                            Path(pins or Path(data_dir) / "pins.json"), progress)
        elif dataset.build is not None:
            dataset.build(staging)
        actual = file_checksums(staging)
        if expected is not None:
            _compare(dataset.id, expected, actual)
        write_json_atomic(staging / CHECKSUMS, actual)
        replace_dir(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _fetch_archives(dataset: Dataset, staging: Path, downloads: Path, pins_path: Path, progress) -> None:
    from harness.fetch.archives import materialise
    from harness.fetch.downloads import download

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


def check_checksums(dataset: Dataset, data_dir: Path) -> dict[str, str]:
    """Check the files on disk against checksums.json (and the recorded ones); return them."""
    root = dataset.root(data_dir)
    listed_path = root / CHECKSUMS
    if not listed_path.exists():
        raise DatasetError(f"dataset '{dataset}' is not in {root}",
                           hint=f"run `harness fetch data {dataset}`")
    listed = json.loads(listed_path.read_text())
    _compare(dataset.id, listed, file_checksums(root))
    expected = recorded_checksums(dataset.id)
    if expected is not None:
        _compare(dataset.id, expected, listed)
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
    from harness.fetch.downloads import download

    text = str(source)
    if text.startswith(("http://", "https://")):
        name = text.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "download"
        return download(text, Path(downloads) / name, None, progress(name) if progress else None)
    path = Path(source)
    if not path.exists():
        raise DatasetError(f"{path} does not exist", hint="give a folder, a .zip/.tar archive or an http(s) URL")
    return path


def import_dataset(dataset: Dataset, data_dir: Path, hr: str | Path | None, lr: str | Path | None,
                   downloads: Path | None = None, progress=None, subset: bool = False) -> Path:
    """Import user-supplied HR (and LR) images: a folder, an archive or a URL of one, checked and checksummed.
    With `subset`, some of the declared images are enough (their names must be declared ones): published
    per-image values are then compared image by image, and means over the whole set are not."""
    with _writing(dataset, data_dir):
        return _import(dataset, data_dir, hr, lr, downloads, progress, subset)


def _import(dataset: Dataset, data_dir: Path, hr, lr, downloads: Path | None, progress, subset: bool) -> Path:
    from harness.fetch.archives import materialise

    if hr is None and lr is None:
        raise DatasetError("nothing to import", hint="give --hr PATH and/or --lr PATH")
    root = dataset.root(data_dir)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{dataset}."))
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
            raise DatasetError(f"'{dataset}' import refused:\n  " + "\n  ".join(problems),
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
    from harness.imaging.png_header import read_png_header

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
