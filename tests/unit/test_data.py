"""The embedded mini dataset: real photographs, MATLAB-bicubic LR, recorded checksums."""

import json

import pytest

from harness import data
from harness.errors import ChecksumMismatch, DatasetError
from harness.imageio import read_png_header, read_rgb8
from harness.imresize import imresize


def test_mini_matches_its_recorded_checksums(mini_data):
    listed = json.loads((mini_data / "mini" / "checksums.json").read_text())
    assert listed == json.loads(data.MINI_CHECKSUMS.read_text())
    assert len([k for k in listed if k.startswith("HR/")]) >= 6


def test_mini_names_sizes_and_lr(mini_data):
    root = mini_data / "mini"
    for stem, *_ in data.MINI_SOURCES:
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
        data.verify("mini", tmp_path)
    with pytest.raises(ChecksumMismatch, match="LR/0003x4.png"):
        data.fetch("mini", tmp_path)  # an existing copy is checked, never silently trusted


def test_unknown_and_absent_datasets(tmp_path):
    with pytest.raises(DatasetError) as caught:
        data.get("minni")
    assert caught.value.hint == "did you mean 'mini'?"
    with pytest.raises(DatasetError, match="not in"):
        data.verify("mini", tmp_path)
