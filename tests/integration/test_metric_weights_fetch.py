"""The learned metrics' weights fetched from a loopback mirror (HARNESS_METRIC_WEIGHTS_MIRROR): pinned in
checksums.json at the first fetch, a changed file refused by name, a torch-hub name's hash prefix enforced.
The served files are stand-in bytes: what is tested is the transfer and the checks, not the networks."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.catalogue import metrics as M
from harness.fetch import metric_weights

pytestmark = pytest.mark.network
MANIQA_CKPT = "torch/hub/pyiqa/ckpt_koniq10k.pt"
ALEXNET = "torch/hub/checkpoints/alexnet-owt-7be5be79.pth"


class Mirror(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = type(self).files.get(self.path.rsplit("/", 1)[-1])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def mirror(monkeypatch):
    Mirror.files = {"ckpt_koniq10k.pt": os.urandom(200_000), "alexnet-owt-7be5be79.pth": os.urandom(1000)}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv(metric_weights.MIRROR_VARIABLE, f"http://127.0.0.1:{httpd.server_address[1]}/weights")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the ViT comes from the Hugging Face hub, not the mirror
    yield Mirror
    httpd.shutdown()


def test_a_first_fetch_pins_and_a_changed_file_is_refused_by_name(mirror, tmp_path):
    cache = tmp_path / "cache"
    status = metric_weights.fetch(["maniqa"], cache, tmp_path / "downloads")
    assert status[MANIQA_CKPT] == "fetched"
    assert status[M.METRICS["maniqa"].weight_files[1].path].startswith("failed: ")  # offline hub: reported, not hidden
    pins = json.loads((cache / metric_weights.CHECKSUMS).read_text())
    assert list(pins) == [MANIQA_CKPT]
    (cache / MANIQA_CKPT).unlink()
    mirror.files["ckpt_koniq10k.pt"] = os.urandom(200_000)
    status = metric_weights.fetch(["maniqa"], cache, tmp_path / "downloads")
    assert status[MANIQA_CKPT].startswith(f"failed: {MANIQA_CKPT}: sha256 ")
    assert "differs from the pinned" in status[MANIQA_CKPT]
    assert not (cache / MANIQA_CKPT).exists()  # refused bytes are not left where pyiqa would load them


def test_a_torch_hub_file_must_match_the_hash_in_its_name(mirror, tmp_path):
    status = metric_weights.fetch(["lpips"], tmp_path / "cache", tmp_path / "downloads")
    assert status[ALEXNET].startswith(f"failed: {ALEXNET}: sha256 ")
    assert not (tmp_path / "cache" / ALEXNET).exists()
    assert "does not start with 7be5be79" in status[ALEXNET]
