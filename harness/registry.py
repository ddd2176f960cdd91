"""Finding teams: every teams/<id>/manifest.yaml except folders starting with '_'."""

from __future__ import annotations

import difflib
from pathlib import Path

from . import manifest as manifest_mod
from .errors import ManifestError, TeamNotFound
from .project import Project


def team_ids(project: Project) -> list[str]:
    return sorted(p.parent.name for p in project.teams_dir.glob(f"*/{manifest_mod.MANIFEST_NAME}")
                  if not p.parent.name.startswith("_"))


def display_path(project: Project, path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(project.root))
    except ValueError:
        return str(path)


def load(project: Project, team_id: str) -> manifest_mod.Manifest:
    path = project.teams_dir / team_id / manifest_mod.MANIFEST_NAME
    if not path.exists():
        known = team_ids(project)
        close = difflib.get_close_matches(team_id, known, n=3)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "see `harness list`"
        raise TeamNotFound(f"no team '{team_id}' in {display_path(project, project.teams_dir)}/", hint=hint)
    return manifest_mod.load(path, display_path(project, path))


def load_all(project: Project) -> tuple[list[manifest_mod.Manifest], list]:
    """Every team that validates, and the problems of those that do not."""
    teams, problems = [], []
    for team_id in team_ids(project):
        try:
            teams.append(load(project, team_id))
        except ManifestError as exc:
            problems.extend(exc.problems)
    return teams, problems
