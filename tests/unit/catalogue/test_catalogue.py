"""Every challenge's catalogue: one manifest per published row, the table's own invariants (scores
recompute, ranks follow each track's rule); then the NTIRE 2025 specifics and the recipes."""

import csv
import io
import re
from pathlib import Path

import pytest
import yaml

from harness.catalogue import challenges, roster
from harness.catalogue import manifests as manifest_mod
from harness.core.errors import ManifestError
from harness.core.project import Project
from harness.verdict import leaderboard

from conftest import REPO, harness_cli

# challenge id -> (its published table as transcribed for the tests, manifests expected, its suite)
TABLES = {"ntire2025-sr-x4": ("ntire2025_published.csv", 27, "ntire2025.yaml"),
          "ntire2026-sr-x4": ("ntire2026_published.csv", 31, "ntire2026.yaml")}
METRICS = ["psnr", "ssim", "lpips", "dists", "niqe", "maniqa", "musiq", "clipiqa", "perceptual_score"]


def table(challenge_id):
    name = TABLES[challenge_id][0]
    return list(csv.DictReader(io.StringIO((Path(__file__).parents[2] / "data" / name).read_text())))


def catalogue(root=REPO, challenge_id="ntire2025-sr-x4"):
    teams = [manifest_mod.load(p) for p in sorted((root / "teams").glob("*/manifest.yaml"))
             if not p.parent.name.startswith("_")]
    return [t for t in teams if t.data["challenge"] == challenge_id]


def published(team):
    return team.published(challenges.get(team.data["challenge"]).test_dataset)


@pytest.mark.parametrize("challenge_id", TABLES)
def test_every_row_of_the_table_maps_to_exactly_one_manifest(challenge_id):
    rules = challenges.get(challenge_id)
    teams = catalogue(challenge_id=challenge_id)
    assert len(teams) == TABLES[challenge_id][1]
    by_name = {}
    for team in teams:
        by_name.setdefault(team.name, []).append(team)
    rows = table(challenge_id)
    for row in rows:
        [team] = by_name[row["team"]]
        pub = published(team)
        for metric in METRICS:
            assert pub["values"][metric] == float(row[metric]), (row["team"], metric)
            assert pub["precision"][metric] == (2 if metric == "psnr" else 4)
        if row.get("ranked", "yes") == "yes":
            assert pub["ranks"] == {"track1": int(row["rank_track1"]), "track2": int(row["rank_track2"])}
            assert team.data["code"]["path"] == f"models/{row['folder']}"
            assert team.data["code"]["repository"] == rules.data["organizers"]["repository"]
            assert team.data["code"]["commit"] == rules.data["organizers"]["commit"]
        else:
            assert "ranks" not in pub and "code" not in team.data and not team.runnable
        assert rules.data["table"]["citation"].split(" at ")[-1] in pub["source"]["citation"]
        assert rules.data["citation"].split(", ")[-1] in pub["source"]["citation"]
    unpublished = [t for t in teams if not published(t)]
    assert len(teams) - len(unpublished) == len(rows)


@pytest.mark.parametrize("challenge_id", TABLES)
def test_each_score_recomputes_from_its_components_within_rounding(challenge_id):
    score = challenges.get(challenge_id).scores["perceptual_score"]
    checked = 0
    for team in catalogue(challenge_id=challenge_id):
        pub = published(team)
        if pub:
            assert score.inconsistency(pub["values"], pub["precision"]) is None, team.id
            assert abs(score.value(pub["values"]) - pub["values"]["perceptual_score"]) <= 6 * 0.00005 + 0.00005
            checked += 1
    assert checked == len(table(challenge_id))


@pytest.mark.parametrize("challenge_id", TABLES)
def test_each_tracks_ranks_follow_its_rule(challenge_id):
    rules = challenges.get(challenge_id)
    assert [(t.id, t.rank_by, t.direction) for t in rules.tracks] == [("track1", "psnr", "higher"),
                                                                      ("track2", "perceptual_score", "higher")]
    assert leaderboard.rank_problems(rules, catalogue(challenge_id=challenge_id)) == []


@pytest.mark.parametrize("challenge_id", TABLES)
def test_each_challenge_has_a_suite_that_audits_every_published_team(challenge_id):
    from harness.core import settings

    suite = settings.load(REPO / "suites" / TABLES[challenge_id][2])  # valid settings
    assert suite.dataset == challenges.get(challenge_id).test_dataset
    assert sorted(suite.teams) == sorted(t.id for t in catalogue(challenge_id=challenge_id) if published(t))


