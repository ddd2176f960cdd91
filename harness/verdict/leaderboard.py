"""A challenge's tracks as tables: the published ranks checked against the track's rule, and each track
ranked again with the reproduced values.

A track's rule (challenges/<id>.yaml) names the metric or score the ranks follow and which way. The
organizers ordered equal published values by their unrounded values, which only the published ranks
keep, so a published tie may come in either order and the published rank breaks ties between values
that are equal here. Ranked again, a value is taken at its published precision: one that reproduces keeps
its published place, and only a value that does not (or a team's that was not published) moves a rank.
"""

from __future__ import annotations

import itertools

from harness.catalogue.challenges import Challenge, Track
from harness.catalogue.manifests import Manifest
from harness.core.errors import ManifestProblem
from harness.verdict.rank_sums import rank_sum_problems


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
        if track.rank_sum:
            problems += rank_sum_problems(challenge, members, track)
            continue
        ranked = _ranked(members, track, dataset)
        ranks = [p["ranks"][track.id] for _, p in ranked]
        if ranks != list(range(1, len(ranks) + 1)):
            seen = sorted(ranks)
            problems.append(ManifestProblem(
                f"challenges/{challenge.path.name}", f"tracks.{track.id}",
                f"the published ranks are not 1..{len(ranks)} once each: {_rank_gaps(seen)}", "ranks-complete"))
        for (above, pa), (below, pb) in itertools.pairwise(ranked):
            # the test set's values with the model's beside them (a ranked FLOPs is a value of the model alone)
            va, vb = (((verify_published(team, dataset) or {}).get("values") or {}).get(track.rank_by)
                      for team in (above, below))
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


def verify_published(team: Manifest, dataset: str) -> dict | None:
    from harness.verdict.rules import published_values

    return published_values(team, dataset)


def published_value(challenge: Challenge, teams: dict[str, Manifest], team: Manifest, dataset: str,
                    name: str) -> float | None:
    """A team's published value of a metric on the dataset (or of its model alone); a score the table did
    not publish is computed from the published components (relative to the baseline's own)."""
    values = (verify_published(team, dataset) or {}).get("values", {})
    if name in values or name not in challenge.scores:
        return values.get(name)
    score = challenge.scores[name]
    baseline = teams.get(score.baseline) if score.baseline else None
    base_values = (verify_published(baseline, dataset) or {}).get("values", {}) if baseline else {}
    if not all(m in values for m in score.components) or (score.relative and
                                                          not all(m in base_values for m in score.components)):
        return None
    return score.value(values, base_values)


def gated_out(challenge: Challenge, teams: dict[str, Manifest], team: Manifest, track: Track) -> str | None:
    """Why the team is not ranked in the track (a published value below a gate), or None."""
    for metric, dataset, at_least in track.gates:
        value = published_value(challenge, teams, team, dataset, metric)
        if value is None or value < at_least:
            return f"{metric} on {dataset} {value if value is not None else 'unpublished'} < {at_least}"
    return None


def reproduced(challenge: Challenge, teams: list[Manifest], dataset: str, values: dict[str, float | None],
               track: Track) -> dict | None:
    """One track ranked again: every team of the challenge with a published value of the track's metric on
    `dataset` (and past the track's gates), at its reproduced value where `values` has one (team id ->
    value), else at its published value. Published ranks are the manifests' (or, where the challenge gave
    none, the order of the published values). Returns None when no team has a value."""
    by_id = {t.id: t for t in teams}
    entries = []
    for team in teams:
        if team.data["challenge"] != challenge.id or gated_out(challenge, by_id, team, track):
            continue
        value = published_value(challenge, by_id, team, dataset, track.rank_by)
        if value is None:
            continue
        published = team.published(dataset) or {}
        precision = (verify_published(team, dataset) or {}).get("precision", {}).get(track.rank_by)
        if precision is None and track.rank_by in challenge.scores:
            precision = challenge.scores[track.rank_by].precision
        entries.append({"team": team.id, "name": team.name, "published": value, "precision": precision,
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
        if entry["precision"] is not None:  # equal at the published precision: the published order stands
            value = round(value, entry["precision"])
        return track.sort_key(value), entry["published_rank"]

    for rank, entry in enumerate(sorted(entries, key=standing), start=1):
        entry["reproduced_rank"] = rank
        entry["change"] = entry["published_rank"] - rank
    entries.sort(key=lambda e: e["published_rank"])
    return {"challenge": challenge.id, "challenge_name": challenge.name, "track": track.id, "title": track.title,
            "metric": track.rank_by, "direction": track.direction, "entries": entries,
            "changes": [{"team": e["team"], "published_rank": e["published_rank"],
                         "reproduced_rank": e["reproduced_rank"]} for e in entries if e["change"]]}


def reproduced_values(challenge: Challenge, rows: list[dict], track: Track) -> dict[str, float | None]:
    """Each audited team's reproduced value of the track's metric; a score the rows do not hold is computed
    from their reproduced components (relative to the baseline's reproduced ones), never from some of them."""
    def of(row, name):
        return (row["metrics"].get(name) or {}).get("reproduced")

    score = challenge.scores.get(track.rank_by)
    if score is None or any(of(r, track.rank_by) is not None for r in rows):
        return {r["team"]: of(r, track.rank_by) for r in rows}
    by_team = {r["team"]: r for r in rows}
    base = by_team.get(score.baseline)
    out = {}
    for row in rows:
        means = {m: of(row, m) for m in score.components}
        base_means = {m: of(base, m) for m in score.components} if base else {}
        known = all(v is not None for v in means.values()) and (not score.relative or
                                                                 all(v is not None for v in base_means.values()))
        out[row["team"]] = score.value(means, base_means) if known else None
    return out


def change_line(board: dict) -> str:
    """One line for people: which ranks change in a reproduced board."""
    where = f"{board['challenge']} {board['track']} ({board['title']})"
    if not board["changes"]:
        return f"{where}: no rank changes"
    moves = ", ".join(f"{c['team']} {c['published_rank']} → {c['reproduced_rank']}"
                      + (f" ({c['why']})" if c.get("why") else "") for c in board["changes"])
    return f"{where}: {len(board['changes'])} rank(s) change: {moves}"
