"""The evaluate-only route on stand-in outputs made from the mini data, served from 127.0.0.1."""

import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.core.errors import DatasetError
from harness.fetch.archives import materialise
from harness.imaging.matlab_resize import imresize
from harness.imaging.pictures import encode_png, read_rgb8

from conftest import copy_project, harness_cli

pytestmark = [pytest.mark.slow, pytest.mark.network]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def env(niqe_cache, downloads):
    return {"HARNESS_METRIC_WEIGHTS": str(niqe_cache), "HARNESS_DOWNLOADS": str(downloads)}


def stand_in_outputs(mini_data):
    """What the organizers would publish for 'bicubic': its x4 outputs, named like the LR inputs."""
    return {p.name: encode_png(imresize(read_rgb8(p), 4)) for p in sorted((mini_data / "mini" / "LR").glob("*.png"))}


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
    return buffer.getvalue()


@pytest.fixture
def project_with_data(project, mini_data):
    import shutil

    shutil.copytree(mini_data / "mini", project / "data" / "mini")
    return project


def test_archive_over_http_reproduces_exact_and_a_perturbed_image_diverges(project_with_data, mini_data, served, env):
    project, (www, base) = project_with_data, served
    outputs = stand_in_outputs(mini_data)
    # One archive with every team's folder, as the organizers published them.
    entries = {f"outputs/team_bicubic/{name}": data for name, data in outputs.items()}
    entries.update({f"outputs/team_other/{name}": b"not ours" for name in outputs})
    (www / "all.zip").write_bytes(zip_of(entries))
    manifest = project / "teams" / "bicubic" / "manifest.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["published"]["mini"]["outputs"] = {"source": {"kind": "url", "url": f"{base}/all.zip"},
                                            "folder": "team_bicubic"}
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))

    done = harness_cli("verify", "bicubic", "--from-outputs", "--json", "v.json", cwd=project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((project / "v.json").read_text())
    assert result["verdict"] == "exact" and result["source"] == "published outputs"
    record = json.loads((project / "runs" / "mini" / "bicubic" / "record.json").read_text())
    assert record["runner"] == "published-outputs" and record["source"] == f"{base}/all.zip"

    noisy = read_rgb8(mini_data / "mini" / "HR" / "0003.png").astype(np.int16)
    image = np.clip(read_rgb8(project / "runs" / "mini" / "bicubic" / "run-1" / "0003x4.png").astype(np.int16)
                    + np.random.default_rng(0).integers(-40, 41, noisy.shape), 0, 255).astype(np.uint8)
    perturbed = dict(outputs, **{"0003x4.png": encode_png(image)})
    (www / "perturbed.zip").write_bytes(zip_of({f"team_bicubic/{k}": v for k, v in perturbed.items()}))
    done = harness_cli("verify", "bicubic", "--from-outputs", f"{base}/perturbed.zip", "--json", "p.json",
                       cwd=project, env=env)
    assert done.returncode == 1
    result = json.loads((project / "p.json").read_text())
    assert result["verdict"] == "diverged" and result["exact_outputs"] is False
    evidence = result["metrics"]["psnr"]["per_image"]
    assert min(evidence, key=evidence.get) == "0003"  # the perturbed image is the worst
    assert "per image, worst first: 0003" in done.stdout


def test_audit_from_a_folder_keeps_going_past_a_team_without_outputs(project_with_data, mini_data, env, tmp_path):
    project = project_with_data
    folder = tmp_path / "published" / "bicubic"
    folder.mkdir(parents=True)
    for name, payload in stand_in_outputs(mini_data).items():
        (folder / name).write_bytes(payload)
    done = harness_cli("audit", "--from-outputs", str(folder), "--teams", "bicubic", cwd=project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUMMARY: 1 team(s): 1 exact" in done.stdout
    done = harness_cli("audit", "--from-outputs", str(tmp_path / "nowhere"), "--teams", "bicubic,random-tta",
                       cwd=project, env=env)
    assert done.returncode == 1 and "2 failed" in done.stdout
    report = json.loads((project / "report" / "report.json").read_text())
    assert {t["failure"]["kind"] for t in report["teams"]} == {"outputs_unavailable"}


def test_zip_slip_is_refused(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(zip_of({"ok/0001x4.png": b"x", "../../escape.png": b"x"}))
    with pytest.raises(DatasetError, match="outside the target"):
        materialise(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "0001x4.png").exists() and not (tmp_path.parent / "escape.png").exists()


def test_dvc_route_with_source_outputs(tmp_path, mini_data, downloads):
    root = copy_project(tmp_path / "repo", teams=["bicubic"])
    folder = tmp_path / "published"
    folder.mkdir()
    for name, payload in stand_in_outputs(mini_data).items():
        (folder / name).write_bytes(payload)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params.update(source="outputs", outputs=str(folder), metrics=["psnr", "ssim", "niqe"])
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "HARNESS_DOWNLOADS": str(downloads),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        subprocess.run(command, cwd=root, env=env, check=True)
    done = subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published outputs collected" in done.stdout
    shown = subprocess.run([sys.executable, "-m", "harness.cli", "report", "--show"], cwd=root, env=env,
                           capture_output=True, text=True)  # the stage is quiet: the story is told once, here
    assert shown.returncode == 0 and "SUMMARY: 1 team(s): 1 exact" in shown.stdout, shown.stdout + shown.stderr
