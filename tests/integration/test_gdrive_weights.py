"""Team weights from a Google Drive file id, through gdown (the real client), pointed at a loopback server
with HARNESS_GDRIVE_URL: a cut transfer resumes, a first fetch pins the sha256, changed bytes are refused."""

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from harness.core.errors import ChecksumMismatch, DownloadError
from harness.fetch import team_weights

from conftest import weights_team

pytestmark = pytest.mark.network
FILE_ID = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"
PAYLOAD = os.urandom(3 * 2 ** 20)


class DriveHandler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    cut_after: int | None = None
    ranges: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        body = type(self).files.get((parse_qs(url.query).get("id") or [""])[0]) if url.path == "/uc" else None
        if body is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            type(self).ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        chunk = body[start:]
        if type(self).cut_after is not None:
            chunk, type(self).cut_after = chunk[:type(self).cut_after], None
            self.close_connection = True
        self.wfile.write(chunk)


@pytest.fixture
def drive(monkeypatch):
    DriveHandler.files, DriveHandler.cut_after, DriveHandler.ranges = {FILE_ID: PAYLOAD}, None, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), DriveHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("HARNESS_GDRIVE_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    yield DriveHandler
    httpd.shutdown()


def drive_team(tmp_path, sha256=None):
    return weights_team(tmp_path, "drive-team", "Weights on Drive",
                        {"name": "model.pth", "source": {"kind": "gdrive", "id": FILE_ID}, "sha256": sha256})


def fetch(team, tmp_path):
    return team_weights.fetch(team, tmp_path / "weights", tmp_path / "downloads", tmp_path)


def test_a_cut_drive_download_resumes_and_is_pinned(drive, tmp_path):
    team = drive_team(tmp_path)
    drive.cut_after = 1_600_000
    with pytest.raises(DownloadError) as cut:
        fetch(team, tmp_path)
    assert FILE_ID in cut.value.message and "resumes" in cut.value.hint
    assert not (tmp_path / "weights" / "drive-team" / "model.pth").exists()
    (path,) = fetch(team, tmp_path)
    assert len(drive.ranges) == 1 and 0 < int(drive.ranges[0].split("=")[1].rstrip("-")) <= 1_600_000
    assert path.read_bytes() == PAYLOAD
    listing = json.loads((tmp_path / "weights" / "drive-team" / team_weights.LISTING).read_text())
    assert listing == {"model.pth": hashlib.sha256(PAYLOAD).hexdigest()}


def test_bytes_that_changed_since_the_pin_are_refused_by_name(drive, tmp_path):
    team = drive_team(tmp_path)
    (path,) = fetch(team, tmp_path)
    path.unlink()
    for cached in (tmp_path / "downloads" / "gdrive").iterdir():
        cached.unlink()
    drive.files[FILE_ID] = os.urandom(1000)
    with pytest.raises(ChecksumMismatch) as refused:
        fetch(team, tmp_path)
    assert "model.pth" in refused.value.message and "pinned" in refused.value.message
    assert not path.exists()


def test_a_manifest_checksum_is_enforced(drive, tmp_path):
    team = drive_team(tmp_path, sha256="0" * 64)
    with pytest.raises(ChecksumMismatch) as refused:
        fetch(team, tmp_path)
    assert "model.pth" in refused.value.message and "0" * 64 in refused.value.message


def test_an_unknown_file_id_is_a_typed_error(drive, tmp_path):
    drive.files = {}
    with pytest.raises(DownloadError) as missing:
        fetch(drive_team(tmp_path), tmp_path)
    assert FILE_ID in missing.value.message
