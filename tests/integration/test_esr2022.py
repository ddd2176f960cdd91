"""The Efficient SR series' 2022 layout on a fixture repository: the organizers' own FLOPs counter
(model_summary) as a property of the challenge, tracks ranked by sums of ranks, and a divergence that explains
itself. Two tiny models: one counted alike by both counters (convolutions only), one whose 1x1 convolution is an
nn.Linear on a channels-last tensor (model_summary counts it without the HxW factor, fvcore with it), published
with fvcore's FLOPs as XPixel's row was. Every count is worked out by hand below."""

import hashlib
import json
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO, copy_project, harness_cli

pytestmark = pytest.mark.slow

PLAIN = '''
from torch import nn


class Plain(nn.Module):
    """conv 3->8, conv 8->48, pixel shuffle x4: no layer the two counters count differently."""

    def __init__(self, channels=8):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 48, 3, padding=1)
        self.shuffle = nn.PixelShuffle(4)

    def forward(self, x):
        return self.shuffle(self.tail(self.head(x)))
'''
LINEAR = '''
from torch import nn


class Mixer(nn.Module):
    """conv 3->32, a 1x1 convolution written as nn.Linear on channels-last features, conv 32->48, shuffle x4."""

    def __init__(self, channels=32):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.mix = nn.Linear(channels, channels)
        self.tail = nn.Conv2d(channels, 48, 3, padding=1)
        self.shuffle = nn.PixelShuffle(4)

    def forward(self, x):
        x = self.head(x)
        x = self.mix(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.shuffle(self.tail(x))
'''
POSITIONS = 256 * 256  # the probe's output positions (no stride anywhere)
PLAIN_PARAMS = (8 * 27 + 8) + (48 * 72 + 48)                                     # 3 728
PLAIN_FLOPS = POSITIONS * (27 * 8 + 72 * 48)                                    # 240 648 192, both counters
MIXER_PARAMS = (32 * 27 + 32) + (32 * 32 + 32) + (48 * 288 + 48)                # 15 824
MIXER_CONVS = POSITIONS * (27 * 32 + 288 * 48)                                  # 962 592 768
MIXER_SUMMARY = MIXER_CONVS + 1 * 256 * 256  # the Linear: batch x input.shape[1] (H) x output.shape[1] (H again)
MIXER_FVCORE = MIXER_CONVS + POSITIONS * 32 * 32                                # 1 029 701 632
CHALLENGE = {
    "schema_version": 1, "id": "esr22-fixture", "name": "A fixture in the 2022 Efficient SR layout", "edition": 2022,
    "baseline": "fx-plain", "references": [], "model_probe": [256, 256], "model_counter": "model_summary",
    "measured_on": {"device": "cuda", "gpu": "a fixture GPU"},
    "datasets": [{"id": "esr22-fixture-test", "role": "test", "title": "fixture test set", "description": "none here",
                  "images": {"first": 901, "last": 902}, "hr_origin": "nowhere"},
                 {"id": "div2k-valid", "role": "validation"}, {"id": "model", "role": "model"}],
    "bar": [{"metric": "psnr_rgb", "dataset": "div2k-valid", "at_least": 29.0}],
    "tracks": [
        {"id": "main", "name": "main", "title": "runtime", "metrics": ["runtime"], "rank_by": "runtime",
         "direction": "lower"},
        {"id": "sub1", "name": "sub1", "title": "complexity", "metrics": ["params", "flops"],
         "rank_sum": ["params", "flops"], "direction": "lower"},
        {"id": "sub2", "name": "sub2", "title": "overall", "metrics": ["runtime", "params", "flops", "activations"],
         "rank_sum": ["main", "params", "flops", "activations"], "direction": "lower"},
        *({"id": m, "name": m, "title": m, "metrics": [m], "rank_by": m, "direction": "lower"}
          for m in ("params", "flops", "activations"))]}


def manifest(team_id, values, ranks, psnr, entry=None, weights=None) -> dict:
    runnable = entry is not None
    data = {"schema_version": 1, "id": team_id, "name": team_id, "challenge": "esr22-fixture",
            "tracks": ["main", "sub1", "sub2"],
            "published": {
                "model": {"values": values, "precision": {"params": 6, "flops": 2, "activations": 6, "conv2d": 0,
                                                          "runtime": 2},
                          "source": {"kind": "official-table", "citation": "a fixture"}},
                "div2k-valid": {"values": {"psnr_rgb": psnr}, "precision": {"psnr_rgb": 2},
                                "source": {"kind": "official-table", "citation": "a fixture"}},
                "esr22-fixture-test": {"values": {"psnr_rgb": psnr - 0.3}, "precision": {"psnr_rgb": 2},
                                       "ranks": ranks, "source": {"kind": "official-table", "citation": "a fixture"}}},
            "entry": entry or {"kind": "none"}, "weights": weights or [],
            "runtime": {"scale": 4, "devices": ["cpu", "cuda"]}, "determinism": {"class": "deterministic"},
            "status": {"runnable": True} if runnable else {"runnable": False, "reasons": ["no code in git"]}}
    if runnable:
        data["code"] = {"repository": "https://github.com/example-org/esr2022", "commit": COMMIT[0], "path": "."}
    return data


