"""The docker runner and the evaluator image on a real engine: every failure type produced for real by a
purpose-built team image, the lock-down proven (no network, nothing written outside the output folder),
and the mini suite through `dvc repro` with verdicts and outputs equal to the local runner's."""

import http.server
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
import yaml

from harness.catalogue import datasets as data_mod
from harness.catalogue import manifests
from harness.core.settings import DockerSettings, Settings
from harness.run import inference, sandbox
from harness.run.runners.docker import DockerRunner
from harness.run.runners.local import LocalRunner

from conftest import LOCAL_BASE, copy_project, set_params

pytestmark = [pytest.mark.slow, pytest.mark.docker]
SUITE = ["bicubic", "realesrgan-x4plus", "realesr-animevideov3", "random-tta"]
DOCKER = {"base_image": LOCAL_BASE, "cpus": 2, "memory_gb": 4, "scratch_gb": 1}  # as params.yaml says it
SETTINGS = DockerSettings(**DOCKER)

UPSCALE = '''
import os
import cv2


def upscale_all(input_path, output_path, factor=4, names=None):
    for name in sorted(os.listdir(input_path)):
        if names is None or name in names:
            image = cv2.imread(os.path.join(input_path, name))
            out = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
            cv2.imwrite(os.path.join(output_path, name), out)
'''

PROBES = {
    "sleeper": ("import time\n\ndef main(model_dir, input_path, output_path, device):\n    time.sleep(600)\n",
                {"timeout_s": 8}),
    "memory-hog": ("import numpy as np\n\ndef main(model_dir, input_path, output_path, device):\n"
                   "    blocks = [np.ones(256 * 2 ** 20, dtype=np.uint8) for _ in range(16)]\n", {"memory_gb": 1}),
    "wrong-size": (UPSCALE + "\ndef main(model_dir, input_path, output_path, device):\n"
                   "    upscale_all(input_path, output_path, factor=2)\n", {}),
    "extra-output": (UPSCALE + "\nimport shutil\n\ndef main(model_dir, input_path, output_path, device):\n"
                     "    upscale_all(input_path, output_path)\n    shutil.copy(os.path.join(output_path, "
                     "'0001x4.png'), os.path.join(output_path, 'bonus.png'))\n", {}),
    "missing-output": (UPSCALE + "\ndef main(model_dir, input_path, output_path, device):\n"
                       "    upscale_all(input_path, output_path, names=['0001x4.png'])\n", {}),
    "crasher": ("import os\n\ndef main(model_dir, input_path, output_path, device):\n    os._exit(5)\n", {}),
    "nearest": (UPSCALE + "\ndef main(model_dir, input_path, output_path, device):\n"
                "    upscale_all(input_path, output_path)\n", {}),
}

NETWORK_PROBE = '''
import urllib.request


def main(model_dir, input_path, output_path, device, url):
    urllib.request.urlopen(url, timeout=10).read()
'''

# Tries to write next to its inputs, its weights, its own code and at the image's root; reports each.
ESCAPE_PROBE = '''
import os


def main(model_dir, input_path, output_path, device):
    targets = [os.path.join(input_path, "escape.png"), os.path.join(model_dir, "escape.bin"),
               os.path.join(os.path.dirname(os.path.abspath(__file__)), "escape.py")]
    if os.getuid() == 10001:  # the runners' container user; the local control never writes at the host's /
        targets.append("/escape-root")
    for target in targets:
        try:
            with open(target, "w") as handle:
                handle.write("x")
            print("ESCAPED", target, flush=True)
        except OSError as exc:
            print("refused", target, exc, flush=True)
    with open(os.path.join(output_path, "probe.txt"), "w") as handle:
        handle.write("the output folder is writable")
    raise RuntimeError("probe finished")
'''


