"""`runner: auto` without an engine, and the docker settings' validation (no engine needed)."""

import pytest

from harness.catalogue import audit_params
from harness.core.errors import HarnessError
from harness.core.project import Project
from harness.run import runners
from harness.run.lockdown import device_requests


def test_auto_falls_back_to_local_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    chosen = runners.get("auto")
    assert chosen.name == "local"
    assert chosen.selection.startswith("auto: local (no Docker engine answers")


def test_docker_without_an_engine_is_an_error_with_a_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(HarnessError) as caught:
        runners.get("docker")
    assert "start dockerd" in caught.value.hint


def test_unknown_runner_lists_the_known_ones():
    with pytest.raises(HarnessError) as caught:
        runners.get("kubernetes")
    assert "auto, local, docker" in caught.value.hint


@pytest.mark.parametrize("gpus, expected", [
    ("all", {"Count": -1}), (2, {"Count": 2}), ("device=0,3", {"DeviceIDs": ["0", "3"]})])
def test_gpu_settings_become_device_requests(gpus, expected):
    (request,) = device_requests(gpus, "cuda")
    assert {k: request[k] for k in expected} == expected
    assert request["Capabilities"] == [["gpu"]]


def test_cpu_runs_request_no_gpu_and_bad_gpu_settings_are_refused():
    assert device_requests("all", "cpu") == []
    with pytest.raises(HarnessError):
        device_requests("some", "cuda")


def test_unknown_docker_settings_are_refused(tmp_path):
    (tmp_path / "teams").mkdir()
    (tmp_path / "params.yaml").write_text("docker:\n  memroy_gb: 8\n")
    with pytest.raises(HarnessError) as caught:
        audit_params.read(Project(tmp_path))
    assert "memroy_gb" in caught.value.message and "memory_gb" in caught.value.hint
