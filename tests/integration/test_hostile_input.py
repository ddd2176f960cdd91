"""The hostile-input corpus: text, files, parameters and pins that come from outside, each built here file by
file, each refused or shown as it is. Every case: the documented exit code, the input named, no traceback,
nothing read from outside, nothing in data/, runs/, evaluations/ or report/ changed by a refusal."""

import hashlib
import json
import re
import shutil

import pytest
import yaml

from harness.core import locks

from conftest import copy_project, harness_cli, set_params

MARKUP_NAME = "[/bold]Team [red]X \x1b]0;pwned\x07 [link=https://evil.example]Click me[/link]"


def snapshot(root) -> dict:
    """Every file under the folders a refusal must leave alone, with its bytes' digest."""
    out = {}
    for folder in ("data", "runs", "evaluations", "report"):
        for path in sorted((root / folder).rglob("*")) if (root / folder).exists() else []:
            if path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def hostile(tmp_path, mini_data, monkeypatch):
    monkeypatch.setenv(locks.LOCKS_VARIABLE, str(tmp_path / "locks"))
    root = copy_project(tmp_path / "project", teams=["bicubic"])
    shutil.copytree(mini_data / "mini", root / "data" / "mini")
    return root


def no_traceback(done):
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


# --- text from outside reaches the terminal as it is ----------------------------------------------------------

def test_markup_and_escape_codes_in_a_manifest_are_shown_literally(hostile):
    path = hostile / "teams" / "bicubic" / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    data["name"] = MARKUP_NAME
    data["status"]["defects"] = ["a [/red] bracket and \x1b[2J a clear-screen"]
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    for command in (("list",), ("show", "bicubic")):
        done = no_traceback(harness_cli(*command, cwd=hostile))
        assert done.returncode == 0
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout  # no live escape sequence reaches the terminal
        assert "[red]X" in done.stdout.replace("\n", " ") and "\\x1b" in done.stdout
        assert "\x1b]8;" not in done.stdout  # no hyperlink either
    data["tracks"] = ["[/red]nonsense"]
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    done = no_traceback(harness_cli("validate", "bicubic", cwd=hostile))
    assert done.returncode == 1 and "tracks[0]: \"[/red]nonsense\" does not match" in done.stdout


def test_rules_quoted_in_errors_print_exactly(hostile):
    done = no_traceback(harness_cli("show", "Bad_Id", cwd=hostile))
    assert done.returncode == 2 and "rule: ^[a-z0-9][a-z0-9-]*$" in done.stderr


def test_a_teams_exception_text_is_inert_in_every_report_format(hostile):
    from harness.report.files import to_csv, to_markdown

    row = {"team": "=HYPERLINK(\"http://evil\")", "verdict": "failed", "runs": 0, "metrics": {"psnr": {
               "published": 30.0, "reproduced": None, "delta": None, "tolerance": 0.01,
               "ok": None, "precision": 2, "status": "unavailable", "reason": "<script>x</script>", "fetch": ""}},
           "failure": {"kind": "entry_error", "message": "<img src=x onerror=alert(1)> [x](javascript:alert(1))",
                       "hint": None}, "findings": [{"image": "<b>0001</b>", "kind": "not_png", "message": "| cell"}],
           "unverified": ["psnr"]}
    report = {"teams": [row], "dataset": "mini", "generated": "now", "harness_version": "0", "git_sha": None,
              "params": {"mode": "faithful"}, "summary": "SUMMARY"}
    markdown = to_markdown(report)
    assert not re.search(r"(?<!\\)<(img|script)", markdown)  # every < is escaped
    assert not re.search(r"(?<!\\)\]\(", markdown)  # no link: every ] before a ( is escaped
    assert "\\<img src=x onerror=alert(1)\\>" in markdown and "\\[x\\](javascript" in markdown
    assert "\\| cell" in markdown
    assert "'=HYPERLINK" in to_csv(report)  # a spreadsheet reads it as text, not as a formula


# --- parameters are checked before anything runs --------------------------------------------------------------

@pytest.mark.parametrize("change, words", [
    ({"teams": ["../../outside"]}, "'../../outside' is not a team id"),
    ({"teams": ["bicubic", "bicubic"]}, "listed twice: bicubic"),
    ({"teams": ["bicubc"]}, "did you mean 'bicubic'?"),
    ({"max_image_megapixels": float("nan")}, "'nan' is not a finite number"),
    ({"device": "gpu"}, "did you mean 'cuda'?"),
    ({"eval_workers": 0}, "'0' is not a whole number of at least 1"),
    ({"metrics": ["psnrr"]}, "did you mean 'psnr'?"),
    ({"docker": {"memory_gb": float("inf")}}, "'inf' is not a finite number"),
])
def test_an_invalid_parameter_is_refused_before_any_work(hostile, change, words):
    set_params(hostile, **change)
    before = snapshot(hostile)
    for command in (("report",), ("infer", "bicubic"), ("validate", "--params")):
        done = no_traceback(harness_cli(*command, cwd=hostile))
        assert done.returncode == 2 and words in done.stderr, (command, done.stderr)
    doctor = no_traceback(harness_cli("doctor", cwd=hostile, env={"COLUMNS": "400"}))
    assert doctor.returncode == 1 and words in doctor.stdout.replace("\n", " ")  # said as a blocking finding
    assert snapshot(hostile) == before