def add_team(root: Path, team_id: str, model_py: str, runtime: dict | None = None, **extra) -> Path:
    folder = root / "teams" / team_id
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(textwrap.dedent(model_py))
    entry = {"kind": "ntire-main", "module": "model.py", "function": "main"}
    if "kwargs" in extra:
        entry["kwargs"] = extra.pop("kwargs")
    data = {"schema_version": 1, "id": team_id, "name": f"Probe {team_id}", "challenge": "mini",
            "published": {"mini": {"values": {"psnr": 28.0}, "precision": {"psnr": 2},
                                   "source": {"kind": "reference-run", "citation": "test probe"}}},
            "entry": entry, "runtime": {"scale": 4, "devices": ["cpu", "cuda"], "timeout_s": 300, **(runtime or {})},
            "determinism": {"class": "deterministic"}, "status": {"runnable": True},
            "container": extra.pop("container", {"recipe": "spandrel-torch26"})}
    (folder / "manifest.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "manifest.yaml"


@pytest.fixture(scope="module")
def probes(tmp_path_factory, docker_client):
    root = copy_project(tmp_path_factory.mktemp("probes") / "project", teams=[], image_sources=True)
    for team_id, (code, runtime) in PROBES.items():
        add_team(root, team_id, code, runtime)
    return root


def run_team(root: Path, team_id: str, mini_data: Path, runner, device: str = "cpu", weights: Path | None = None):
    team = manifests.load(root / "teams" / team_id / "manifest.yaml")
    lr_dir = data_mod.get("mini").lr_dir(mini_data)
    place = inference.RunPlace("mini", lr_dir, weights or root / "weights" / team_id, root / "runs", root)
    return inference.infer_team(team, runner, place, device)


@pytest.fixture(scope="module")
def runner(docker_client):
    return DockerRunner(SETTINGS, docker_client)


@pytest.mark.parametrize("team_id, kind", [
    ("sleeper", "timeout"), ("memory-hog", "out_of_memory"), ("wrong-size", "wrong_size"),
    ("extra-output", "extra_output"), ("missing-output", "missing_output"), ("crasher", "nonzero_exit")])
def test_each_failure_type_is_produced_and_typed(probes, mini_data, runner, team_id, kind):
    record = run_team(probes, team_id, mini_data, runner)
    assert record["status"] == "failed", record
    assert record["failure"]["kind"] == kind, record["failure"]
    assert not inference.run_dirs(probes / "runs", "mini", team_id)  # no half run left behind
    assert (probes / "runs" / "mini" / team_id / "logs" / "run-1.log").exists()
    if kind == "out_of_memory":
        assert "memory limit of 1 GiB" in record["failure"]["message"]


def test_a_working_probe_runs_with_provenance_from_inside_and_outside(probes, mini_data, runner):
    record = run_team(probes, "nearest", mini_data, runner)
    assert record["status"] == "ok", record["failure"]
    provenance = record["runs"][0]["provenance"]
    assert provenance["torch"].startswith("2.6.0") and provenance["cpu"]  # written inside the container
    container = provenance["container"]  # added by the host
    assert container["network"] == "none" and container["read_only_rootfs"] and container["user"] == "10001:10001"
    assert container["image_id"].startswith("sha256:") and container["limits"]["memory_bytes"] == 4 * 2 ** 30
    session = json.loads((probes / "runs" / "mini" / "nearest" / "run-1" / "session.json").read_text())
    assert {"git_sha", "platform", "pid"} <= set(session["host"])  # volatile facts: beside the run, out of its hash
    image = runner.client.images.get(container["image_id"])
    team = manifests.load(probes / "teams" / "nearest" / "manifest.yaml")
    assert image.labels["org.harness.manifest-hash"] == team.hash
    assert image.labels["org.harness.version"]


def test_an_image_is_rebuilt_only_when_its_inputs_change(probes, mini_data, docker_client):
    first = DockerRunner(SETTINGS, docker_client)
    team = manifests.load(probes / "teams" / "nearest" / "manifest.yaml")
    log = probes / "build.log"
    built = first.image_for(team, probes, log)
    again = DockerRunner(SETTINGS, docker_client).image_for(team, probes, log)
    assert again["id"] == built["id"] and again["built"] is False
    (probes / "teams" / "nearest" / "model.py").write_text((probes / "teams" / "nearest" / "model.py").read_text()
                                                           + f"\n# changed {uuid.uuid4()}\n")
    changed = DockerRunner(SETTINGS, docker_client).image_for(manifests.load(team.path), probes, log)
    assert changed["built"] is True and changed["id"] != built["id"]


def test_a_failing_build_is_typed_with_its_log(tmp_path, mini_data, docker_client):
    root = copy_project(tmp_path / "project", teams=[], image_sources=True)
    add_team(root, "nearest", PROBES["nearest"][0])
    recipe = root / "containers" / "spandrel-torch26" / "Dockerfile"
    recipe.write_text(recipe.read_text() + "RUN echo 'the recipe breaks here' && exit 7\n")
    record = run_team(root, "nearest", mini_data, DockerRunner(SETTINGS, docker_client))
    assert record["failure"]["kind"] == "build_failed"
    assert "the recipe breaks here" in record["failure"]["log_tail"]


def test_a_pinned_image_that_is_absent_is_image_missing(tmp_path, mini_data, docker_client):
    root = copy_project(tmp_path / "project", teams=[], image_sources=True)
    add_team(root, "pinned", PROBES["nearest"][0], container={"image": "sha256:" + "0" * 64})
    record = run_team(root, "pinned", mini_data, DockerRunner(SETTINGS, docker_client))
    assert record["failure"]["kind"] == "image_missing", record["failure"]


def test_a_gpu_request_without_a_gpu_runtime_is_no_gpu(probes, mini_data, runner, docker_client):
    if "nvidia" in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("this engine has the NVIDIA runtime; the GPU path is exercised instead")
    record = run_team(probes, "nearest", mini_data, runner, device="cuda")
    assert record["failure"]["kind"] == "no_gpu", record["failure"]
    assert "NVIDIA Container Toolkit" in record["failure"]["hint"]


class CountingHandler(http.server.BaseHTTPRequestHandler):
    hits = []

    def do_GET(self):
        CountingHandler.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"reached")

    def log_message(self, *args):
        pass


