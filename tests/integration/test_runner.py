"""The local runner and the adapter on real team code: outputs, provenance and every failure type."""

import json
import textwrap

import pytest
import yaml

from harness.catalogue import manifests as manifest_mod
from harness.run import inference
from harness.run.runners.local import LocalRunner
from harness.verdict import rules

pytestmark = pytest.mark.slow


def make_team(project, team_id, body, timeout_s=120, runnable=True):
    """A team folder whose main() is `body` (given the NTIRE arguments)."""
    folder = project / "teams" / team_id
    folder.mkdir(parents=True)
    (folder / "model.py").write_text("import os, time, cv2, numpy as np\n\n"
                                     "def main(model_dir, input_path, output_path, device):\n"
                                     + textwrap.indent(textwrap.dedent(body), "    "))
    manifest = {
        "schema_version": 1, "id": team_id, "name": team_id, "challenge": "mini",
        "published": {"mini": {"values": {"psnr": 29.33}, "precision": {"psnr": 2},
                               "source": {"kind": "reference-run", "citation": "test"}}},
        "entry": {"kind": "ntire-main", "module": "model.py"},
        "runtime": {"scale": 4, "timeout_s": timeout_s},
        "determinism": {"class": "deterministic"},
        "status": {"runnable": runnable, **({} if runnable else {"reasons": ["no inference script"]})},
    }
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return manifest_mod.load(folder / "manifest.yaml")


UPSCALE = """
for name in sorted(os.listdir(input_path)):
    lr = cv2.imread(os.path.join(input_path, name))
    cv2.imwrite(os.path.join(output_path, name), cv2.resize(lr, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC))
"""


def run(project, mini_data, team):
    place = inference.RunPlace("mini", mini_data / "mini" / "LR", project / "weights" / team.id,
                               project / "runs", project)
    return inference.infer_team(team, LocalRunner(), place, "cpu")


def test_a_good_team_writes_outputs_and_provenance(project, mini_data):
    team = make_team(project, "good", UPSCALE)
    record = run(project, mini_data, team)
    assert record["status"] == "ok" and record["runner"] == "local"
    out = project / "runs" / "mini" / "good" / "run-1"
    provenance = json.loads((out / "provenance.json").read_text())
    assert sorted(provenance["outputs_sha256"]) == sorted(p.name for p in (mini_data / "mini" / "LR").glob("*.png"))
    for key in ("harness_version", "manifest_hash", "torch", "cuda", "device", "seed", "determinism_flags",
                "inputs_sha256", "outputs_sha256"):
        assert key in provenance  # what the run is made of (DVC hashes it)
    session = json.loads((out / "session.json").read_text())
    for key in ("git_sha", "platform", "started", "wall_s", "seconds_per_image"):
        assert key in session  # when, where and how long: beside the run, out of its hash
    assert provenance["manifest_hash"] == team.hash and provenance["device"] == "cpu"
    assert json.loads((project / "runs" / "mini" / "good" / "record.json").read_text())["status"] == "ok"


@pytest.mark.parametrize("team_id,body,kind,words", [
    ("raises", "raise ValueError('bad checkpoint')", "entry_error", "bad checkpoint"),
    ("hog", "import torch\ntorch.empty(10**13)", "out_of_memory", "memory"),
    ("exits", "os._exit(5)", "nonzero_exit", "code 5"),
    ("killed", "import signal\nos.kill(os.getpid(), signal.SIGKILL)", "killed", "SIGKILL"),
    ("partial", UPSCALE + "os.remove(os.path.join(output_path, '0002x4.png'))", "missing_output", "0002x4.png"),
    ("extra", UPSCALE + "open(os.path.join(output_path, 'extra.png'), 'wb').write(b'x')", "extra_output",
     "extra.png"),
    ("half", UPSCALE.replace("fx=4, fy=4", "fx=2, fy=2"), "wrong_size", "expected"),
])
def test_failures_are_typed(project, mini_data, team_id, body, kind, words):
    record = run(project, mini_data, make_team(project, team_id, body))
    assert record["status"] == "failed"
    assert record["failure"]["kind"] == kind, record["failure"]
    assert words in record["failure"]["message"]
    assert not (project / "runs" / "mini" / team_id / "run-1").exists()  # no half run left in place


def test_timeout_kills_the_run(project, mini_data):
    record = run(project, mini_data, make_team(project, "sleeper", "time.sleep(600)", timeout_s=3))
    assert record["failure"]["kind"] == "timeout" and "3 s" in record["failure"]["message"]
    assert record["wall_s"] < 60


