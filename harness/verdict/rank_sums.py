"""Tracks ranked by sums of ranks (NTIRE 2022 Efficient SR: sub-track 1 adds the parameter and FLOPs ranks,
sub-track 2 five ranks), and the published quality bar checked against whom the organizers ranked.

A rank-sum track names the tracks whose ranks it adds up (challenges/<id>.yaml: rank_sum). The lowest sum ranks
first and equal sums share a rank (1, 1, 3), as the organizers' table shows (all but once). Ranked again, each
component track is ranked again first (harness.verdict.leaderboard.reproduced) and its new ranks are added up; a move
says which component ranks moved it.
"""

from __future__ import annotations

from harness.catalogue.challenges import Challenge, Track
from harness.catalogue.manifests import Manifest
from harness.core.errors import ManifestProblem


def shared_ranks(sums: dict[str, int]) -> dict[str, int]:
    """Competition ranks of `sums` (team -> sum), the lowest first: one more than the number of lower sums."""
    return {team: 1 + sum(1 for other in sums.values() if other < value) for team, value in sums.items()}


def _published_ranks(team: Manifest, dataset: str) -> dict[str, int]:
    return dict((team.published(dataset) or {}).get("ranks", {}))


def _kept_tie_order(ranks: dict[str, int], before: dict[str, int], after: dict[str, int],
                    published: dict[str, int]) -> dict[str, int]:
    """Where the organizers ordered a group of equal sums (rather than sharing its rank) and the group is the
    same after, its order stays theirs: nothing moved it."""
    kept = dict(ranks)
    old_shared = shared_ranks(before)
    for team in ranks:
        group_before = {t for t in before if before[t] == before[team]}
        group_after = {t for t in after if after[t] == after[team]}
        if group_before == group_after:
            kept[team] = ranks[team] + published[team] - old_shared[team]
    return kept


def rank_sum_problems(challenge: Challenge, teams: list[Manifest], track: Track) -> list[ManifestProblem]:
    """Each team's published rank in a rank-sum track follows the sum of its published component ranks among the
    teams ranked in the track: equal sums share the first rank of their group, or take the group's ranks in
    some order (the 2022 figure shares every tie but one: MegSR and Alpan Team, both 18 in sub-track 1, rank 9
    and 10); a team ranked in it has a rank in every component."""
    dataset = challenge.test_dataset
    ranked = [t for t in teams if track.id in _published_ranks(t, dataset)]
    problems, sums = [], {}
    for team in ranked:
        ranks = _published_ranks(team, dataset)
        missing = [part for part in track.rank_sum if part not in ranks]
        if missing:
            problems.append(ManifestProblem(str(team.path), f"published.{dataset}.ranks",
                                            f"ranked in {track.id} but not in {', '.join(missing)}", "rank-sum-parts"))
            continue
        sums[team.id] = sum(ranks[part] for part in track.rank_sum)
    expected = shared_ranks(sums)
    for team in ranked:
        group = sum(1 for value in sums.values() if value == sums.get(team.id))  # equal sums, this one included
        if team.id in expected and not 0 <= _published_ranks(team, dataset)[track.id] - expected[team.id] < group:
            problems.append(ManifestProblem(
                str(team.path), f"published.{dataset}.ranks.{track.id}",
                f"{_published_ranks(team, dataset)[track.id]}, but its ranks in {' + '.join(track.rank_sum)} add up to "
                f"{sums[team.id]}, which ranks {expected[team.id]}: {track.rule()}", "ranks-follow-rule",
                "a mistyped rank"))
    return problems


def rank_sum_board(challenge: Challenge, track: Track, teams: list[Manifest], boards: dict[str, dict]) -> dict | None:
    """The rank-sum track ranked again from its component tracks ranked again (`boards`: track id -> the board
    harness.verdict.leaderboard.reproduced made); None when a component has no board."""
    if any(part not in boards for part in track.rank_sum):
        return None
    dataset = challenge.test_dataset
    names = {t.id: t.name for t in teams}
    published = {t.id: _published_ranks(t, dataset) for t in teams if track.id in _published_ranks(t, dataset)}
    component = {part: {e["team"]: e for e in boards[part]["entries"]} for part in track.rank_sum}
    members = [team for team in published if all(team in component[part] for part in track.rank_sum)]
    before = {team: sum(published[team][part] for part in track.rank_sum) for team in members}
    after = {team: sum(component[part][team]["reproduced_rank"] for part in track.rank_sum) for team in members}
    new_rank = _kept_tie_order(shared_ranks(after), before, after, {t: published[t][track.id] for t in members})
    entries = []
    for team in sorted(members, key=lambda t: (published[t][track.id], t)):
        moved = [f"{part} {component[part][team]['published_rank']} → {component[part][team]['reproduced_rank']}"
                 for part in track.rank_sum if component[part][team]["change"]]
        entries.append({"team": team, "name": names.get(team, team), "published": before[team], "precision": 0,
                        "published_rank": published[team][track.id], "reproduced": after[team],
                        "audited": any(component[part][team]["audited"] for part in track.rank_sum),
                        "reproduced_rank": new_rank[team], "change": published[team][track.id] - new_rank[team],
                        "why": ", ".join(moved)})
    return {"challenge": challenge.id, "challenge_name": challenge.name, "track": track.id, "title": track.title,
            "metric": "rank sum (" + " + ".join(track.rank_sum) + ")", "direction": "lower", "entries": entries,
            "changes": [{"team": e["team"], "published_rank": e["published_rank"],
                         "reproduced_rank": e["reproduced_rank"], "why": e["why"]} for e in entries if e["change"]]}


def bar_findings(challenge: Challenge, teams: list[Manifest]) -> list[str]:
    """Where the organizers' list and their published bar disagree: a ranked team below the bar, a team listed
    unranked (below the line) at or above it. The list decides the ranks; this says where the bar as written
    would not. The table's reference rows (challenge.references) are neither."""
    dataset = challenge.test_dataset
    first = challenge.tracks[0].id
    findings = []
    for metric, bar_dataset, at_least in challenge.bar:
        for team in (t for t in teams if t.data["challenge"] == challenge.id and t.id not in challenge.references):
            value = ((team.published(bar_dataset) or {}).get("values") or {}).get(metric)
            ranked = first in _published_ranks(team, dataset)
            if value is not None and ranked and value < at_least:
                findings.append(f"{team.id} is ranked with {metric} {value} on {bar_dataset}, below the bar {at_least}")
            elif value is not None and not ranked and value >= at_least:
                findings.append(f"{team.id} is listed unranked with {metric} {value} on {bar_dataset}, at or above "
                                f"the bar {at_least}")
    return findings
