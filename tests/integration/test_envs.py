"""The local runner's environments, built for real with uv: a team runs in its recipe family's pins (not in
the harness's own packages), the environment is built once and reused, and a change to the pins builds
another; a family that is the harness's own lock builds nothing."""

import json
import re
import textwrap

import pytest
import yaml

from harness.catalogue import manifests
from harness.core.settings import Settings
from harness.run import environments, families, inference, runners

from conftest import REPO, copy_project

pytestmark = [pytest.mark.slow, pytest.mark.pypi]

TEAM_CODE = '''
import importlib.util
import os

import cv2
import six


def main(model_dir, input_path, output_path, device):
    assert six.__version__ == "1.16.0", six.__version__         # the team's pin, over the family's 1.17.0
    assert importlib.util.find_spec("dvc") is None              # nothing of the harness's own environment
    for name in sorted(os.listdir(input_path)):
        image = cv2.imread(os.path.join(input_path, name))
        cv2.imwrite(os.path.join(output_path, name), cv2.resize(image, None, fx=4, fy=4))
'''


def lock_pin(name: str) -> str:
    return re.search(rf"^{re.escape(name)}==\S+", (REPO / "requirements.lock").read_text(), re.M).group(0)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    root = copy_project(tmp_path / "project", teams=[], image_sources=True)
    family = root / "containers" / "tiny"
    family.mkdir()
    (family / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    (family / "base.txt").write_text(lock_pin("torch") + "\n")
    (family / "requirements.txt").write_text("\n".join(
        [lock_pin(n) for n in ("numpy", "opencv-python-headless", "pyyaml", "jsonschema")] + ["six==1.17.0"]) + "\n")
    folder = root / "teams" / "tiny-team"
    folder.mkdir()
    (folder / "model.py").write_text(textwrap.dedent(TEAM_CODE))
    (folder / "manifest.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": "tiny-team", "name": "Tiny", "challenge": "mini",
        "entry": {"kind": "ntire-main", "module": "model.py"},
        "runtime": {"scale": 4, "extra_packages": ["six==1.16.0"]}, "container": {"recipe": "tiny"},
        "determinism": {"class": "deterministic"}, "status": {"runnable": True}}))
    monkeypatch.setenv(environments.ENVS_VARIABLE, str(tmp_path / "envs"))
    return root


def run(root, mini_data) -> dict:
    team = manifests.load(root / "teams" / "tiny-team" / "manifest.yaml")
    place = inference.RunPlace("mini", mini_data / "mini" / "LR", root / "weights" / "tiny-team", root / "runs", root)
    return inference.infer_team(team, runners.get("local", Settings()), place, "cpu")


def test_a_family_environment_is_built_from_its_pins_and_reused(tiny, mini_data, tmp_path):
    first = run(tiny, mini_data)
    assert first["status"] == "ok", first["failure"]
    environment = first["runs"][0]["provenance"]["local"]["environment"]
    assert environment["origin"] == "family" and environment["family"] == "tiny"
    assert {"six==1.16.0", lock_pin("torch"), lock_pin("numpy")} <= set(environment["packages"])
    # two environments: the family's own, and a hard-linked copy of it with the team's extra packages
    made = sorted(p for p in (tmp_path / "envs").iterdir() if not p.name.startswith("."))
    extras = {p.name: json.loads((p / environments.RECORD).read_text())["extras"] for p in made}
    assert sorted(extras.values()) == [[], ["six==1.16.0"]], extras
    [built] = [p for p in made if extras[p.name]]
    stamps = {p.name: (p / environments.RECORD).stat().st_mtime_ns for p in made}
    second = run(tiny, mini_data)
    assert second["status"] == "ok" and second["runs"][0]["provenance"]["local"]["environment"]["key"] == \
        environment["key"]
    again = sorted(p for p in (tmp_path / "envs").iterdir() if not p.name.startswith("."))
    assert {p.name: (p / environments.RECORD).stat().st_mtime_ns for p in again} == stamps  # reused, not rebuilt
    requirements = tiny / "containers" / "tiny" / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("six==1.17.0", "six==1.16.0"))
    team = manifests.load(tiny / "teams" / "tiny-team" / "manifest.yaml")
    assert environments.planned(team)[1] != built.name  # other pins, another environment


def test_a_family_that_is_the_lock_needs_no_environment_of_its_own():
    bicubic = manifests.load(REPO / "teams" / "bicubic" / "manifest.yaml")
    family, name = environments.planned(bicubic)
    assert family.name == "spandrel-torch26" and family.is_the_lock() and name is None
    junyi = manifests.load(REPO / "teams" / "junyi" / "manifest.yaml")
    family, name = environments.planned(junyi)
    assert family.name == "torch26-cu124" and name.startswith("torch26-cu124-")
    steps = [step.label for step in families.of_team(manifests.load(REPO / "teams" / "acvlab" / "manifest.yaml"))
             .steps(("basicsr==1.4.2",))]
    assert steps == ["base.txt", "requirements.txt", "requirements-source.txt", "runtime.extra_packages"]
    # the image installs the same files: each family's Dockerfile names its requirements files
    for folder in (REPO / "containers").iterdir():
        dockerfile = folder / "Dockerfile"
        if folder.name in ("evaluator", "local-base") or not dockerfile.exists():
            continue
        text = dockerfile.read_text()
        for requirements in ("requirements.txt", "requirements-source.txt"):
            if (folder / requirements).exists():
                assert f"containers/{folder.name}/{requirements}" in text, (folder.name, requirements)
    assert json.loads(json.dumps(environments.harness_environment().describe()))["origin"] == "harness"
