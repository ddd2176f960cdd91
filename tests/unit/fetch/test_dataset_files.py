"""The embedded mini dataset: real photographs, MATLAB-bicubic LR, recorded checksums."""

import json

import numpy as np
import pytest

from harness.catalogue import datasets
from harness.core.errors import ChecksumMismatch, DatasetError
from harness.fetch import dataset_files
from harness.imaging.matlab_resize import imresize
from harness.imaging.pictures import read_rgb8
from harness.imaging.png_header import read_png_header


def test_mini_matches_its_recorded_checksums(mini_data):
    listed = json.loads((mini_data / "mini" / "checksums.json").read_text())
    assert listed == json.loads(datasets.MINI_CHECKSUMS.read_text())
    assert len([k for k in listed if k.startswith("HR/")]) >= 6


def test_mini_names_sizes_and_lr(mini_data):
    root = mini_data / "mini"
    for stem, *_ in datasets.MINI_SOURCES:
        hr, lr = read_png_header(root / "HR" / f"{stem}.png"), read_png_header(root / "LR" / f"{stem}x4.png")
        assert hr.width % 4 == 0 and hr.height % 4 == 0 and hr.is_plain_rgb8
        assert (lr.width * 4, lr.height * 4) == (hr.width, hr.height)
    hr = read_rgb8(root / "HR" / "0001.png")
    assert (read_rgb8(root / "LR" / "0001x4.png") == imresize(hr, 0.25)).all()


def test_a_tampered_file_is_named(mini_data, tmp_path):
    import shutil

    shutil.copytree(mini_data / "mini", tmp_path / "mini")
    (tmp_path / "mini" / "LR" / "0003x4.png").write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatch, match="LR/0003x4.png"):
        dataset_files.check_checksums(datasets.get("mini"), tmp_path)
    with pytest.raises(ChecksumMismatch, match="LR/0003x4.png"):
        dataset_files.fetch(datasets.get("mini"), tmp_path)  # an existing copy is checked, never silently trusted


def test_unknown_and_absent_datasets(tmp_path):
    with pytest.raises(DatasetError) as caught:
        datasets.get("minni")
    assert caught.value.hint == "did you mean 'mini'?"
    with pytest.raises(DatasetError, match="not in"):
        dataset_files.check_checksums(datasets.get("mini"), tmp_path)


def test_import_accepts_a_valid_set_and_names_each_problem(mini_data, tmp_path):
    import shutil
    import zipfile

    from harness.catalogue.datasets import BUILTIN_DATASETS, Dataset
    from harness.fetch.dataset_files import import_dataset

    # The real ntire2025-test expects 0901..1000; a small stand-in with the same rules keeps this fast.
    BUILTIN_DATASETS["stand-in"] = Dataset("stand-in", "stand-in", "test", None, ("0001", "0002", "0003"), "tests")
    try:
        hr, lr = tmp_path / "hr", tmp_path / "lr"
        hr.mkdir(), lr.mkdir()
        for stem in ("0001", "0002", "0003"):
            shutil.copy(mini_data / "mini" / "HR" / f"{stem}.png", hr)
            shutil.copy(mini_data / "mini" / "LR" / f"{stem}x4.png", lr)
        archive = tmp_path / "hr.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for p in hr.glob("*.png"):
                zf.write(p, f"DIV2K_test_HR/{p.name}")
        root = import_dataset(datasets.get("stand-in"), tmp_path / "data", archive, lr)
        listed = json.loads((root / "checksums.json").read_text())
        assert sorted(listed) == ["HR/0001.png", "HR/0002.png", "HR/0003.png",
                                  "LR/0001x4.png", "LR/0002x4.png", "LR/0003x4.png"]
        dataset_files.check_checksums(datasets.get("stand-in"), tmp_path / "data")

        (hr / "0002.png").unlink()
        shutil.copy(mini_data / "mini" / "HR" / "0004.png", hr / "0003.png")  # wrong size for LR 0003
        shutil.copy(mini_data / "mini" / "HR" / "0005.png", hr / "0009.png")
        with pytest.raises(DatasetError) as caught:
            import_dataset(datasets.get("stand-in"), tmp_path / "data2", hr, lr)
        message = caught.value.message
        assert "HR: 1 expected image(s) missing: 0002" in message
        assert "HR: 1 unexpected image(s): 0009" in message
        assert "HR/0003.png is 320x320, expected 320x300 (LR x4)" in message
        assert not (tmp_path / "data2" / "stand-in").exists()
    finally:
        del BUILTIN_DATASETS["stand-in"]


def test_import_rejects_hr_of_the_wrong_size(mini_data, tmp_path):
    from harness.catalogue.datasets import BUILTIN_DATASETS, Dataset
    from harness.fetch.dataset_files import import_dataset
    from harness.imaging.pictures import write_rgb8

    BUILTIN_DATASETS["stand-in"] = Dataset("stand-in", "stand-in", "test", None, ("0001",), "tests")
    try:
        hr, lr = tmp_path / "hr", tmp_path / "lr"
        write_rgb8(hr / "0001.png", read_rgb8(mini_data / "mini" / "HR" / "0001.png")[:316])
        lr.mkdir()
        (lr / "0001x4.png").write_bytes((mini_data / "mini" / "LR" / "0001x4.png").read_bytes())
        with pytest.raises(DatasetError, match=r"HR/0001.png is 320x316, expected 320x320"):
            import_dataset(datasets.get("stand-in"), tmp_path / "data", hr, lr)
    finally:
        del BUILTIN_DATASETS["stand-in"]


def test_ntire_test_set_says_where_hr_comes_from(tmp_path):
    with pytest.raises(DatasetError) as caught:
        dataset_files.fetch(datasets.get("ntire2025-test"), tmp_path)
    assert "never part of the public DIV2K download" in caught.value.message
    assert "harness data import ntire2025-test --hr PATH" in caught.value.hint


def test_lr_only_import_then_scoring_says_where_hr_comes_from(tmp_path):
    lr = tmp_path / "lr"
    lr.mkdir()
    from harness.imaging.pictures import encode_png

    for stem in datasets.get("ntire2025-test").stems:
        (lr / f"{stem}x4.png").write_bytes(encode_png(np.zeros((4, 4, 3), dtype=np.uint8)))
    dataset_files.import_dataset(datasets.get("ntire2025-test"), tmp_path / "data", None, lr)
    with pytest.raises(DatasetError) as caught:
        datasets.get("ntire2025-test").ground_truth(tmp_path / "data")
    assert "no ground-truth (HR) images" in caught.value.message
    assert "challenge organizers" in caught.value.message
    assert "harness data import ntire2025-test --hr PATH" in caught.value.hint
