"""Downloads against a real HTTP server on 127.0.0.1: resume after a cut, refuse wrong bytes."""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.core.errors import ChecksumMismatch, DownloadError
from harness.fetch.downloads import download

pytestmark = pytest.mark.network
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class Handler(BaseHTTPRequestHandler):
    cut_after: int | None = None  # bytes sent before the connection is dropped, first request only
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append(self.headers.get("Range"))
        body = PAYLOAD if self.path == "/file.bin" else None
        if body is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        chunk = body[start:]
        if type(self).cut_after is not None:
            chunk, type(self).cut_after = chunk[:type(self).cut_after], None
            self.wfile.write(chunk)
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(chunk)


@pytest.fixture
def server():
    Handler.requests = []
    Handler.cut_after = None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler
    httpd.shutdown()


def test_interrupted_download_resumes(server, tmp_path):
    base, handler = server
    handler.cut_after = 300_000
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(DownloadError, match="transfer ended at") as caught:
        download(f"{base}/file.bin", tmp_path / "file.bin", digest, timeout=5)
    kept = (tmp_path / "file.bin.part").stat().st_size
    assert 0 < kept <= 300_000 and f"at {kept} of {len(PAYLOAD)}" in caught.value.message
    assert not (tmp_path / "file.bin").exists()
    seen = []
    download(f"{base}/file.bin", tmp_path / "file.bin", digest, progress=lambda done, total: seen.append(done))
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert handler.requests == [None, f"bytes={kept}-"]
    assert seen[0] == kept and seen[-1] == len(PAYLOAD)


def test_wrong_bytes_are_refused_and_removed(server, tmp_path):
    base, _ = server
    with pytest.raises(ChecksumMismatch, match="file.bin"):
        download(f"{base}/file.bin", tmp_path / "file.bin", "f" * 64)
    assert not (tmp_path / "file.bin").exists() and not (tmp_path / "file.bin.part").exists()


def test_http_error_is_typed(server, tmp_path):
    base, _ = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{base}/absent.bin", tmp_path / "absent.bin")
