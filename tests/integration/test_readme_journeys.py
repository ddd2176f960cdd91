"""The README's journeys as written: every `harness` line of them is a command the CLI takes, with the
options it names, and the team journey runs in its order on a real DVC repository: the run `verify` makes
is the pipeline's own, so `dvc repro` does not run the team again."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_project, harness_cli


def journeys() -> dict[str, list[str]]:
    """Each journey's shell lines (comments dropped), by its heading."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Three journeys"):text.index("## Verdicts")]
    found: dict[str, list[str]] = {}
    for heading, body in re.findall(r"^### (.+?)\n(.*?)(?=^### |\Z)", section, re.S | re.M):
        for block in re.findall(r"```sh\n(.*?)```", body, re.S):
            lines = [line.split("  #")[0].strip() for line in block.splitlines()]
            found.setdefault(heading, []).extend(line for line in lines if line)
    return found


def test_every_journey_command_is_one_the_cli_takes():
    import click

    from harness.cli import cli

    lines = [line for steps in journeys().values() for line in steps]
    assert len(journeys()) == 3 and sum(line.startswith("harness ") for line in lines) >= 12
    for line in lines:
        if not line.startswith("harness "):
            assert line.startswith("$EDITOR "), line  # the steps a person does by hand
            continue
        args, group = shlex.split(line)[1:], cli
        context = click.Context(cli, info_name="harness")
        while True:  # `fetch code`, `data import`: subcommands of a family
            name, command, args = group.resolve_command(context, args)
            assert command is not None, line
            if not isinstance(command, click.Group):
                command.make_context(name, list(args), parent=context)  # options and arguments as given
                break
            context, group = click.Context(command, info_name=name, parent=context), command


@pytest.mark.slow
@pytest.mark.dvc
def test_the_team_journey_in_the_readmes_order_runs_the_team_once(tmp_path, niqe_cache, downloads):
    steps = journeys()["3. A team adds itself"]
    assert [line.split()[:2] for line in steps] == [
        ["harness", "new-team"], ["$EDITOR", "teams/my-team/manifest.yaml"], ["harness", "validate"],
        ["harness", "smoke"], ["$EDITOR", "params.yaml"], ["harness", "verify"]]
    root = copy_project(tmp_path / "repo", teams=["bicubic"])
    shutil.copytree(niqe_cache, root / ".cache" / "metric-weights")  # as `make audit` leaves it: NIQE's parameters
    env = {**os.environ, "HARNESS_DOWNLOADS": str(downloads),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("HARNESS_METRIC_WEIGHTS", None)  # the checkout's own cache, as the pipeline's stages use it
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        subprocess.run(command, cwd=root, env=env, check=True, capture_output=True)

    def edit(path: str) -> None:
        """What the person writes: the team (a classical method, so the test needs no weights), then params."""
        if path == "teams/my-team/manifest.yaml":
            team = yaml.safe_load((REPO / "teams" / "bicubic" / "manifest.yaml").read_text())
            (root / path).write_text(yaml.safe_dump({**team, "id": "my-team", "name": "My Team"}, sort_keys=False))
        else:
            params = yaml.safe_load((root / path).read_text())
            (root / path).write_text(yaml.safe_dump({**params, "teams": ["bicubic", "my-team"],
                                                     "metrics": ["psnr", "ssim", "niqe"]}, sort_keys=False))

    for line in steps:
        words = shlex.split(line)
        if words[0] == "$EDITOR":
            edit(words[1])
            continue
        done = harness_cli(*words[1:], cwd=root, env=env)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    assert "recorded as the pipeline's run of my-team" in done.stdout, done.stdout + done.stderr
    repro = subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True)
    assert repro.returncode == 0, repro.stdout + repro.stderr
    ran = set(re.findall(r"Running stage '([^']+)'", repro.stdout))
    assert "infer@bicubic" in ran and not ran & {"infer@my-team", "evaluate@my-team"}, ran


def test_the_researchers_first_step_says_what_the_readme_says(tmp_path):
    """Journey 1 begins with the plan: on a fresh checkout it exits 2 with the line the README quotes."""
    readme = " ".join((REPO / "README.md").read_text().split())
    quoted = re.search(r"exits 2: `(error: samsungaicamera cannot be checked [^`]+)`", readme).group(1)
    first = journeys()["1. A researcher checks one published number"][0]
    assert first == "harness verify samsungaicamera --plan"
    root = copy_project(tmp_path / "project")
    done = harness_cli(*shlex.split(first)[1:], cwd=root)
    assert done.returncode == 2 and quoted in " ".join(done.stderr.split()), done.stderr
