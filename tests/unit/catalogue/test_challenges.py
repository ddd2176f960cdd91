"""Challenges as data: the files validate, a broken one is refused with its rule, a challenge's tolerance
reaches the verdict, and a track ranked again with reproduced values names every rank that changes."""

import shutil
from pathlib import Path

import pytest
import yaml

from harness.catalogue import challenges, datasets, metrics, roster
from harness.catalogue.manifests import Manifest
from harness.core.errors import ManifestError
from harness.core.project import Project
from harness.core.records import TeamEvaluation
from harness.verdict import leaderboard, rules

from conftest import REPO, harness_cli


def test_every_challenge_file_validates_and_names_what_exists():
    rules = challenges.catalogue()
    assert {"mini", "ntire2025-sr-x4"} <= set(rules)
    for challenge_id, rule in rules.items():
        assert rule.path == REPO / "challenges" / f"{challenge_id}.yaml"
        assert datasets.get(rule.test_dataset)  # built in, or declared by a challenge
    assert challenges.metric_problems(rules, metrics.METRICS) == []
    assert challenges.dataset_problems(rules, list(datasets.BUILTIN_DATASETS)) == []
    assert datasets.get("ntire2025-test").stems == tuple(f"{i:04d}" for i in range(901, 1001))
    assert "organizers" in datasets.get("ntire2025-test").hr_origin


def folder_with(tmp_path: Path, edit) -> Path:
    """A copy of challenges/ with one challenge file changed by edit(data) -> data."""
    folder = tmp_path / "challenges"
    shutil.copytree(REPO / "challenges", folder)
    path = folder / "ntire2025-sr-x4.yaml"
    path.write_text(yaml.safe_dump(edit(yaml.safe_load(path.read_text())), sort_keys=False))
    return folder


def refused(folder: Path) -> list[str]:
    try:
        rules = challenges._catalogue(folder)
    except ManifestError as exc:
        return [p.rule for p in exc.problems]
    return [p.rule for p in challenges.metric_problems(rules, metrics.METRICS)
            + challenges.dataset_problems(rules, list(datasets.BUILTIN_DATASETS))]


def test_a_broken_challenge_file_is_refused_with_its_rule(tmp_path):
    def term(which, **changes):
        def edit(d):
            terms = [{**t, **changes} if t["metric"] == which else t for t in d["scores"][0]["terms"]]
            d["scores"][0]["terms"] = [{k: v for k, v in t.items() if v is not None} for t in terms]
            return d
        return edit

    def track(index, **changes):
        def edit(d):
            d["tracks"][index].update(changes)
            return d
        return edit

    cases = {
        "schema": lambda d: {**d, "tracks": [{**d["tracks"][0], "direction": "up"}]},
        "known-metric": track(0, metrics=["psnr", "ssim", "psnr-y"]),
        "score-defined-once": term("niqe", floor=None, offset=1),  # the clamp dropped: not the mini's score
        "direction-agrees": track(0, direction="lower"),
        "rank-by-reported": track(1, rank_by="psnr"),
        "one-test-dataset": lambda d: {**d, "datasets": [{**x, "role": "validation"} for x in d["datasets"]]},
        "known-dataset": lambda d: {**d, "datasets": d["datasets"] + [{"id": "div2k-test", "role": "validation"}]},
        "dataset-unique": lambda d: {**d, "datasets": d["datasets"] + [{**d["datasets"][0], "id": "mini",
                                                                        "role": "validation"}]},
        "id-matches-file": lambda d: {**d, "id": "ntire2025"},
    }
    for rule, edit in cases.items():
        found = refused(folder_with(tmp_path / rule, edit))
        assert rule in found, (rule, found)
    assert refused(folder_with(tmp_path / "untouched", lambda d: d)) == []


def test_validate_reports_a_broken_challenge_file(project, monkeypatch):
    path = REPO / "challenges" / "ntire2025-sr-x4.yaml"
    broken = path.read_text().replace("rank_by: psnr", "rank_by: psnr_y")
    folder = project / "challenges-broken"
    shutil.copytree(REPO / "challenges", folder)
    (folder / path.name).write_text(broken)
    done = harness_cli("validate", cwd=project, env={"HARNESS_CHALLENGES_DIR": str(folder)})
    assert done.returncode == 1, done.stdout
    assert "challenges/ntire2025-sr-x4.yaml: tracks.0.rank_by: 'psnr_y' is not one of the track's metrics" \
        in done.stdout


