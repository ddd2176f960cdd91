"""Real team code as the organizers laid it out: a checkout fetched from a mirror, imported once under the
names it uses, weights handed over as its loader reads them, smoke-tested with stand-in weights.

The checkout is built here with each quirk found in the organizers' repository: the entry module inside
the team's folder, a hyphenated folder importing itself under another name, a registry that refuses a
second registration (basicsr's), `torch.load(model_dir)` of the one file of a weights folder under
'params', `torch.cuda.current_device()` on a CPU, a torchvision module that moved, a log file written
into the working directory, and a spawned child process that imports the team's package by name."""

import json
import os
import shutil
import subprocess
import textwrap

import pytest
import yaml

from harness.adapter.protocol import OVERRIDE_VARIABLE
from harness.audit import smoke, workflow
from harness.catalogue import audit_params, datasets, roster
from harness.core.errors import InferenceFailed
from harness.core.project import Project
from harness.core.settings import Settings
from harness.fetch import repositories
from harness.run import inference, runners

from conftest import copy_project, harness_cli

pytestmark = pytest.mark.slow

REPOSITORY = "https://github.com/example-org/sr-challenge"
TEAM_FOLDER = "models/team42_Odd-Name"

FILES = {
    "utils/__init__.py": "",
    "utils/registry.py": """
        class Registry:
            def __init__(self):
                self.known = {}

            def register(self):
                def add(cls):
                    if cls.__name__ in self.known:
                        raise KeyError(f"An object named '{cls.__name__}' was already registered")
                    self.known[cls.__name__] = cls
                    return cls
                return add

        ARCH_REGISTRY = Registry()
    """,
    "utils/logger.py": """
        def logger_info(name, log_path):
            with open(log_path, "a") as handle:   # relative: lands in the working directory
                handle.write(name + "\\n")
    """,
    f"{TEAM_FOLDER}/__init__.py": "from .io import *\nfrom .arch import *\n",
    f"{TEAM_FOLDER}/arch.py": """
        import torch
        from torch import nn
        from utils.registry import ARCH_REGISTRY

        @ARCH_REGISTRY.register()
        class TinySR(nn.Module):
            def __init__(self, channels=8, scale=4):
                super().__init__()
                self.body = nn.Conv2d(3, channels, 3, padding=1)
                self.tail = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)
                self.shuffle = nn.PixelShuffle(scale)

            def forward(self, x):
                return self.shuffle(self.tail(torch.relu(self.body(x))))
    """,
    f"{TEAM_FOLDER}/io.py": """
        import os
        import multiprocessing as mp

        import cv2
        import numpy as np
        import torch
        from torchvision.transforms.functional_tensor import rgb_to_grayscale  # moved in torchvision 0.17
        from utils.logger import logger_info
        from models.team42_Alias.arch import TinySR   # the package imports itself under another name
        import importlib
        # its folder's own name is the same module (the registry above would refuse a second execution)
        odd, alias = (importlib.import_module(f"models.{name}.arch") for name in ("team42_Odd-Name", "team42_Alias"))
        assert odd is alias


        def _child(queue):
            import models.team42_Alias.arch as arch   # a spawned interpreter resolves the same name
            queue.put(arch.TinySR.__name__)


        def main(model_dir, input_path, output_path, device=None):
            logger_info("team42", log_path="team42.log")
            torch.cuda.current_device()
            context = mp.get_context("spawn")
            queue = context.Queue()
            child = context.Process(target=_child, args=(queue,))
            child.start()
            assert queue.get(timeout=120) == "TinySR"
            child.join()
            model = TinySR(channels=8)
            model.load_state_dict(torch.load(model_dir)["params"], strict=True)
            model.eval()
            for name in sorted(os.listdir(input_path)):
                lr = cv2.imread(os.path.join(input_path, name))[:, :, ::-1].copy()
                x = torch.from_numpy(lr).permute(2, 0, 1).unsqueeze(0).float() / 255
                rgb_to_grayscale(x)
                with torch.no_grad():
                    y = model(x).clamp(0, 1)
                out = (y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[:, :, ::-1]
                cv2.imwrite(os.path.join(output_path, name), out)
    """,
}


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=cwd,
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A bare repository served from a mirror folder as <mirror>/owner/name; returns (mirror, commit)."""
    work = tmp_path_factory.mktemp("upstream")
    source = work / "source"
    for relative, text in FILES.items():
        path = source / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    git("init", "-q", "-b", "main", cwd=source)
    git("add", ".", cwd=source)
    git("commit", "-q", "-m", "team code", cwd=source)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True,
                            check=True).stdout.strip()
    (source / "later.txt").write_text("a later commit the manifest does not pin\n")
    git("add", ".", cwd=source)
    git("commit", "-q", "-m", "later", cwd=source)
    served = work / "mirror"
    (served / "example-org").mkdir(parents=True)
    git("clone", "-q", "--bare", str(source), str(served / "example-org" / "sr-challenge"), cwd=work)
    return served, commit


def team_manifest(commit, **entry_changes):
    entry = {"kind": "ntire-main", "code_root": "code", "module": "io.py",
             "import_aliases": {"models.team42_Alias": TEAM_FOLDER},
             "model_dir": {"only_file_in": "team42"}, **entry_changes}
    return {"schema_version": 1, "id": "odd", "name": "Odd", "challenge": "mini",
            "code": {"repository": REPOSITORY, "commit": commit, "path": TEAM_FOLDER},
            "weights": [{"name": "team42", "directory": True,
                         "source": {"kind": "gdrive", "id": "x", "folder": True},
                         "network": {"class": "arch.py:TinySR", "args": {"channels": 8}, "key": "params"}}],
            "entry": entry, "runtime": {"scale": 4, "devices": ["cpu", "cuda"], "timeout_s": 300},
            "determinism": {"class": "deterministic"}, "status": {"runnable": True}}


@pytest.fixture
def proj(tmp_path, mirror, monkeypatch):
    served, commit = mirror
    root = copy_project(tmp_path / "project", teams=["odd"])
    folder = root / "teams" / "odd"
    folder.mkdir()
    (folder / "manifest.yaml").write_text(yaml.safe_dump(team_manifest(commit), sort_keys=False))
    monkeypatch.setenv(repositories.MIRROR_VARIABLE, str(served))
    monkeypatch.delenv(OVERRIDE_VARIABLE, raising=False)
    return Project(root)


def test_fetch_code_clones_the_pinned_commit_and_reuses_it_offline(proj, mirror, monkeypatch):
    team = roster.load(proj, "odd")
    checkout = workflow.fetch_code(proj, team)
    assert checkout == proj.code_cache / "example-org" / f"sr-challenge@{mirror[1]}"
    assert (checkout / TEAM_FOLDER / "io.py").is_file() and not (checkout / "later.txt").exists()
    assert checkout.stat().st_mode & 0o055 == 0o055  # readable by the unprivileged user of a container
    monkeypatch.setenv(repositories.MIRROR_VARIABLE, str(proj.root / "no-mirror"))  # offline now
    assert workflow.fetch_code(proj, team) == checkout
    (checkout / TEAM_FOLDER / "io.py").write_text("changed")
    with pytest.raises(repositories.CodeUnavailable, match="of odd.s code are missing or changed"):
        workflow.fetch_code(proj, team)


def test_an_unknown_commit_or_repository_is_a_typed_error(proj, mirror, monkeypatch):
    team = roster.load(proj, "odd")
    team.data["code"]["commit"] = "0123456"
    with pytest.raises(repositories.CodeUnavailable, match="has no commit 0123456"):
        workflow.fetch_code(proj, team)
    monkeypatch.setenv(repositories.MIRROR_VARIABLE, str(proj.root / "empty-mirror"))
    team.data["code"]["commit"] = mirror[1]
    with pytest.raises(repositories.CodeUnavailable) as caught:
        workflow.fetch_code(proj, team)
    assert "cloning" in caught.value.message and repositories.MIRROR_VARIABLE in caught.value.hint
    assert not [p for p in proj.code_cache.rglob(".sr-challenge*") if p.is_dir()]  # no half clone left (the lock stays)


def test_the_cli_fetches_code_and_smoke_tests_the_real_code(proj):
    env = {repositories.MIRROR_VARIABLE: os.environ[repositories.MIRROR_VARIABLE]}
    fetched = harness_cli("fetch", "code", "odd", cwd=proj.root, env=env, check=True)
    assert "example-org/sr-challenge" in fetched.stdout
    done = harness_cli("smoke", "odd", "--json", "smoke.json", cwd=proj.root, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    [result] = json.loads((proj.root / "smoke.json").read_text())["teams"]
    assert result["status"] == "ok" and result["stand_ins"] == ["team42/stand-in.pth"] and not result["cached"]
    outputs = proj.smoke_dir("odd") / "runs" / "smoke" / "odd" / "run-1"
    assert sorted(p.name for p in outputs.glob("*.png")) == ["0001x4.png", "0004x4.png"]
    assert not list(proj.root.glob("team42.log"))  # the code's log went to its scratch working directory
    assert "SMOKE: 1 team(s): 1 ok" in done.stdout
    assert json.loads((proj.smoke_dir("odd") / "result.json").read_text())["status"] == "ok"  # kept as it ended
    again = harness_cli("smoke", "odd", "--json", "smoke.json", cwd=proj.root, env=env)
    [reused] = json.loads((proj.root / "smoke.json").read_text())["teams"]
    assert reused["cached"] and reused["key"] == result["key"] and "ok (earlier result)" in again.stdout
    (proj.teams_dir / "odd" / "notes.txt").write_text("a file of the team folder changes its run key\n")
    harness_cli("smoke", "odd", "--json", "smoke.json", cwd=proj.root, env=env, check=True)
    [fresh] = json.loads((proj.root / "smoke.json").read_text())["teams"]
    assert not fresh["cached"] and fresh["key"] != result["key"]


def test_real_format_weights_run_through_infer_as_the_smoke_does(proj, mini_data):
    """The smoke is inference with other weights: the same team runs on the mini LR with a weights
    folder holding one file under 'params', and a file of another network is refused before the run."""
    team = roster.load(proj, "odd")
    workflow.fetch_code(proj, team)
    options = Settings()
    weights = proj.team_weights("odd")
    inference.stand_in_weights(team, runners.get("local"), weights, "cpu", proj.root,
                               repositories.for_run(proj.code_cache, team), proj.root / "stand-ins.log")
    (weights / "team42" / "stand-in.pth").rename(weights / "team42" / "whatever-the-team-called-it.pth")
    shutil.copytree(mini_data / "mini", proj.data_dir / "mini")
    record = workflow.infer(proj, team, datasets.get("mini"), options)
    assert record["status"] == "ok", record["failure"]
    provenance = record["runs"][0]["provenance"]
    assert list(provenance["weights_sha256"]) == ["team42/whatever-the-team-called-it.pth"]

    import torch

    torch.save({"params": {"body.weight": torch.zeros(4, 3, 3, 3)}},
               weights / "team42" / "whatever-the-team-called-it.pth")
    failed = workflow.infer(proj, team, datasets.get("mini"), options)
    assert failed["failure"]["kind"] == "weights_mismatch"
    assert "1 of another shape" in failed["failure"]["message"] and "missing" in failed["failure"]["message"]


@pytest.mark.parametrize("change, status, reason", [
    ({"runtime": {"scale": 4, "devices": ["cpu", "cuda"], "cuda_extensions": ["mamba_ssm"]}}, "skipped",
     "needs CUDA kernels (mamba_ssm)"),
    ({"runtime": {"scale": 4, "devices": ["cuda"]}}, "skipped", "runs on cuda only"),
    ({"status": {"runnable": False, "reasons": ["no inference script"]}}, "not_runnable", "no inference script"),
])
def test_smoke_says_why_a_team_is_not_tried(proj, change, status, reason):
    team = roster.load(proj, "odd")
    team.data.update(change)
    result = smoke.smoke_team(proj, team, Settings())
    assert result.status == status and reason in result.reason


def test_the_adapter_refuses_a_module_outside_the_team_folder(proj):
    team = roster.load(proj, "odd")
    checkout = workflow.fetch_code(proj, team)
    team.data["entry"]["module"] = "../../utils/logger.py"
    from harness.adapter import teamcode

    with pytest.raises(InferenceFailed, match="does not exist in code.path"):
        teamcode.import_team_module(team, checkout, checkout / TEAM_FOLDER, team.entry["module"])


def test_validate_checks_module_aliases_and_networks_against_the_fetched_checkout(proj):
    env = {repositories.MIRROR_VARIABLE: os.environ[repositories.MIRROR_VARIABLE]}
    assert harness_cli("validate", "odd", cwd=proj.root).returncode == 0  # nothing fetched: schema only
    harness_cli("fetch", "code", "odd", cwd=proj.root, env=env, check=True)
    assert harness_cli("validate", "odd", cwd=proj.root).returncode == 0
    path = proj.teams_dir / "odd" / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    data["entry"]["import_aliases"] = {"models.team42_OddName": TEAM_FOLDER}  # written from the folder name
    data["entry"]["module"] = "main.py"
    data["weights"][0]["network"]["class"] = "archs.py:TinySR"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    done = harness_cli("validate", "odd", cwd=proj.root)
    assert done.returncode == 1
    for expected in ("entry.module: 'main.py' is not a file of models/team42_Odd-Name/",
                     "entry.import_aliases.models.team42_OddName: the code never imports 'models.team42_OddName'",
                     "the code imports 'models.team42_Alias', which is neither a folder of the checkout nor an alias",
                     "weights[0].network.class: 'archs.py:TinySR': no such file"):
        assert expected in done.stdout, done.stdout
    # a team marked not runnable: what the checkout shows is its known breakage, said as notes
    data["status"] = {"runnable": False, "reasons": ["its entry module is missing from the release"]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    done = harness_cli("validate", "odd", cwd=proj.root)
    assert done.returncode == 0, done.stdout
    assert "ok    teams/odd/manifest.yaml (not runnable, as the checkout confirms)" in done.stdout
    assert "note  teams/odd/manifest.yaml: entry.module: 'main.py' is not a file of" in done.stdout


def test_verify_fetches_the_code_like_the_data_and_weights(proj, mini_data):
    """verify fetches what a run needs: here the checkout (the weights are a Drive folder, placed by hand)."""
    team = roster.load(proj, "odd")
    placed = proj.team_weights("odd") / "team42"
    placed.mkdir(parents=True)
    shutil.copytree(mini_data / "mini", proj.data_dir / "mini")
    import torch

    from harness.adapter import teamcode

    checkout, _ = repositories.fetch(proj.code_cache, team)  # only to build the stand-in from the real class
    teamcode.write_random_weights(team, checkout, checkout / TEAM_FOLDER, placed.parent)
    shutil.rmtree(checkout)
    assert torch.load(placed / "stand-in.pth")["params"]
    settings = audit_params.read(proj).given(metrics=["psnr"], runner="local", device="cpu", mode="faithful")
    row = workflow.verify_team(proj, team, datasets.get("mini"), settings)
    assert repositories.present(proj.code_cache, team) is not None  # fetched again by verify
    evaluation = json.loads(proj.evaluation_file("mini", "odd").read_text())
    assert evaluation["inference"]["status"] == "ok" and evaluation["runs"][0]["n_images"] == 6  # it ran
    assert row["verdict"] == "failed" and row["failure"]["kind"] == "no_published_numbers"  # nothing to compare
