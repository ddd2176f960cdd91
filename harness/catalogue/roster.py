"""Finding teams: every teams/<id>/manifest.yaml except folders starting with '_'."""

from __future__ import annotations

import difflib
from pathlib import Path

from harness.catalogue import manifests as manifest_mod
from harness.core.errors import HarnessError, ManifestError, ManifestProblem, TeamNotFound
from harness.core.project import Project


def team_ids(project: Project) -> list[str]:
    return sorted(p.parent.name for p in project.teams_dir.glob(f"*/{manifest_mod.MANIFEST_NAME}")
                  if not p.parent.name.startswith("_"))


def display_path(project: Project, path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(project.root))
    except ValueError:
        return str(path)


def load(project: Project, team_id: str) -> manifest_mod.Manifest:
    from harness.core.settings import TEAM_ID

    if not TEAM_ID.match(team_id):
        raise TeamNotFound(f"'{team_id}' is not a team id (rule: {TEAM_ID.pattern})",
                           hint="name a folder under teams/ (`harness list`)")
    path = project.teams_dir / team_id / manifest_mod.MANIFEST_NAME
    if not path.exists():
        known = team_ids(project)
        close = difflib.get_close_matches(team_id, known, n=3)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "see `harness list`"
        raise TeamNotFound(f"no team '{team_id}' in {display_path(project, project.teams_dir)}/", hint=hint)
    return manifest_mod.load(path, display_path(project, path))


def manifest_paths(project: Project, targets) -> list[Path]:
    """Manifest files for team ids, team folders or manifest paths; none means every team."""
    paths = []
    for target in targets or team_ids(project):
        candidate = Path(target)
        if candidate.is_dir():
            candidate = candidate / manifest_mod.MANIFEST_NAME
        if candidate.suffix in (".yaml", ".yml") and candidate.exists():
            paths.append(candidate)
        else:
            paths.append(project.teams_dir / target / manifest_mod.MANIFEST_NAME)
    return paths


def new_team(project: Project, team_id: str) -> Path:
    """Scaffold teams/<id>/ from teams/_template/; returns the new manifest."""
    import re
    import shutil

    from harness.core.settings import TEAM_ID

    if not TEAM_ID.match(team_id):
        suggestion = re.sub(r"[^a-z0-9-]+", "-", team_id.lower()).strip("-")
        raise HarnessError(f"'{team_id}' is not a team id (rule: {TEAM_ID.pattern})",
                           hint="lower-case letters, digits and '-', starting with a letter or digit"
                                + (f": '{suggestion}'" if suggestion and TEAM_ID.match(suggestion) else ""))
    target = project.teams_dir / team_id
    if target.exists():
        raise HarnessError(f"{display_path(project, target)} already exists")
    shutil.copytree(project.template_dir, target)
    manifest = target / manifest_mod.MANIFEST_NAME
    manifest.write_text(manifest_mod.render_template(project.template_dir / manifest_mod.MANIFEST_NAME, team_id))
    return manifest


def load_all(project: Project) -> tuple[list[manifest_mod.Manifest], list]:
    """Every team that validates, and the problems of those that do not."""
    teams, problems = [], []
    for team_id in team_ids(project):
        try:
            teams.append(load(project, team_id))
        except ManifestError as exc:
            problems.extend(exc.problems)
        except TeamNotFound as exc:  # a folder whose name is no team id: its own problem, not the catalogue's end
            problems.append(ManifestProblem(display_path(project, project.teams_dir / team_id / "manifest.yaml"),
                                            "id", exc.message, "team-id", exc.hint))
    return teams, problems
