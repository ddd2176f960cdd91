"""NTIRE 2022 Efficient SR as data: every row of its results table (tests/data/ntire2022_esr_published.csv,
transcribed from figs/results.png) is one manifest with the same numbers and ranks; its rank-sum tracks follow
the published component ranks; the published bar against whom the organizers ranked; ranked again."""

import csv
from pathlib import Path

import pytest

from harness.catalogue import challenges, roster
from harness.core.project import Project
from harness.verdict import leaderboard, rank_sums

from conftest import REPO

ROWS = list(csv.DictReader((Path(__file__).parents[2] / "data" / "ntire2022_esr_published.csv").read_text()
                           .splitlines()))
MODEL = {"params": "params_m", "flops": "flops_g", "activations": "acts_m", "conv2d": "conv",
         "runtime": "ave_time_ms", "gpu_memory": "gpu_mem_m"}
RANKS = {"main": "main_track_rank", "sub1": "subtrack1_rank", "sub2": "subtrack2_rank", "params": "params_rank",
         "flops": "flops_rank", "activations": "acts_rank", "memory": "gpu_mem_rank"}


@pytest.fixture(scope="module")
def teams():
    everyone, problems = roster.load_all(Project(REPO))
    assert not problems
    return [t for t in everyone if t.data["challenge"] == "ntire2022-esr"]


def test_every_row_of_the_figure_is_one_manifest_with_its_numbers(teams):
    by_name = {t.name: t for t in teams}
    assert len(teams) == len(ROWS) == 45
    for row in ROWS:
        team = by_name[row["team_name"]]
        model, test = team.published("model"), team.published("ntire2022-test")
        assert model["values"] == {k: float(row[c]) for k, c in MODEL.items()}, row["team_name"]
        assert model["precision"] == {"params": 3, "flops": 2, "activations": 2, "conv2d": 0, "runtime": 2,
                                      "gpu_memory": 2}
        assert team.published("div2k-valid")["values"]["psnr_rgb"] == float(row["val_psnr_db"])
        assert test["values"]["psnr_rgb"] == float(row["test_psnr_db"])
        if row["ranked"] == "yes":
            assert test["ranks"] == {k: int(row[c]) for k, c in RANKS.items()}
            assert sum(test["ranks"][p] for p in ("params", "flops")) == int(row["subtrack1_score"])
        else:
            assert "ranks" not in test
        assert team.runnable == bool(row["model_class"]), row["team_name"]
        if team.runnable:
            assert team.entry["data_range"] == float(row["data_range"])
            assert team.weights[0]["source"]["path"] == row["weights_path"]


def test_the_published_ranks_follow_the_tracks_rules(teams):
    rules = challenges.get("ntire2022-esr")
    assert leaderboard.rank_problems(rules, teams) == []
    assert rules.model_counter == "model_summary" and rules.track("sub2").rank_sum == ("main", "params", "flops",
                                                                                          "activations", "memory")


def test_equal_sums_share_a_rank():
    assert rank_sums.shared_ranks({"a": 3, "b": 3, "c": 5, "d": 2}) == {"a": 2, "b": 2, "c": 4, "d": 1}


def test_the_bar_as_written_is_not_whom_the_organizers_ranked(teams):
    findings = rank_sums.bar_findings(challenges.get("ntire2022-esr"), teams)
    below = sorted(f.split()[0] for f in findings if "is ranked" in f)
    above = sorted(f.split()[0] for f in findings if "listed unranked" in f)
    assert below == ["ntire2022-esr-ccenbgdd", "ntire2022-esr-neptune", "ntire2022-esr-nju-mcg",
                     "ntire2022-esr-njust-esr", "ntire2022-esr-njust-restorarion", "ntire2022-esr-tieguodun"]
    assert above == ["ntire2022-esr-strong-tiger", "ntire2022-esr-vap"]


def test_ranked_again_a_rank_sum_moves_with_its_components_and_says_which(teams):
    rules = challenges.get("ntire2022-esr")
    boards = {}
    for track in (t for t in rules.tracks if not t.rank_sum):
        values = {"ntire2022-esr-xpixel": 2.02} if track.rank_by == "flops" else {}
        boards[track.id] = leaderboard.reproduced(rules, teams, "ntire2022-test", values, track)
    sub1 = rank_sums.rank_sum_board(rules, rules.track("sub1"), teams, boards)
    unchanged = rank_sums.rank_sum_board(rules, rules.track("sub2"), teams, {
        t.id: leaderboard.reproduced(rules, teams, "ntire2022-test", {}, t) for t in rules.tracks if not t.rank_sum})
    assert unchanged["changes"] == []  # MegSR and Alpan Team keep the order the figure gave their equal sums
    xpixel = next(e for e in sub1["entries"] if e["team"] == "ntire2022-esr-xpixel")
    assert (xpixel["published"], xpixel["reproduced"], xpixel["reproduced_rank"]) == (3, 2, 1)
    njust = next(c for c in sub1["changes"] if c["team"] == "ntire2022-esr-njust-esr")
    assert njust == {"team": "ntire2022-esr-njust-esr", "published_rank": 1, "reproduced_rank": 2,
                     "why": "flops 1 → 2"}