def test_a_manifest_names_a_known_challenge_and_its_tracks(project):
    path = project / "teams" / "bbox" / "manifest.yaml"
    original = yaml.safe_load(path.read_text())
    for change, rule, field in [({"challenge": "ntire2025"}, "known-challenge", "challenge"),
                                ({"tracks": ["restoration", "fidelity"]}, "known-track", "tracks")]:
        path.write_text(yaml.safe_dump({**original, **change}, sort_keys=False))
        done = harness_cli("validate", "bbox", cwd=project)
        assert done.returncode == 1 and f"{field}:" in done.stdout and f"(rule: {rule})" in done.stdout, done.stdout
    pub = original["published"]["ntire2025-test"]
    renamed = {**original, "published": {"ntire2025-test": {**pub, "ranks": {"track3": 2}}}}
    path.write_text(yaml.safe_dump(renamed, sort_keys=False))
    done = harness_cli("validate", "bbox", cwd=project)
    assert "published.ntire2025-test.ranks.track3: 'track3' is not a track id of ntire2025-sr-x4" in done.stdout


def test_a_challenges_tolerance_reaches_the_verdict(tmp_path, monkeypatch):
    team = Manifest(Path("teams/t/manifest.yaml"), {
        "id": "t", "name": "T", "challenge": "mini", "determinism": {"class": "deterministic"},
        "status": {"runnable": True},
        "published": {"mini": {"values": {"psnr": 30.0}, "precision": {"psnr": 2}}}}, b"")
    evaluation = TeamEvaluation(
        team="t", dataset="mini", mode="faithful", metrics=["psnr"], run_key="", harness_version="0",
        pyiqa_version=None, metric_weights={}, inference={"status": "ok", "failure": None, "runner": "local"},
        runs=[{"run": "run-1", "status": "ok", "mean": {"psnr": 30.2}, "unavailable": {}, "findings": [],
               "per_image": {"0001": {"psnr": 30.2}}, "failed_images": {}}])
    assert rules.judge(team, "mini", evaluation)["verdict"] == "diverged"
    folder = tmp_path / "challenges"
    shutil.copytree(REPO / "challenges", folder)
    mini = yaml.safe_load((folder / "mini.yaml").read_text())
    (folder / "mini.yaml").write_text(yaml.safe_dump({**mini, "tolerances": {"psnr": {"abs": 0.3}}}))
    monkeypatch.setattr(challenges, "CHALLENGES_DIR", folder)
    result = rules.judge(team, "mini", evaluation)
    assert result["verdict"] == "reproduced" and result["metrics"]["psnr"]["tolerance"] == pytest.approx(0.305)
    team.data["published"]["mini"]["tolerance"] = {"psnr": {"abs": 0.1}}  # the manifest's own still wins
    assert rules.judge(team, "mini", evaluation)["verdict"] == "diverged"


def ntire2025_teams():
    teams, problems = roster.load_all(Project(REPO))
    assert problems == []
    return teams


def test_a_track_ranked_again_names_every_rank_that_changes():
    rules = challenges.get("ntire2025-sr-x4")
    teams = ntire2025_teams()
    track1 = rules.track("track1")
    # bbox (published 2nd, 31.97) reproduced above SamsungAICamera's 33.46; xiaomimm audited, as published
    board = leaderboard.reproduced(rules, teams, "ntire2025-test", {"bbox": 33.5, "xiaomimm": 31.93}, track1)
    assert len(board["entries"]) == 24  # the ranked teams; the late entries and the baseline stay out
    assert board["changes"] == [{"team": "samsungaicamera", "published_rank": 1, "reproduced_rank": 2},
                                {"team": "bbox", "published_rank": 2, "reproduced_rank": 1}]
    kept = next(e for e in board["entries"] if e["team"] == "nju-mcg")
    assert kept["reproduced"] is None and not kept["audited"] and kept["reproduced_rank"] == 4
    assert leaderboard.change_line(board) == ("ntire2025-sr-x4 track1 (restoration (PSNR)): 2 rank(s) change: "
                                              "samsungaicamera 1 → 2, bbox 2 → 1")
    # equal values keep the published order (the organizers broke ties on unrounded values)
    tie = leaderboard.reproduced(rules, teams, "ntire2025-test", {"endeavour": 31.15}, track1)
    assert tie["changes"] == []  # x-l (5th) and endeavour (6th) both at 31.15
    down = leaderboard.reproduced(rules, teams, "ntire2025-test", {"samsungaicamera": 20.0}, track1)
    assert down["changes"][0] == {"team": "samsungaicamera", "published_rank": 1, "reproduced_rank": 24}
    assert all(c["published_rank"] - c["reproduced_rank"] == 1 for c in down["changes"][1:])
    assert len(down["changes"]) == 24