def bridge_gateway(client) -> str:
    """The host's address on the default bridge (the subnet's first address when the engine omits it)."""
    import ipaddress

    config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def test_a_container_cannot_reach_the_network(tmp_path, mini_data, docker_client):
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), CountingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://{bridge_gateway(docker_client)}:{server.server_address[1]}/probe"
    try:
        root = copy_project(tmp_path / "project", teams=[], image_sources=True)
        add_team(root, "network-probe", NETWORK_PROBE, kwargs={"url": url})
        runner = DockerRunner(SETTINGS, docker_client)
        record = run_team(root, "network-probe", mini_data, runner)
        assert record["failure"]["kind"] == "entry_error"
        assert "URLError" in record["failure"]["message"] or "unreachable" in record["failure"]["message"]
        assert CountingHandler.hits == []
        # The control: the same image on the default bridge network does reach the server.
        image = runner.images["network-probe"]["id"]
        docker_client.containers.run(image, entrypoint=["python", "-c", "import sys, urllib.request; "
                                                        "urllib.request.urlopen(sys.argv[1], timeout=10)"],
                                     command=[url], network_mode="bridge", remove=True)
        assert CountingHandler.hits == ["/probe"]
    finally:
        server.shutdown()


def test_a_container_cannot_write_outside_its_output_folder(tmp_path, mini_data, docker_client, monkeypatch):
    root = copy_project(tmp_path / "project", teams=[], image_sources=True)
    add_team(root, "escape-probe", ESCAPE_PROBE)
    weights = root / "weights" / "escape-probe"
    weights.mkdir(parents=True)
    lr_copy = tmp_path / "lr"
    lr_copy.mkdir()
    for path in data_mod.get("mini").lr_dir(mini_data).glob("*.png"):
        (lr_copy / path.name).write_bytes(path.read_bytes())
    team = manifests.load(root / "teams" / "escape-probe" / "manifest.yaml")

    place = inference.RunPlace("mini", lr_copy, weights, root / "runs", root)
    record = inference.infer_team(team, DockerRunner(SETTINGS, docker_client), place, "cpu")
    log = (root / "runs" / "mini" / "escape-probe" / "logs" / "run-1.log").read_text()
    assert record["failure"]["kind"] == "entry_error" and "probe finished" in record["failure"]["message"]
    assert "ESCAPED" not in log
    assert log.count("refused") == 4 and "Read-only file system" in log
    assert not list(lr_copy.glob("escape*")) and not list(weights.glob("escape*"))

    # The control: outside any container or sandbox (none here, and the loud opt-in) the same code does write there.
    monkeypatch.setattr(sandbox, "problem", lambda: "no sandbox, for the control")
    place = inference.RunPlace("mini", lr_copy, weights, root / "runs-local", root)
    local = inference.infer_team(team, LocalRunner(unsafe_no_sandbox=True), place, "cpu")
    assert local["failure"]["kind"] == "entry_error"
    assert (lr_copy / "escape.png").exists() and (weights / "escape.bin").exists()


