"""A hostile team, run for real: it tries to read a key planted in HOME, forge a result in the project,
reach a listener on 127.0.0.1, flood its log and leave a daemon behind. The local runner's sandbox
(bubblewrap) and the docker runner's container must stop every one of these, and the team's honest
outputs still count."""

import json
import os
import shutil
import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from harness.adapter import protocol
from harness.catalogue import manifests
from harness.core.errors import InferenceFailed
from harness.core.settings import DockerSettings, Settings
from harness.run import inference, runners, sandbox

from conftest import LOCAL_BASE, copy_project

HOSTILE = '''
import json, os, socket, sys, time
from pathlib import Path

import cv2

HERE = Path(__file__).resolve().parent
TARGETS = json.loads((HERE / "targets.json").read_text())


def attempt(name, action):
    try:
        result = action()
        print(f"ATTACK {name}: went through {result!r}"[:300], flush=True)
    except Exception as exc:
        print(f"ATTACK {name}: refused ({type(exc).__name__})", flush=True)


def main(model_dir, input_path, output_path, device):
    attempt("read the key", lambda: print("KEY", open(TARGETS["key"]).read(), flush=True))
    attempt("read ~/.ssh", lambda: print("KEY", open(os.path.expanduser("~/.ssh/id_rsa")).read(), flush=True))
    attempt("forge a result", lambda: open(os.path.join(TARGETS["evaluations"], "forged.json"), "w").write("{}"))
    attempt("connect", lambda: socket.create_connection(("127.0.0.1", TARGETS["port"]), timeout=3).sendall(b"hi"))
    if os.fork() == 0:  # a daemon: double fork, new session, writes after the run has ended
        os.setsid()
        if os.fork() == 0:
            os.execvp("sh", ["sh", "-c", f"sleep 4; echo late > {output_path}/late.png; "
                                         f"echo late > {TARGETS['late']}; echo {TARGETS['marker']}"])
        os._exit(0)
    for _ in range(TARGETS["flood_mb"] * 1024):
        sys.stdout.write("x" * 1023 + "\\n")
    sys.stdout.flush()
    for name in sorted(os.listdir(input_path)):
        image = cv2.imread(os.path.join(input_path, name))
        cv2.imwrite(os.path.join(output_path, name), cv2.resize(image, None, fx=4, fy=4,
                                                                interpolation=cv2.INTER_NEAREST))
'''


@pytest.fixture
def hostile(tmp_path, mini_data, monkeypatch):
    """The hostile team in a project, the secrets and the listener it goes for."""
    root = copy_project(tmp_path / "project", teams=[], image_sources=True)
    folder = root / "teams" / "hostile"
    folder.mkdir()
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_rsa"
    key.write_text("-----BEGIN CANARY PRIVATE KEY-----\n")
    monkeypatch.setenv("HOME", str(home))
    (root / "evaluations").mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.5)
    accepted = []

    def accept():
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    stop = threading.Event()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    marker = f"hostile-daemon-{os.getpid()}-{time.time_ns()}"
    (folder / "targets.json").write_text(json.dumps({
        "key": str(key), "evaluations": str(root / "evaluations"), "port": listener.getsockname()[1],
        "late": str(tmp_path / "late.txt"), "marker": marker, "flood_mb": 24}))
    (folder / "hostile.py").write_text(textwrap.dedent(HOSTILE))
    (folder / "manifest.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": "hostile", "name": "Hostile", "challenge": "mini",
        "published": {"mini": {"values": {"psnr": 20.0}, "precision": {"psnr": 2},
                               "source": {"kind": "reference-run", "citation": "test"}}},
        "entry": {"kind": "ntire-main", "module": "hostile.py"}, "runtime": {"scale": 4, "timeout_s": 300},
        "container": {"recipe": "spandrel-torch26"},
        "determinism": {"class": "deterministic"}, "status": {"runnable": True}}))
    yield {"root": root, "team": manifests.load(folder / "manifest.yaml"), "lr": mini_data / "mini" / "LR",
           "key": key, "late": tmp_path / "late.txt", "marker": marker, "accepted": accepted}
    stop.set()
    listener.close()


def _left_alive(marker: str) -> list[str]:
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                alive.append(cmdline.parent.name)
        except OSError:
            continue
    return alive