def test_a_track_without_published_ranks_ranks_by_the_published_values():
    rules = challenges.get("mini")
    board = leaderboard.reproduced(rules, ntire2025_teams(), "mini", {"bicubic": 27.0}, rules.track("track1"))
    assert [e["team"] for e in board["entries"]] == ["bicubic", "random-tta", "realesr-animevideov3",
                                                     "realesrgan-x4plus"]
    assert [(c["team"], c["reproduced_rank"]) for c in board["changes"]] == [
        ("bicubic", 4), ("random-tta", 1), ("realesr-animevideov3", 2), ("realesrgan-x4plus", 3)]


def test_metrics_lists_each_metrics_terms_and_who_defines_each_score(project):
    done = harness_cli("metrics", cwd=project, env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert "perceptual_score: 1 + -0.1·v (≥ 0)" in done.stdout and "defined by mini, ntire2025-sr-x4" in done.stdout


def test_a_commit_bump_of_the_2026_code_is_one_edit_of_the_challenge_file(tmp_path, monkeypatch):
    """The organizers' commit is written once (challenges/ntire2026-sr-x4.yaml); every manifest whose code
    names no repository of its own takes it, and the team's run key and hash follow it."""
    pinned, bumped = "9a2562bfbae8b30cb80afa414d910b5f909a1427", "abc1234" * 5 + "abcde"
    before = {t.id: t for t in ntire2025_teams() if t.data["challenge"] == "ntire2026-sr-x4"}
    assert len(before) == 31 and {t.data["code"]["commit"] for t in before.values()} == {pinned}
    folder = tmp_path / "challenges"
    shutil.copytree(REPO / "challenges", folder)
    text = (folder / "ntire2026-sr-x4.yaml").read_text()
    assert text.count(f"commit: {pinned}") == 1
    (folder / "ntire2026-sr-x4.yaml").write_text(text.replace(f"commit: {pinned}", f"commit: {bumped}"))
    monkeypatch.setattr(challenges, "CHALLENGES_DIR", folder)
    after = {t.id: t for t in ntire2025_teams() if t.data["challenge"] == "ntire2026-sr-x4"}
    assert {t.data["code"]["commit"] for t in after.values()} == {bumped}
    for team_id, team in after.items():
        assert team.run_key != before[team_id].run_key and team.hash != before[team_id].hash
        assert team.data["published"] == before[team_id].data["published"]  # only the commit moved
    # a code block naming a repository of its own keeps its own commit
    from harness.catalogue import manifests

    own = manifests.resolve({**before["ntire2026-psu"].data, "code": {"repository": "https://example.invalid/x.git",
                                                                    "commit": "abcdef0", "path": "."}})
    assert own["code"] == {"repository": "https://example.invalid/x.git", "commit": "abcdef0", "path": "."}


def test_a_manifests_own_value_wins_over_its_challenges_default(tmp_path):
    from harness.catalogue import manifests

    data = yaml.safe_load((REPO / "teams" / "ntire2026-psu" / "manifest.yaml").read_text())
    assert "tracks" not in data and "precision" not in data["published"]["ntire2026-test"]  # from the challenge
    data["runtime"]["timeout_s"] = 60
    data["published"]["ntire2026-test"]["precision"] = {"psnr": 3}
    resolved = manifests.resolve(data)
    assert resolved["runtime"]["timeout_s"] == 60 and resolved["runtime"]["scale"] == 4
    assert resolved["published"]["ntire2026-test"]["precision"]["psnr"] == 3
    assert resolved["published"]["ntire2026-test"]["precision"]["niqe"] == 4  # merged key by key
    assert resolved["tracks"] == ["restoration", "perceptual"]
    assert list(resolved)[:5] == ["schema_version", "id", "name", "description", "challenge"]


def test_code_is_pinned_by_its_whole_commit_id(tmp_path):
    """A 7-hex prefix is 28 bits that a crafted commit in a mirror can match: challenge files and manifests
    pin the full 40-hex id, and a short one is refused by the schema."""
    from harness.catalogue import manifests

    for known in challenges.catalogue().values():
        commit = (known.data.get("organizers") or {}).get("commit")
        assert commit is None or len(commit) == 40, known.id
    data = yaml.safe_load((REPO / "teams" / "ntire2026-psu" / "manifest.yaml").read_text())
    data["code"] = {"repository": "https://example.invalid/x.git", "commit": "9a2562b", "path": "."}
    problems = manifests.schema_problems(manifests.resolve(data), "psu")
    assert any(p.field == "code.commit" and p.rule == "pattern" for p in problems), problems