COMMIT: list[str] = []


def _repository(base):
    """models/teamXX_*.py and model_zoo/ in git, the checkpoints as the organizers' select_model reads them:
    one under 'params', one with every key behind 'module.'."""
    import torch

    repository = base / "mirror" / "example-org" / "esr2022"
    (repository / "models").mkdir(parents=True)
    (repository / "model_zoo").mkdir()
    (repository / "models" / "team01_plain.py").write_text(PLAIN)
    (repository / "models" / "team02_mixer.py").write_text(LINEAR)
    namespace: dict = {}
    exec(PLAIN + LINEAR, namespace)
    torch.manual_seed(3)
    plain = {f"module.{k}": v for k, v in namespace["Plain"]().state_dict().items()}
    torch.save(plain, repository / "model_zoo" / "team01_plain.pth")
    torch.save({"params": namespace["Mixer"]().state_dict()}, repository / "model_zoo" / "team02_mixer.pth")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repository)]
    subprocess.run(["git", "init", "-q", str(repository)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "teams"], check=True)
    COMMIT.append(subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                                 text=True).stdout.strip())
    return repository


def _weights(repository, name):
    data = (repository / "model_zoo" / name).read_bytes()
    return [{"name": name, "source": {"kind": "code", "path": f"model_zoo/{name}"},
             "sha256": hashlib.sha256(data).hexdigest()}]