def _assert_contained(hostile, record: dict) -> None:
    root = hostile["root"]
    log = (root / "runs" / "mini" / "hostile" / "logs" / "run-1.log").read_bytes()
    assert record["status"] == "ok", record.get("failure")
    assert b"CANARY" not in log  # the key in HOME stayed unread
    assert b"ATTACK read the key: refused" in log and b"ATTACK read ~/.ssh: refused" in log
    assert not (root / "evaluations" / "forged.json").exists()  # nothing forged in the project
    assert b"ATTACK connect: refused" in log and not hostile["accepted"]  # no connection reached 127.0.0.1
    assert len(log) <= protocol.LOG_LIMIT_BYTES + 1000 and b"the log reached its limit" in log
    time.sleep(6)  # past the daemon's moment
    assert not hostile["late"].exists()
    assert not (root / "runs" / "mini" / "hostile" / "run-1" / "late.png").exists()
    assert _left_alive(hostile["marker"]) == []


@pytest.mark.slow
def test_the_local_runner_contains_a_hostile_team(hostile):
    if sandbox.problem():
        if os.environ.get("CI") == "true":
            pytest.fail(f"no sandbox in CI: {sandbox.problem()} (`make sandbox`)")
        pytest.skip(sandbox.problem())
    runner = runners.get("local", Settings())
    place = inference.RunPlace("mini", hostile["lr"], hostile["root"] / "weights" / "hostile",
                               hostile["root"] / "runs", hostile["root"])
    record = inference.infer_team(hostile["team"], runner, place, "cpu")
    _assert_contained(hostile, record)
    local = record["runs"][0]["provenance"]["local"]
    assert local["containment"] == "sandbox" and local["sandbox"]["network"] == "none"


@pytest.mark.slow
@pytest.mark.docker
def test_the_docker_runner_contains_the_same_team(hostile, docker_client):
    runner = runners.get("docker", Settings(docker=DockerSettings(base_image=LOCAL_BASE)))
    place = inference.RunPlace("mini", hostile["lr"], hostile["root"] / "weights" / "hostile",
                               hostile["root"] / "runs", hostile["root"])
    record = inference.infer_team(hostile["team"], runner, place, "cpu")
    _assert_contained(hostile, record)


def test_without_a_sandbox_untrusted_code_is_refused_and_trusted_code_runs(hostile, monkeypatch, mini_data):
    monkeypatch.setenv("PATH", "/nonexistent")  # no bwrap on the PATH
    monkeypatch.delenv("HARNESS_UNSAFE_NO_SANDBOX", raising=False)
    sandbox.problem.cache_clear()
    try:
        runner = runners.get("local", Settings())
        with pytest.raises(InferenceFailed) as refused:
            runner.containment(hostile["team"])
        assert refused.value.kind == "sandbox_unavailable" and "--unsafe-no-sandbox" in refused.value.hint
        place = inference.RunPlace("mini", hostile["lr"], hostile["root"] / "weights" / "hostile",
                                   hostile["root"] / "runs", hostile["root"])
        record = inference.infer_team(hostile["team"], runner, place, "cpu")
        assert record["status"] == "failed" and record["failure"]["kind"] == "sandbox_unavailable"
        assert not list((hostile["root"] / "runs" / "mini" / "hostile").glob("run-*"))
        teams = Path(__file__).resolve().parents[2] / "teams"
        bicubic = manifests.load(teams / "bicubic" / "manifest.yaml")
        assert runner.containment(bicubic) == "trusted"  # it runs only the harness's own code
        # The mini suite's own code is trusted by its bytes (pinned in challenges/mini.yaml), not by its name:
        # the hostile team claims the same challenge and is refused above; a changed copy is refused too.
        assert runner.containment(manifests.load(teams / "random-tta" / "manifest.yaml")) == "trusted"
        changed = hostile["root"] / "teams" / "random-tta"
        shutil.copytree(teams / "random-tta", changed, dirs_exist_ok=True)
        (changed / "model.py").write_text((changed / "model.py").read_text() + "\nimport os  # one more line\n")
        with pytest.raises(InferenceFailed):
            runner.containment(manifests.load(changed / "manifest.yaml"))
    finally:
        sandbox.problem.cache_clear()
