"""div2k-valid fetched from a real HTTP server on 127.0.0.1: resume after a cut, archives pinned at the
first download and a changed one refused by name, zip-slip refused, progress shown on a slow transfer.

The served zips have DIV2K's layout and names (0801-0900) and hold real photographs: 100 tiles cut
from scikit-image's pictures, LR made by the harness's MATLAB-compatible bicubic."""

import io
import json
import re
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from harness.catalogue import datasets
from harness.core.errors import ChecksumMismatch, DatasetError, DownloadError
from harness.fetch import dataset_files
from harness.imaging.matlab_resize import imresize
from harness.imaging.pictures import encode_png

from conftest import harness_cli

pytestmark = pytest.mark.network
HR_ZIP, LR_ZIP = "DIV2K_valid_HR.zip", "DIV2K_valid_LR_bicubic_X4.zip"


def div2k_zips(changed: bool = False) -> dict[str, bytes]:
    pictures = list(datasets.mini_images().values())
    hr_buffer, lr_buffer = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(hr_buffer, "w") as hr_zip, zipfile.ZipFile(lr_buffer, "w") as lr_zip:
        for index in range(100):
            stem = f"{801 + index:04d}"
            picture = pictures[index % len(pictures)]
            top, left = 8 * (index // len(pictures)), 8 * (index % 5)
            hr = np.ascontiguousarray(picture[top:top + 32, left:left + 40])
            if changed and index == 0:
                hr = 255 - hr
            hr_zip.writestr(f"DIV2K_valid_HR/{stem}.png", encode_png(hr))
            lr_zip.writestr(f"DIV2K_valid_LR_bicubic/X4/{stem}x4.png", encode_png(imresize(hr, 0.25)))
    return {HR_ZIP: hr_buffer.getvalue(), LR_ZIP: lr_buffer.getvalue()}


class Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    cut_after: dict[str, int] = {}  # file -> bytes sent before dropping the connection, once
    delay_s = 0.0  # per 4 KiB block, for a slow server
    ranges: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        body = type(self).files.get(name)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            type(self).ranges.append((name, self.headers["Range"]))
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        chunk = body[start:]
        if name in type(self).cut_after:
            chunk = chunk[:type(self).cut_after.pop(name)]
            self.close_connection = True
        for offset in range(0, len(chunk), 4096):
            self.wfile.write(chunk[offset:offset + 4096])
            if type(self).delay_s:
                time.sleep(type(self).delay_s)


@pytest.fixture
def server(monkeypatch):
    Handler.files, Handler.cut_after, Handler.delay_s, Handler.ranges = div2k_zips(), {}, 0.0, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/cvl/DIV2K"
    monkeypatch.setenv("HARNESS_DIV2K_URL", url)
    yield Handler, url
    httpd.shutdown()


def fetch(tmp_path):
    return dataset_files.fetch(datasets.get("div2k-valid"), tmp_path / "data", tmp_path / "downloads",
                               tmp_path / "datasets.lock.json")


def test_an_interrupted_fetch_resumes_and_pins_each_archive(server, tmp_path):
    handler, _ = server
    handler.cut_after = {HR_ZIP: 150_000}
    with pytest.raises(DownloadError) as cut:
        fetch(tmp_path)
    assert "transfer ended" in cut.value.message and "resumes" in cut.value.hint
    assert not (tmp_path / "data" / "div2k-valid").exists()  # nothing half-made is left as the dataset
    root = fetch(tmp_path)
    # The second try asked only for the rest (from the last whole block received before the cut).
    assert [name for name, _ in handler.ranges] == [HR_ZIP]
    assert 0 < int(handler.ranges[0][1].split("=")[1].rstrip("-")) <= 150_000
    assert len(list((root / "HR").glob("*.png"))) == 100 and (root / "LR" / "0900x4.png").exists()
    pins = json.loads((tmp_path / "datasets.lock.json").read_text())["div2k-valid"]
    assert set(pins) == {HR_ZIP, LR_ZIP} and all(len(v) == 64 for v in pins.values())
    # checksums of every image recorded
    assert dataset_files.check_checksums(datasets.get("div2k-valid"), tmp_path / "data")


def test_an_archive_that_changed_since_it_was_pinned_is_refused_by_name(server, tmp_path):
    handler, _ = server
    fetch(tmp_path)
    for folder in ("data", "downloads"):
        import shutil

        shutil.rmtree(tmp_path / folder)
    handler.files = div2k_zips(changed=True)
    with pytest.raises(ChecksumMismatch) as refused:
        fetch(tmp_path)
    assert refused.value.message.startswith(HR_ZIP)
    assert not (tmp_path / "data" / "div2k-valid").exists()


def test_a_zip_with_an_escaping_member_is_refused_and_nothing_is_written(server, tmp_path):
    handler, _ = server
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("DIV2K_valid_HR/0801.png", b"fine")
        archive.writestr("../../escaped.png", b"outside")
    handler.files[HR_ZIP] = evil.getvalue()
    with pytest.raises(DatasetError) as refused:
        fetch(tmp_path)
    assert "../../escaped.png" in refused.value.message and "outside the target" in refused.value.message
    assert not list(tmp_path.rglob("escaped.png")) and not (tmp_path / "data" / "div2k-valid").exists()


def test_a_wrong_layout_is_refused_with_each_problem(server, tmp_path):
    handler, _ = server
    handler.files[LR_ZIP] = handler.files[HR_ZIP]  # HR images where the LR should be
    with pytest.raises(DatasetError) as refused:
        fetch(tmp_path)
    assert "100 file(s) not named <stem>x4.png: 0801.png" in refused.value.message
    assert "LR: no images" in refused.value.message


def test_a_slow_transfer_shows_progress(server, tmp_path, project):
    handler, url = server
    handler.delay_s = 0.002
    done = harness_cli("fetch", "data", "div2k-valid", cwd=project,
                       env={"HARNESS_DIV2K_URL": url, "HARNESS_DOWNLOADS": str(tmp_path / "downloads")})
    assert done.returncode == 0, done.stderr
    assert HR_ZIP in done.stderr and LR_ZIP in done.stderr
    assert re.search(r"\d+\.\d/\d+\.\d MiB", done.stderr), done.stderr  # bytes moved, as lines in a log
    assert "div2k-valid" in done.stdout and (project / "datasets.lock.json").exists()