@pytest.fixture(scope="module")
def esr2022(tmp_path_factory):
    base = tmp_path_factory.mktemp("esr2022")
    repository = _repository(base)
    root = copy_project(base / "project", teams=[])
    for folder in (root / "teams").iterdir():
        if not folder.name.startswith("_"):
            shutil.rmtree(folder)
    challenges = base / "challenges"
    shutil.copytree(REPO / "challenges", challenges)
    (challenges / "esr22-fixture.yaml").write_text(yaml.safe_dump(CHALLENGE, sort_keys=False))
    select = {"kind": "select-model", "code_root": "code", "strict": True, "data_range": 1.0, "tile": None}
    teams = {
        "fx-plain": manifest("fx-plain", {"params": PLAIN_PARAMS / 1e6, "flops": 0.24, "activations": 3.670016,
                                          "conv2d": 2, "runtime": 10.0},
                             {"main": 1, "params": 1, "flops": 1, "activations": 1, "sub1": 1, "sub2": 1}, 29.1,
                             {**select, "module": "models/team01_plain.py", "class": "Plain",
                              "weights": "team01_plain.pth", "strip_prefix": "module."},
                             _weights(repository, "team01_plain.pth")),
        "fx-mixer": manifest("fx-mixer", {"params": MIXER_PARAMS / 1e6, "flops": 1.03, "activations": 5.24288,
                                          "conv2d": 2, "runtime": 12.0},
                             {"main": 3, "params": 3, "flops": 3, "activations": 3, "sub1": 3, "sub2": 3}, 28.9,
                             {**select, "module": "models/team02_mixer.py", "class": "Mixer", "args": {"channels": 32},
                              "weights": "team02_mixer.pth", "state_key": "params"},
                             _weights(repository, "team02_mixer.pth")),
        "fx-nocode": manifest("fx-nocode", {"params": 0.01, "flops": 1.00, "activations": 4.0, "conv2d": 3,
                                            "runtime": 11.0},
                              {"main": 2, "params": 2, "flops": 2, "activations": 2, "sub1": 2, "sub2": 2}, 29.0),
        # listed below the line; its weights file is in no commit: its model is counted untrained
        "fx-absent": manifest("fx-absent", {"params": PLAIN_PARAMS / 1e6, "flops": 0.24, "activations": 3.670016,
                                            "conv2d": 2, "runtime": 9.0}, {}, 29.5,
                              {**select, "module": "models/team01_plain.py", "class": "Plain",
                               "weights": "team03_absent.pth"},
                              [{"name": "team03_absent.pth", "source": {"kind": "code",
                                                                       "path": "model_zoo/team03_absent.pth"},
                                "sha256": None}])}
    teams["fx-absent"]["tracks"] = []
    del teams["fx-absent"]["published"]["esr22-fixture-test"]["ranks"]
    for team_id, data in teams.items():
        (root / "teams" / team_id).mkdir()
        (root / "teams" / team_id / "manifest.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    env = {"HARNESS_GIT_MIRROR": str(base / "mirror"), "HARNESS_CHALLENGES_DIR": str(challenges)}
    done = harness_cli("audit", "--challenge", "esr22-fixture", "--dataset", "esr22-fixture-test", cwd=root, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    return root, env, json.loads((root / "report" / "esr22-fixture" / "report.json").read_text()), done


def row_of(report, team_id):
    return next(r for r in report["teams"] if r["team"] == team_id)


def test_the_organizers_counter_reproduces_a_model_both_counters_count_alike(esr2022):
    _, _, report, _ = esr2022
    row = row_of(report, "fx-plain")
    assert row["verdict"] == "reproduced" and row["checked_on"] == "model", row
    metrics = row["metrics"]
    assert metrics["params"]["reproduced"] == pytest.approx(PLAIN_PARAMS / 1e6, abs=1e-12)
    assert metrics["flops"]["reproduced"] == pytest.approx(PLAIN_FLOPS / 1e9, abs=1e-12)
    assert metrics["activations"]["reproduced"] == pytest.approx(3.670016, abs=1e-12)
    assert metrics["conv2d"]["reproduced"] == 2
    assert metrics["runtime"]["status"] == "unavailable"  # never CPU milliseconds


def test_a_linear_1x1_diverges_with_the_layer_that_explains_it(esr2022):
    _, _, report, _ = esr2022
    row = row_of(report, "fx-mixer")
    assert row["verdict"] == "diverged", row
    flops = row["metrics"]["flops"]
    assert flops["reproduced"] == pytest.approx(MIXER_SUMMARY / 1e9, abs=1e-12)  # the challenge's counter
    evidence = flops["evidence"]
    assert evidence["counter"] == "model_summary" and evidence["matches"] == ["fvcore"]
    assert evidence["totals_g"]["fvcore"] == pytest.approx(MIXER_FVCORE / 1e9, abs=1e-12)
    [linear] = [layer for layer in evidence["layers"] if layer["type"] == "Linear"]
    assert linear == {"layer": "mix", "type": "Linear", "calls": 1, "output": [1, 256, 256, 32],
                      "model_summary": 256 * 256, "fvcore": POSITIONS * 32 * 32}
    assert "only fvcore gives it" in flops["reason"] and "1 Linear layer(s)" in flops["reason"]
    for name in ("params", "activations", "conv2d"):  # what the Linear does not touch still reproduces
        assert row["metrics"][name]["ok"], name
    assert row_of(report, "fx-nocode")["verdict"] == "not_runnable"


def test_rank_sum_tracks_are_ranked_again_and_say_why_a_rank_moves(esr2022):
    _, _, report, done = esr2022
    boards = {b["track"]: b for b in report["leaderboards"] if b["challenge"] == "esr22-fixture"}
    # the mixer's FLOPs by the organizers' counter (0.96 G) now rank before fx-nocode's published 1.00 G
    assert boards["flops"]["changes"] == [{"team": "fx-nocode", "published_rank": 2, "reproduced_rank": 3},
                                          {"team": "fx-mixer", "published_rank": 3, "reproduced_rank": 2}]
    sub1 = {e["team"]: e for e in boards["sub1"]["entries"]}
    assert (sub1["fx-mixer"]["published"], sub1["fx-mixer"]["reproduced"]) == (6, 5)
    assert (sub1["fx-nocode"]["reproduced"], sub1["fx-nocode"]["reproduced_rank"]) == (5, 2)  # equal sums share
    assert boards["sub1"]["changes"] == [{"team": "fx-mixer", "published_rank": 3, "reproduced_rank": 2,
                                          "why": "flops 3 → 2"}]
    assert not boards["main"]["changes"]  # runtimes stay the published ones, greyed
    assert "fx-mixer 3 → 2 (flops 3 → 2)" in " ".join(done.stdout.split())
    assert any("fx-mixer is ranked with psnr_rgb 28.9" in f for f in boards["main"].get("findings", []))


def test_show_prints_the_evidence_of_the_last_report(esr2022):
    root, env, _, _ = esr2022
    printed = harness_cli("show", "fx-mixer", cwd=root, env=env, check=True).stdout
    shown = " ".join(printed.replace("│", " ").split())
    assert "last report (report.json, on model): diverged" in shown
    assert "only fvcore gives it" in shown and "mix Linear 1×256×256×32 65,536 67,108,864" in shown


def test_the_page_shows_the_layers_the_moves_and_the_bar(esr2022):
    root, _, _, _ = esr2022
    page = (root / "report" / "esr22-fixture" / "index.html").read_text()
    assert "what each counter counts, layer by layer (3 layers; model_summary is the challenge" in page
    assert "flops 3 → 2" in page and "ranking: fx-mixer is ranked with psnr_rgb 28.9 on div2k-valid" in page


def test_a_team_whose_weights_are_absent_is_counted_on_its_architecture_and_says_so(esr2022):
    _, _, report, _ = esr2022
    row = row_of(report, "fx-absent")
    assert row["verdict"] == "reproduced", row
    assert row["metrics"]["params"]["reproduced"] == pytest.approx(PLAIN_PARAMS / 1e6, abs=1e-12)
    assert row["metrics"]["flops"]["reproduced"] == pytest.approx(PLAIN_FLOPS / 1e9, abs=1e-12)
    [finding] = [f for f in row["findings"] if f["kind"] == "weights_unavailable"]
    assert "counted on the architecture alone" in finding["message"] and "not in the checkout" in finding["message"]
