"""Broken and hostile imports, built here: `harness data import` refuses each with the archive or file
and the rule, leaves nothing half-imported, and never follows a link out of what it was given."""

import tarfile
import zipfile

import numpy as np
import pytest

from harness.imaging.pictures import encode_png

from conftest import harness_cli

STEMS = [f"{n:04d}" for n in range(901, 1001)]


def image_bytes(seed: int, size: int = 8) -> bytes:
    return encode_png(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def image_set(folder, part="LR"):
    folder.mkdir(parents=True)
    for index, stem in enumerate(STEMS):
        name = f"{stem}x4.png" if part == "LR" else f"{stem}.png"
        (folder / name).write_bytes(image_bytes(index, 8 if part == "LR" else 32))
    return folder


def tar_of(folder, path, mode="w:gz"):
    with tarfile.open(path, mode) as tar:
        tar.add(folder, arcname=folder.name)
    return path


def zip_of(folder, path):
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, f"{folder.name}/{file.name}")
    return path


def truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def bad_crc(path):
    data = bytearray(path.read_bytes())
    spot = data.find(b"IDAT")
    data[spot + 8] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def encrypted_flag(path):
    """A zip whose members say they are encrypted (the flag bit), as a password-protected one does."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + offset] |= 0x1
            start += 4
    path.write_bytes(bytes(data))
    return path


CASES = {
    "truncated-tar-gz": (lambda tmp: truncated(tar_of(image_set(tmp / "LR"), tmp / "lr.tar.gz")),
                         "the archive is damaged"),
    "truncated-tar": (lambda tmp: truncated(tar_of(image_set(tmp / "LR"), tmp / "lr.tar", "w")),
                      "the archive is damaged"),
    "bad-crc-zip": (lambda tmp: bad_crc(zip_of(image_set(tmp / "LR"), tmp / "lr.zip")), "at member 'LR/0901x4.png'"),
    "encrypted-zip": (lambda tmp: encrypted_flag(zip_of(image_set(tmp / "LR"), tmp / "lr.zip")), "is encrypted"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_archive_is_named_and_nothing_is_imported(project, tmp_path, case):
    make, expected = CASES[case]
    source = make(tmp_path)
    done = harness_cli("data", "import", "ntire2025-test", "--lr", str(source), cwd=project)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Aborted" not in done.stderr
    text = " ".join(done.stderr.split())
    assert str(source) in text and expected in text
    assert not (project / "data" / "ntire2025-test").exists()
    assert not any(p.is_dir() and p.name.startswith(".ntire2025-test") for p in (project / "data").iterdir())


def test_a_text_file_named_png_is_refused_in_an_hr_only_import(project, tmp_path):
    hr = image_set(tmp_path / "HR", "HR")
    (hr / "0950.png").write_text("not an image")
    done = harness_cli("data", "import", "ntire2025-test", "--hr", str(hr), cwd=project)
    assert done.returncode == 2 and "HR/0950.png: not a PNG" in " ".join(done.stderr.split())
    assert not (project / "data" / "ntire2025-test").exists()


def test_names_that_differ_only_in_case_are_refused(project, tmp_path):
    lr = image_set(tmp_path / "LR")
    (lr / "0950X4.png").write_bytes(image_bytes(3))
    done = harness_cli("data", "import", "ntire2025-test", "--lr", str(lr), cwd=project)
    assert done.returncode == 2
    assert "0950X4.png and 0950x4.png differ only in case" in " ".join(done.stderr.split())
    assert not (project / "data" / "ntire2025-test").exists()


def test_a_link_out_of_the_folder_is_refused(project, tmp_path):
    hr = image_set(tmp_path / "HR", "HR")
    secret = tmp_path / "secret.png"
    secret.write_bytes(image_bytes(7, 32))
    (hr / "0950.png").unlink()
    (hr / "0950.png").symlink_to(secret)
    done = harness_cli("data", "import", "ntire2025-test", "--hr", str(hr), cwd=project)
    assert done.returncode == 2
    assert f"0950.png is a link to {secret}, outside the folder: refused" in " ".join(done.stderr.split())
    assert not (project / "data" / "ntire2025-test").exists()


def test_a_sound_archive_still_imports(project, tmp_path):
    source = zip_of(image_set(tmp_path / "LR"), tmp_path / "lr.zip")
    done = harness_cli("data", "import", "ntire2025-test", "--lr", str(source), cwd=project)
    assert done.returncode == 0, done.stderr
    assert len(list((project / "data" / "ntire2025-test" / "LR").glob("*.png"))) == 100
