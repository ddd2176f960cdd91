"""A challenge's tracks as tables: the published ranks checked against the track's rule, and each track
ranked again with the reproduced values.

A track's rule (challenges/<id>.yaml) names the metric or score the ranks follow and which way. The
organizers ordered equal published values by their unrounded values, which only the published ranks
keep, so a published tie may come in either order and the published rank breaks ties between values
that are equal here.
"""

from __future__ import annotations

from .challenge import Challenge, Track
from .errors import ManifestProblem
from .manifest import Manifest


def _ranked(teams: list[Manifest], track: Track, dataset: str) -> list[tuple[Manifest, dict]]:
    """The teams with a published rank in the track, each with its published entry, in rank order."""
    entries = [(t, t.published(dataset)) for t in teams]
    return sorted(((t, p) for t, p in entries if p and track.id in p.get("ranks", {})),
                  key=lambda pair: pair[1]["ranks"][track.id])


def rank_problems(challenge: Challenge, teams: list[Manifest]) -> list[ManifestProblem]:
    """Each track's published ranks are 1..N, once each, and follow the track's rule on the published values."""
    dataset = challenge.test_dataset
    members = [t for t in teams if t.data["challenge"] == challenge.id]
    problems = []
    for track in challenge.tracks:
        ranked = _ranked(members, track, dataset)
        ranks = [p["ranks"][track.id] for _, p in ranked]
        if ranks != list(range(1, len(ranks) + 1)):
            seen = sorted(ranks)
            problems.append(ManifestProblem(
                f"challenges/{challenge.path.name}", f"tracks.{track.id}",
                f"the published ranks are not 1..{len(ranks)} once each: {_rank_gaps(seen)}", "ranks-complete"))
        for (above, pa), (below, pb) in zip(ranked, ranked[1:]):
            va, vb = pa["values"].get(track.rank_by), pb["values"].get(track.rank_by)
            if va is None or vb is None:
                team = above if va is None else below
                problems.append(ManifestProblem(str(team.path), f"published.{dataset}.values.{track.rank_by}",
                                                f"ranked in {track.id} but no published {track.rank_by}",
                                                "ranked-by-value"))
            elif track.sort_key(va) > track.sort_key(vb):
                problems.append(ManifestProblem(
                    str(below.path), f"published.{dataset}.ranks.{track.id}",
                    f"{below.id} (rank {pb['ranks'][track.id]}, {track.rank_by} {vb}) ranks after {above.id} "
                    f"(rank {pa['ranks'][track.id]}, {track.rank_by} {va}), but {track.rule()}", "ranks-follow-rule",
                    "a mistyped value or rank"))
    return problems


def _rank_gaps(ranks: list[int]) -> str:
    twice = sorted({r for r in ranks if ranks.count(r) > 1})
    missing = sorted(set(range(1, len(ranks) + 1)) - set(ranks))
    parts = ([f"twice: {', '.join(map(str, twice))}"] if twice else []) + \
        ([f"missing: {', '.join(map(str, missing))}"] if missing else [])
    return "; ".join(parts) or ", ".join(map(str, ranks))


def reproduced(challenge: Challenge, teams: list[Manifest], dataset: str, values: dict[str, float | None],
               track: Track) -> dict | None:
    """One track ranked again: every team of the challenge with a published value of the track's metric on
    `dataset`, at its reproduced value where `values` has one (team id -> value), else at its published
    value. Published ranks are the manifests' (or, where the challenge gave none, the order of the
    published values). Returns None when no team has a value."""
    entries = []
    for team in teams:
        published = team.published(dataset) if team.data["challenge"] == challenge.id else None
        if not published or track.rank_by not in published["values"]:
            continue
        entries.append({"team": team.id, "name": team.name, "published": published["values"][track.rank_by],
                        "precision": published["precision"].get(track.rank_by),
                        "published_rank": published.get("ranks", {}).get(track.id),
                        "audited": team.id in values, "reproduced": values.get(team.id)})
    ranked_by_organizers = [e for e in entries if e["published_rank"] is not None]
    if ranked_by_organizers:
        entries = ranked_by_organizers  # entries the organizers did not rank (late ones) stay out
    else:
        for rank, entry in enumerate(sorted(entries, key=lambda e: track.sort_key(e["published"])), start=1):
            entry["published_rank"] = rank
    if not entries:
        return None

    def standing(entry):
        value = entry["reproduced"] if entry["reproduced"] is not None else entry["published"]
        return track.sort_key(value), entry["published_rank"]

    for rank, entry in enumerate(sorted(entries, key=standing), start=1):
        entry["reproduced_rank"] = rank
        entry["change"] = entry["published_rank"] - rank
    entries.sort(key=lambda e: e["published_rank"])
    return {"challenge": challenge.id, "challenge_name": challenge.name, "track": track.id, "title": track.title,
            "metric": track.rank_by, "direction": track.direction, "entries": entries,
            "changes": [{"team": e["team"], "published_rank": e["published_rank"],
                         "reproduced_rank": e["reproduced_rank"]} for e in entries if e["change"]]}


def change_line(board: dict) -> str:
    """One line for people: which ranks change in a reproduced board."""
    where = f"{board['challenge']} {board['track']} ({board['title']})"
    if not board["changes"]:
        return f"{where}: no rank changes"
    moves = ", ".join(f"{c['team']} {c['published_rank']} → {c['reproduced_rank']}" for c in board["changes"])
    return f"{where}: {len(board['changes'])} rank(s) change: {moves}"