def test_not_runnable_is_recorded_without_running(project, mini_data):
    team = make_team(project, "paper-only", UPSCALE, runnable=False)
    record = run(project, mini_data, team)
    assert record["status"] == "not_runnable" and not (project / "runs" / "mini" / "paper-only" / "run-1").exists()
    assert rules.judge(team, "mini", None)["verdict"] == "not_runnable"


def test_missing_spandrel_weights_fail_typed(project, mini_data):
    team = manifest_mod.load(project / "teams" / "realesr-animevideov3" / "manifest.yaml")
    record = run(project, mini_data, team)
    assert record["failure"]["kind"] == "weights_unavailable"
    assert "harness fetch weights realesr-animevideov3" in record["failure"]["hint"]


def test_cuda_without_a_gpu_is_a_typed_failure(project, mini_data):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    team = manifest_mod.load(project / "teams" / "bicubic" / "manifest.yaml")
    place = inference.RunPlace("mini", mini_data / "mini" / "LR", project / "weights" / "bicubic",
                               project / "runs", project)
    record = inference.infer_team(team, LocalRunner(), place, "cuda")
    assert record["failure"]["kind"] == "no_gpu"


def test_organizers_conventions_in_a_code_checkout(project, mini_data, tmp_path, monkeypatch):
    """A checkout shaped like the organizers' repository: a hyphenated folder, code importing itself
    under another name, a relative import, a required output folder name, outputs renamed with an extra
    'x4', a hard-coded weights path and a dict of weights files."""
    checkout = tmp_path / "checkout"
    team_code = checkout / "models" / "team99_Odd-Name"
    team_code.mkdir(parents=True)
    (team_code / "__init__.py").write_text("")
    (team_code / "arch.py").write_text("SCALE = 4\n")
    (team_code / "io.py").write_text(textwrap.dedent("""
        import os, cv2
        from models.team99_Alias.arch import SCALE          # imports itself under another name
        from .arch import SCALE as SAME                     # and relatively

        def main(model_dir, input_path, output_path, device):
            assert os.path.basename(output_path) == "99_ODD" and SCALE == SAME == 4
            assert open("model_zoo/team99.pth").read() == "weights"   # a hard-coded path
            assert sorted(model_dir) == ["team99.pth"]                 # a dict of files
            for name in sorted(os.listdir(input_path)):
                lr = cv2.imread(os.path.join(input_path, name))
                out = cv2.resize(lr, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)
                cv2.imwrite(os.path.join(output_path, name.replace(".png", "x4.png")), out)
    """))
    weights_dir = project / "weights" / "odd"
    weights_dir.mkdir(parents=True)
    (weights_dir / "team99.pth").write_text("weights")
    folder = project / "teams" / "odd"
    folder.mkdir()
    (folder / "manifest.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": "odd", "name": "Odd", "challenge": "mini",
        "code": {"repository": "https://example.invalid/repo.git", "commit": "9e4888936859747c56ac72a1762fee55ab7691cd",
                 "path": "models/team99_Odd-Name"},
        "weights": [{"name": "team99.pth", "source": {"kind": "local", "path": "weights/odd/team99.pth"}}],
        "entry": {"kind": "ntire-main", "code_root": "code", "module": "io.py",
                  "import_aliases": {"models.team99_Alias": "models/team99_Odd-Name"}, "model_dir": "files",
                  "output_dir_name": "99_ODD", "output_name": "{stem}x4.png",
                  "working_dir_links": {"model_zoo/team99.pth": "team99.pth"}},
        "runtime": {"scale": 4}, "determinism": {"class": "deterministic"}, "status": {"runnable": True}}))
    team = manifest_mod.load(folder / "manifest.yaml")
    monkeypatch.setenv("HARNESS_CODE_DIR", str(checkout))
    record = run(project, mini_data, team)
    assert record["status"] == "ok", record["failure"]
    outputs = sorted(p.name for p in (project / "runs" / "mini" / "odd" / "run-1").glob("*.png"))
    assert outputs == sorted(p.name for p in (mini_data / "mini" / "LR").glob("*.png"))
    monkeypatch.setenv("HARNESS_CODE_DIR", str(tmp_path / "no-checkout"))
    assert run(project, mini_data, team)["failure"]["kind"] == "code_unavailable"