def test_invalid_command_line_values_are_refused(hostile):
    done = no_traceback(harness_cli("evaluate", "--sr", "data/mini/HR", "--hr", "data/mini/HR", "--max-megapixels",
                                    "nan", cwd=hostile))
    assert done.returncode == 2 and "'nan' is not a finite number" in done.stderr
    done = no_traceback(harness_cli("infer", "bicubic", "--device", "gpu", cwd=hostile))
    assert done.returncode == 2 and "did you mean 'cuda'?" in done.stderr


# --- YAML gives every key once ---------------------------------------------------------------------------------

def test_a_key_given_twice_is_refused_naming_the_file_line_and_key(hostile):
    path = hostile / "teams" / "bicubic" / "manifest.yaml"
    path.write_text(path.read_text().replace("runtime:\n", "runtime:\n  timeout_s: 10\n  timeout_s: 20\n", 1))
    done = no_traceback(harness_cli("validate", "bicubic", cwd=hostile))
    assert done.returncode == 1 and "the key 'timeout_s' is given twice" in done.stdout
    assert "teams/bicubic/manifest.yaml" in done.stdout and "line" in done.stdout
    (hostile / "params.yaml").write_text("device: cpu\ndevice: cuda\n")
    done = no_traceback(harness_cli("report", cwd=hostile))
    assert done.returncode == 2 and "the key 'device' is given twice" in done.stderr


# --- pins are checked where the bytes are used -----------------------------------------------------------------

def test_changed_weights_are_refused_at_inference_naming_both_digests(hostile):
    team = hostile / "teams" / "pinned"
    team.mkdir()
    (team / "model.pth").write_bytes(b"the pinned bytes")
    (team / "manifest.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": "pinned", "name": "Pinned", "challenge": "mini",
        "weights": [{"name": "model.pth", "source": {"kind": "local", "path": "teams/pinned/model.pth"}}],
        "entry": {"kind": "spandrel", "weights": "model.pth"}, "runtime": {"scale": 4},
        "determinism": {"class": "deterministic"}, "status": {"runnable": True}}))
    assert harness_cli("fetch", "weights", "pinned", cwd=hostile).returncode == 0
    placed = hostile / "weights" / "pinned" / "model.pth"
    pinned = hashlib.sha256(b"the pinned bytes").hexdigest()
    placed.write_bytes(b"other bytes")
    before = snapshot(hostile)
    done = no_traceback(harness_cli("infer", "pinned", cwd=hostile))
    assert done.returncode == 2 and "changed since it was pinned" in done.stderr
    flat = " ".join(done.stderr.split())
    assert pinned in flat and hashlib.sha256(b"other bytes").hexdigest() in flat
    assert snapshot(hostile) == before
    (hostile / "weights" / "pinned" / "sha256.json").write_text("{not json")
    done = no_traceback(harness_cli("infer", "pinned", cwd=hostile))
    assert done.returncode == 2 and "not a pin file" in done.stderr


# --- locks and refusals change nothing the user owns -----------------------------------------------------------

def test_a_refused_import_leaves_data_as_it_was_and_names_the_extra_file(hostile, tmp_path):
    lr = tmp_path / "lr"
    lr.mkdir()
    for source in sorted((hostile / "data" / "mini" / "LR").glob("*.png")):
        shutil.copy(source, lr / source.name)
    shutil.copy(lr / "0001x4.png", lr / "0001x4x4.png")
    before = snapshot(hostile)
    listing = sorted(p.name for p in (hostile / "data").iterdir())
    done = no_traceback(harness_cli("data", "import", "mini", "--lr", str(lr), cwd=hostile))
    assert done.returncode == 2 and "0001x4x4.png" in done.stderr
    assert snapshot(hostile) == before and sorted(p.name for p in (hostile / "data").iterdir()) == listing
    assert not list((tmp_path / "locks").glob("*.lock"))  # released and removed


def test_a_broken_challenge_file_is_said_once(hostile):
    challenges = hostile / "challenges"
    assert challenges.is_dir()  # the project's own copy
    (challenges / "mini.yaml").write_text((challenges / "mini.yaml").read_text().replace("schema_version: 1",
                                                                                       "schema_version: 2"))
    done = no_traceback(harness_cli("validate", cwd=hostile, env={"HARNESS_CHALLENGES_DIR": str(challenges)}))
    assert done.returncode == 1
    assert done.stdout.count("challenges/mini.yaml: schema_version") == 1, done.stdout
    json.dumps(done.stdout)  # printable