def test_list_shows_the_2026_table(project):
    import json

    listed = json.loads(harness_cli("list", "--json", "--challenge", "ntire2026-sr-x4", cwd=project).stdout)["teams"]
    rows = {r["team"]: r for r in table("ntire2026-sr-x4")}
    assert len(listed) == 31 and {t["name"] for t in listed} == set(rows)
    for team in listed:
        row = rows[team["name"]]
        assert team["dataset"] == "ntire2026-test" and team["challenge"] == "ntire2026-sr-x4"
        assert team["published"] == {m: float(row[m]) for m in METRICS}
        assert team["ranks"] == {"track1": int(row["rank_track1"]), "track2": int(row["rank_track2"])}
    assert [t["ranks"]["track1"] for t in listed] == list(range(1, 32))  # listed in track-1 order
    unknown = harness_cli("list", "--challenge", "ntire2027-sr-x4", cwd=project)
    assert unknown.returncode != 0 and "unknown challenge 'ntire2027-sr-x4'" in unknown.stdout + unknown.stderr


def test_the_2026_inventory_records_its_findings():
    teams = {t.id: t for t in catalogue(challenge_id="ntire2026-sr-x4")}
    not_runnable = sorted(t.id.removeprefix("ntire2026-") for t in teams.values() if not t.runnable)
    assert not_runnable == ["aimlab", "ait", "anant-svnit", "april-aigc", "axeraai", "bvisr", "ciplab",
                            "honoraicamera", "kletech-cevi", "mipluscv", "noreject", "randomseed42", "suat",
                            "transsionai", "vai-gm", "vepg"]
    assert all(t.data["status"]["reasons"] for t in teams.values() if not t.runnable)
    defects = {i: " ".join(t.data["status"].get("defects", [])) for i, t in teams.items()}
    assert "SamsungAICamera's NTIRE 2025 network" in defects["ntire2026-i2wm-jnu"]
    assert "JPEG at PIL's default quality (75)" in defects["ntire2026-transsionai"]
    assert teams["ntire2026-ait"].nondeterministic
    for team in teams.values():  # the weights are only on Baidu Netdisk: a person imports them
        assert all(w["source"]["kind"] == "manual" for w in team.weights)
        assert any(w["source"].get("host") == "Baidu Netdisk" for w in team.weights) or not team.weights


def test_a_mistyped_published_value_is_caught(project):
    path = project / "teams" / "bbox" / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    data["published"]["ntire2025-test"]["values"]["lpips"] = 0.2802  # 0.2082 with two digits swapped
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ManifestError) as caught:
        manifest_mod.load(path)
    assert [p.rule for p in caught.value.problems] == ["score-recomputes"]
    data["published"]["ntire2025-test"]["values"]["lpips"] = 0.2082
    data["published"]["ntire2025-test"]["values"]["psnr"] = 31.79  # 31.97 mistyped: still a valid manifest...
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    manifest_mod.load(path)
    [problem] = leaderboard.rank_problems(challenges.get("ntire2025-sr-x4"), catalogue(project))
    assert problem.rule == "ranks-follow-rule"
    assert "xiaomimm (rank 3, psnr 31.93) ranks after bbox (rank 2, psnr 31.79)" in problem.message
    done = harness_cli("validate", cwd=project)  # ...but the table no longer follows PSNR
    assert done.returncode == 1 and "ranks-follow-rule" in done.stdout
    assert done.stdout.strip().splitlines()[-1].endswith("valid, 0 invalid")


def test_known_defects_and_reasons_are_recorded():
    teams = {t.id: t for t in catalogue()}
    assert any("R and B swapped" in d for d in teams["ivplab-sbu"].data["status"]["defects"])
    assert any("truncated" in d for d in teams["mcmir"].data["status"]["defects"])
    assert "truncation" in teams["mcmir"].determinism["sources"]
    assert teams["snucv"].nondeterministic and "unseeded-sampling" in teams["snucv"].determinism["sources"]
    not_runnable = sorted(t.id for t in teams.values() if not t.runnable)
    assert not_runnable == ["aimanga", "cidautai", "hyperpix", "ipcv-team", "kletech-cevi", "psu", "quantum-res", "x-l"]
    assert all(t.data["status"]["reasons"] for t in teams.values() if not t.runnable)
    hyphenated = [t for t in teams.values() if "-" in t.data.get("code", {}).get("path", "")]
    assert len(hyphenated) == 5


