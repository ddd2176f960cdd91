"""Broken and hostile output and ground-truth folders, built here file by file, through the real
`harness evaluate`: each case is a clear refusal or a finding, never a traceback, and nothing outside
what was given is read."""

import json
import struct
import zlib

import cv2
import numpy as np
import pytest

from harness.imaging.pictures import encode_png

from conftest import harness_cli

pytestmark = pytest.mark.slow


def photo(size=32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header declares a size it does not have (a decompression bomb's first bytes)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(header)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def folders(tmp_path):
    sr, hr = tmp_path / "sr", tmp_path / "hr"
    sr.mkdir()
    hr.mkdir()
    for index, stem in enumerate(("0001", "0002")):
        image = photo(seed=index)
        (hr / f"{stem}.png").write_bytes(encode_png(image))
        (sr / f"{stem}x4.png").write_bytes(encode_png(np.clip(image.astype(int) + 3, 0, 255).astype(np.uint8)))
    return sr, hr


def run(tmp_path, sr, hr, *extra):
    done = harness_cli("evaluate", "--sr", str(sr), "--hr", str(hr), "--metrics", "psnr,ssim", "--json",
                       str(tmp_path / "out.json"), *extra, cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def break_dangling_link(sr, hr):
    (sr / "0002x4.png").unlink()
    (sr / "0002x4.png").symlink_to(sr / "gone.png")


def break_folder_named_png(sr, hr):
    (sr / "0002x4.png").unlink()
    (sr / "0002x4.png").mkdir()


def break_link_outside(sr, hr):
    (sr / "0002x4.png").unlink()
    (sr / "0002x4.png").symlink_to("/etc/passwd")


def break_enormous_header(sr, hr):
    (sr / "0002x4.png").write_bytes(png_claiming(100_000, 100_000))


def break_case_twins(sr, hr):
    (sr / "0002X4.png").write_bytes((sr / "0002x4.png").read_bytes())


def break_unreadable_truth(sr, hr):
    (hr / "0002.png").write_bytes((hr / "0002.png").read_bytes()[:60])


def break_truth_not_png(sr, hr):
    ok, jpeg = cv2.imencode(".jpg", photo(seed=1))
    (hr / "0002.png").write_bytes(jpeg.tobytes())


REFUSALS = [
    (break_dangling_link, "0002x4.png is a link to nothing readable", "regular files only"),
    (break_folder_named_png, "0002x4.png is a folder", "regular files only"),
    (break_link_outside, "0002x4.png is a link to /etc/passwd", "links must stay inside the folder given"),
    (break_enormous_header, "declares 100000x100000 pixels", "image size limit"),
    (break_case_twins, "0002X4.png and 0002x4.png differ only in case", "case-insensitive"),
    (break_unreadable_truth, "ground truth", "damaged"),
    (break_truth_not_png, "ground truth 0002.png is a JPEG file, not a PNG", "damaged"),
]


@pytest.mark.parametrize("damage, message, rule", REFUSALS, ids=[r[0].__name__[6:] for r in REFUSALS])
def test_a_broken_folder_is_refused_with_the_file_and_the_rule(tmp_path, folders, damage, message, rule):
    sr, hr = folders
    damage(sr, hr)
    before = sorted((p.name, p.is_file() and p.read_bytes()) for p in tmp_path.rglob("*") if not p.is_symlink())
    done = run(tmp_path, sr, hr)
    assert done.returncode == 2, done.stdout + done.stderr
    text = " ".join(done.stderr.split())
    assert message in text and rule in text
    assert "unreadable_output" not in done.stdout  # a dataset problem is never the team's
    assert not (tmp_path / "out.json").exists()
    after = sorted((p.name, p.is_file() and p.read_bytes()) for p in tmp_path.rglob("*") if not p.is_symlink())
    assert after == before  # nothing written anywhere


def test_a_jpeg_named_png_is_a_finding_in_faithful_mode_and_a_failure_in_strict(tmp_path, folders):
    sr, hr = folders
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(photo(seed=1), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
    (sr / "0002x4.png").write_bytes(jpeg.tobytes())
    faithful = run(tmp_path, sr, hr)
    assert faithful.returncode == 1 and "1 finding(s) raised" in faithful.stderr  # scored, and said
    assert run(tmp_path, sr, hr, "--allow-findings").returncode == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert [(f["image"], f["kind"]) for f in result["findings"]] == [("0002", "not_png")]
    assert "a JPEG file named .png" in result["findings"][0]["message"]
    assert result["per_image"]["0002"]["psnr"] > 30  # read by its content, as OpenCV does

    strict = run(tmp_path, sr, hr, "--mode", "strict")
    assert strict.returncode == 1
    assert "0002" in json.loads((tmp_path / "out.json").read_text())["failed_images"]


def test_an_image_too_small_to_score_is_named_never_nan(tmp_path, folders):
    sr, hr = folders
    (sr / "0002x4.png").write_bytes(encode_png(photo(1)))
    (hr / "0002.png").write_bytes(encode_png(photo(1)))
    done = run(tmp_path, sr, hr)
    assert done.returncode == 1 and "finding(s) raised" in done.stderr  # scored as the organizers did, and said
    text = (tmp_path / "out.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    result = json.loads(text)
    assert {f["kind"] for f in result["findings"] if f["image"] == "0002"} == {"metric_error"}
    assert "image too small" in result["findings"][0]["message"]
    assert result["mean"]["psnr"] == pytest.approx(result["per_image"]["0001"]["psnr"] / 2)  # counted as 0


def test_a_json_path_that_cannot_be_created_is_a_clear_error(tmp_path, folders):
    sr, hr = folders
    (tmp_path / "blocker").write_text("a file, not a folder")
    done = harness_cli("evaluate", "--sr", str(sr), "--hr", str(hr), "--metrics", "psnr", "--json",
                       str(tmp_path / "blocker" / "out.json"), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot write {tmp_path / 'blocker' / 'out.json'}" in " ".join(done.stderr.split())
    assert "evaluating" not in done.stderr  # refused before any image was scored


def test_the_size_limit_is_a_setting(tmp_path, folders):
    sr, hr = folders
    done = run(tmp_path, sr, hr, "--max-megapixels", "0.0005")
    assert done.returncode == 2 and "past the limit of 0.0005 MP" in " ".join(done.stderr.split())
    assert run(tmp_path, sr, hr).returncode == 0
