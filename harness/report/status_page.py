"""The catalogue's status as Markdown, made from the manifests and challenge files alone (docs/status.md is
this text; `harness list --markdown` prints it and a test holds the committed copy to it)."""

from __future__ import annotations

from harness.catalogue.challenges import Challenge
from harness.catalogue.manifests import Manifest
from harness.report.files import md

HEADER = ("# The catalogue's status\n\nGenerated from `teams/*/manifest.yaml` and `challenges/*.yaml` by "
          "`harness list --markdown` (`make docs`); do not edit by hand. What each column means: "
          "[the catalogue](catalogue.md).\n")


def runs_on(team: Manifest) -> str:
    """Where the team's code runs, as its manifest says: devices, and the CUDA kernels it needs."""
    devices = "/".join(team.runtime.get("devices", ["cpu", "cuda"]))
    kernels = team.runtime.get("cuda_extensions") or []
    return devices + (f" (needs {', '.join(kernels)})" if kernels else "")


def state(team: Manifest) -> str:
    if team.runnable:
        return "runnable"
    reasons = "; ".join(team.data.get("status", {}).get("reasons", []))
    return f"not runnable: {reasons}" if reasons else "not runnable"


def _published(team: Manifest) -> dict:
    """The team's first published entry with ranks (its challenge's test set), else its first, or nothing."""
    entries = list(team.data.get("published", {}).values())
    return next((e for e in entries if e.get("ranks")), entries[0] if entries else {})


def _rank(team: Manifest, rules: Challenge) -> tuple:
    published = _published(team)
    first = rules.tracks[0].id if rules.tracks else None
    return published.get("ranks", {}).get(first, 10 ** 6), team.id


def challenge_section(rules: Challenge, teams: list[Manifest]) -> str:
    runnable = sum(t.runnable for t in teams)
    ranked = [track for track in rules.tracks
              if any(track.id in _published(t).get("ranks", {}) for t in teams)]
    lines = [f"## {md(rules.name)} (`{rules.id}`)", "",
             f"{len(teams)} team(s), {runnable} runnable as published, {len(teams) - runnable} not.", "",
             "| team | name | " + "".join(f"rank: {md(t.name)} | " for t in ranked) + "entry | recipe | determinism | "
             "runs on | status |",
             "|---|---|" + "---:|" * len(ranked) + "---|---|---|---|---|"]
    for team in sorted(teams, key=lambda t: _rank(t, rules)):
        ranks = [str(_published(team).get("ranks", {}).get(t.id, "")) for t in ranked]
        cells = [f"`{team.id}`", md(team.name), *ranks, team.entry["kind"],
                 md((team.container or {}).get("recipe") or "—"), team.determinism["class"], md(runs_on(team)),
                 md(state(team))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(teams: list[Manifest], challenges: dict[str, Challenge]) -> str:
    """Every challenge that has teams, in the catalogue's order, one table each."""
    sections = [challenge_section(rules, [t for t in teams if t.data["challenge"] == challenge_id])
                for challenge_id, rules in challenges.items()
                if any(t.data["challenge"] == challenge_id for t in teams)]
    return HEADER + "\n" + "\n".join(sections)