def test_recipes_start_from_pinned_official_images():
    dockerfiles = {d.parent.name: d for d in sorted((REPO / "containers").glob("*/Dockerfile"))}
    assert len(dockerfiles) >= 3
    for name, dockerfile in dockerfiles.items():
        args = manifest_mod.dockerfile_args(dockerfile)
        assert re.fullmatch(r"pytorch/pytorch:[\w.-]+@sha256:[0-9a-f]{64}", args["BASE_IMAGE"]), dockerfile
        text = dockerfile.read_text()
        assert "FROM ${BASE_IMAGE}" in text and "USER 10001" in text, dockerfile
        if name == "evaluator":
            assert 'ENTRYPOINT ["python", "-m", "harness"]' in text
        else:  # a team recipe: the adapter, and the team folder the adapter reads its manifest from
            assert 'ENTRYPOINT ["python", "-m", "harness.adapter"]' in text, dockerfile
            assert "TEAM_ID" in args and "COPY teams/${TEAM_ID}" in text, dockerfile
    catalogue_recipes = {t.container["recipe"] for c in ("ntire2025-sr-x4", "ntire2026-sr-x4")
                         for t in catalogue(challenge_id=c) if t.container}
    for name in catalogue_recipes:  # no network for the code: the pinned checkout is mounted at /opt/code
        args, text = manifest_mod.dockerfile_args(dockerfiles[name]), dockerfiles[name].read_text()
        assert "git clone" not in text and "HARNESS_CODE_DIR=/opt/code" in text, name
        requirements = (dockerfiles[name].parent / "requirements.txt").read_text()
        # the organizers' utils import matplotlib: the family pins it, in the file the image installs
        assert "EXTRA_PACKAGES" in args and "matplotlib==" in requirements, name
        assert f"containers/{name}/requirements.txt" in text, name
    mini_recipes = {roster.load(Project(REPO), t).container["recipe"]
                    for t in ("bicubic", "realesrgan-x4plus", "realesr-animevideov3", "random-tta")}
    esr_recipes = {t.container["recipe"] for t in catalogue(challenge_id="ntire2026-esr")}
    assert catalogue_recipes | mini_recipes | esr_recipes | {"evaluator"} == set(dockerfiles)


def test_validate_checks_recipes_and_build_args(project):
    path = project / "teams" / "adadat" / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    data["container"] = {"recipe": "torch26-cu12", "build_args": {}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    done = harness_cli("validate", "adadat", cwd=project)
    assert done.returncode == 1 and "container.recipe" in done.stdout and "did you mean 'torch26-cu124'" in done.stdout
    data["container"] = {"recipe": "torch26-cu124", "build_args": {"EXTRA_PACKAGE": "x"}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    done = harness_cli("validate", "adadat", cwd=project)
    assert done.returncode == 1 and "declares no ARG EXTRA_PACKAGE" in done.stdout


def test_list_filters_and_show(project):
    import json

    everything = json.loads(harness_cli("list", "--json", "--challenge", "ntire2025-sr-x4", cwd=project).stdout)
    assert len(everything["teams"]) == 27
    runnable = json.loads(harness_cli("list", "--json", "--challenge", "ntire2025-sr-x4", "--runnable",
                                      cwd=project).stdout)
    assert len(runnable["teams"]) == 19
    track2 = json.loads(harness_cli("list", "--json", "--track", "perceptual", "--challenge", "ntire2025-sr-x4",
                                    cwd=project).stdout)
    assert len(track2["teams"]) == 24
    table = harness_cli("list", cwd=project).stdout
    assert "SamsungAICamera" in table and "basicsr-hat" in table
    shown = harness_cli("show", "ivplab-sbu", cwd=project).stdout
    assert "known defect: saves its outputs with R and B swapped" in shown


def test_what_a_manifest_needs_reaches_its_image():
    from harness.run import docker_images

    proj = Project(REPO)
    ivplab = docker_images.team_recipe(roster.load(proj, "ivplab-sbu"), REPO, "local/base")
    # its basicsr over the family's 1.4.2, in the image and in the local runner's environment alike
    assert ivplab.build_args["EXTRA_PACKAGES"] == "basicsr==1.3.5 pytorch_wavelets==1.3.0"
    assert ivplab.build_args["BASE_IMAGE"] == "local/base" and ivplab.build_args["TEAM_ID"] == "ivplab-sbu"
    assert "EXTRA_PACKAGES" not in docker_images.team_recipe(roster.load(proj, "bicubic"), REPO).build_args
    recipe = docker_images.team_recipe(roster.load(proj, "xiaomimm"), REPO)
    assert "basicsr==1.4.2" in recipe.build_args["EXTRA_PACKAGES"]


def test_the_status_page_in_docs_is_the_one_the_manifests_make():
    """docs/status.md is generated (`make docs`); a manifest changed without it is caught here."""
    from harness.catalogue import challenges, roster
    from harness.core.project import Project
    from harness.report import status_page

    teams, problems = roster.load_all(Project(REPO))
    made = status_page.markdown(teams, challenges.catalogue())
    assert not problems and (REPO / "docs" / "status.md").read_text() == made, "run `make docs`"
    not_runnable = [t for t in teams if not t.runnable]
    assert all(f"`{t.id}`" in made for t in teams) and not_runnable
    assert all(status_page.state(t).startswith("not runnable: ") for t in not_runnable)  # each with its reasons