@pytest.fixture(scope="module")
def docker_pipeline(tmp_path_factory, downloads, docker_client):
    root = copy_project(tmp_path_factory.mktemp("docker-audit") / "repo", teams=SUITE, image_sources=True)
    set_params(root, runner="docker", evaluator="docker", metrics=["psnr", "ssim", "niqe"], docker=DOCKER)
    env = {**os.environ, "HARNESS_DOWNLOADS": str(downloads),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("HARNESS_METRIC_WEIGHTS", None)
    told = ""
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                    ["dvc", "repro"], [sys.executable, "-m", "harness.cli", "report", "--show"]):
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{command} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
        told += done.stdout + done.stderr
    return root, told  # the pipeline's stages, then the story told once


def test_dvc_repro_runs_the_mini_suite_in_containers_with_the_local_verdicts(docker_pipeline, mini_data):
    root, output = docker_pipeline
    # bicubic's bytes are the same everywhere; ncnn's kernels differ by CPU (AVX2, AVX-512), so the two
    # Real-ESRGAN teams are exact on the machine their digests were taken on and reproduced on others
    summary = re.search(r"SUMMARY: 4 team\(s\): (\d) exact, (\d) reproduced, 0 diverged, 0 failed, 0 not runnable",
                        output)
    assert summary and int(summary[1]) >= 1 and int(summary[1]) + int(summary[2]) == 4, output
    report = {t["team"]: t for t in json.loads((root / "report" / "report.json").read_text())["teams"]}
    for team in SUITE:
        assert report[team]["ran_with"]["runner"] == "docker"
        assert report[team]["ran_with"]["image"].startswith(f"harness/{team}:")
        assert report[team]["scored_by"]["runner"] == "docker"
        assert report[team]["scored_by"]["image"].startswith("harness/evaluator:")
    assert "harness/evaluator:" in (root / "report" / "report.md").read_text()
    # Bit-identical to the local runner, for each deterministic team, in this process's environment.
    for team_id in ("bicubic", "realesr-animevideov3"):
        in_container = inference.load_record(root / "runs", "mini", team_id).runs[0]["provenance"]
        team = manifests.load(root / "teams" / team_id / "manifest.yaml")
        place = inference.RunPlace("mini", data_mod.get("mini").lr_dir(mini_data), root / "weights" / team_id,
                                   root / "runs-local", root)
        local = inference.infer_team(team, LocalRunner(), place, "cpu")
        assert local["runs"][0]["provenance"]["outputs_sha256"] == in_container["outputs_sha256"]


def test_auto_picks_docker_when_an_engine_answers_and_says_so(docker_client):
    from harness.run import runners

    chosen = runners.get("auto", Settings(docker=SETTINGS))
    assert chosen.name == "docker" and chosen.selection.startswith("auto: docker (Docker engine")
