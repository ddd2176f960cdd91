"""Team code: the repository a manifest names (`code.repository` at `code.commit`), cloned once with
GitPython into .cache/code/<owner>/<name>@<commit>/, checked out at the pinned commit, verified, and
reused offline afterwards.

HARNESS_GIT_MIRROR replaces the hosts: a folder or URL where the repository owner/name is found as
<mirror>/owner/name (a mirror, or a test server). HARNESS_CODE_DIR, when set, is the checkout to use
instead (one team at a time, as inside an image).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from harness.adapter.protocol import OVERRIDE_VARIABLE
from harness.core import locks
from harness.core.errors import HarnessError, ManifestError, ManifestProblem
from harness.core.files import replace_dir

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest
    from harness.core.project import Project

MIRROR_VARIABLE = "HARNESS_GIT_MIRROR"


class CodeUnavailable(HarnessError):
    kind = "code_unavailable"

    def __init__(self, message: str, hint: str | None = None, whole_repository: bool = False):
        super().__init__(message, hint)
        self.whole_repository = whole_repository  # the clone itself failed: every team of it is affected


def slug(repository: str) -> tuple[str, str]:
    """('owner', 'name') of a repository URL (https://host/owner/name[.git])."""
    parts = [p for p in urlparse(repository).path.split("/") if p]
    if len(parts) < 2:
        raise CodeUnavailable(f"'{repository}' does not name a repository as https://host/owner/name")
    return parts[-2], parts[-1].removesuffix(".git")


def source(repository: str) -> str:
    """Where to clone from: the repository itself, or its copy in the mirror."""
    mirror = os.environ.get(MIRROR_VARIABLE)
    if not mirror:
        return repository
    owner, name = slug(repository)
    if "://" in mirror:
        return f"{mirror.rstrip('/')}/{owner}/{name}"
    return str(Path(mirror) / owner / name)


def checkout_dir(code_cache: Path, team: Manifest) -> Path:
    code = team.data["code"]
    owner, name = slug(code["repository"])
    return Path(code_cache) / owner / f"{name}@{code['commit']}"


def present(code_cache: Path, team: Manifest) -> Path | None:
    """The team's checkout when it is in place at its commit (no network); None otherwise."""
    if "code" not in team.data:
        return None
    folder = checkout_dir(code_cache, team)
    return folder if _at_commit(folder, team.data["code"]["commit"]) else None


def _at_commit(folder: Path, commit: str) -> bool:
    import git

    try:
        return git.Repo(folder).head.commit.hexsha == commit  # the whole id: a prefix can be forged
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError, ValueError):
        return False


def fetch(code_cache: Path, team: Manifest) -> tuple[Path, list[str]]:
    """The team's checkout at its pinned commit, reused when present, cloned otherwise, and verified
    before every use: a tracked file of a runnable team's own code that is missing or changed refuses it;
    the damage found (other teams' folders, or a non-runnable team's own) is returned as 'D path' lines."""
    code = team.data.get("code")
    if not code:
        raise CodeUnavailable(f"{team.id} declares no code repository (code: in its manifest)")
    target = checkout_dir(code_cache, team)
    if not _at_commit(target, code["commit"]):
        target.parent.mkdir(parents=True, exist_ok=True)
        # teams of one repository share its checkout: one process clones it, the others are told who does
        with locks.held(target, f"the checkout {target.name}"):
            if not _at_commit(target, code["commit"]):
                _clone(code, target)
    damaged = damage(target)
    # a weights file absent from the checkout is the weights' failure (weights_unavailable), not the code's
    kept_weights = {str(Path(w["source"]["path"])) for w in team.weights if w["source"]["kind"] == "code"}
    own = [line for line in damaged if _is_own(team, line[2:]) and line[2:] not in kept_weights]
    if own and team.runnable:  # a team marked not runnable is read, not run: its damage is only reported
        raise CodeUnavailable(f"{target}: {len(own)} tracked file(s) of {team.id}'s code are missing or changed "
                              f"({', '.join(line[2:] for line in own[:3])}{', ...' if len(own) > 3 else ''})",
                              hint=f"remove {target} and run `harness fetch code {team.id}` again; a mirror that "
                                   "lacks these files cannot serve this team")
    return target, damaged


def damage(checkout: Path) -> list[str]:
    """Tracked files that are missing ('D path') or differ from the commit ('M path')."""
    import git

    status = git.Repo(checkout).git.status("--porcelain", "--untracked-files=no", "--no-renames")
    return sorted(f"{line[:2].strip()[:1]} {line[3:]}" for line in status.splitlines() if line.strip())


def team_paths(team: Manifest) -> list[str]:
    """The files and folders of the checkout that are the team's own: its code.path folder (or, where that is
    the whole checkout, as in the Efficient SR repositories, its module file), its import aliases' targets,
    and the weights it keeps in the repository."""
    base = team.data["code"].get("path", ".")
    paths = [str(Path(base) / team.entry["module"])] if Path(base) == Path(".") and "module" in team.entry \
        else [base]
    paths += list(team.entry.get("import_aliases", {}).values())
    paths += [w["source"]["path"] for w in team.weights if w["source"]["kind"] == "code"]
    return [str(Path(p)) for p in paths]


def _is_own(team: Manifest, path: str) -> bool:
    return any(folder == "." or path == folder or path.startswith(folder.rstrip("/") + "/")
               for folder in team_paths(team))


def _clone(code: dict, target: Path) -> Path:
    import git

    url = source(code["repository"])
    for abandoned in target.parent.glob(f".{target.name}.*"):  # staging a killed clone left behind
        if abandoned.is_dir():
            shutil.rmtree(abandoned, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        repo = git.Repo.clone_from(url, staging, no_checkout=True)
        try:
            repo.git.checkout(code["commit"], detach=True)
        except git.exc.GitCommandError:
            raise CodeUnavailable(f"{code['repository']} has no commit {code['commit']}",
                                  hint="check code.commit in the manifest", whole_repository=True) from None
        if not repo.head.commit.hexsha.startswith(code["commit"]):
            raise CodeUnavailable(f"{url}: checked out {repo.head.commit.hexsha}, not {code['commit']}")
        repo.close()
        staging.chmod(0o755)  # readable by a container's unprivileged user, like any clone
        replace_dir(staging, target)
        return target
    except git.exc.GitCommandError as exc:
        raise CodeUnavailable(f"cloning {url} failed: {_git_reason(exc)}",
                              hint=f"check the network, or set {MIRROR_VARIABLE} to a mirror holding "
                                   f"{'/'.join(slug(code['repository']))}", whole_repository=True) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _git_reason(exc) -> str:
    """git's own complaint in one line ('Could not resolve host: github.com', 'repository ... not found')."""
    lines = [line.strip().removeprefix("stderr:").strip(" '") for line in (exc.stderr or str(exc)).splitlines()]
    lines = [line.removeprefix("fatal:").strip() for line in lines if line]
    return (lines[-1] if lines else f"git exited {exc.status}")[:300]


def head(checkout: Path) -> str | None:
    """The commit a checkout is at."""
    import git

    try:
        return git.Repo(checkout).head.commit.hexsha
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError, ValueError):
        return None


def for_run(code_cache: Path, team: Manifest) -> Path | None:
    """The checkout a run uses: HARNESS_CODE_DIR's when set (the adapter reads it), else the fetched one."""
    if os.environ.get(OVERRIDE_VARIABLE) or team.entry.get("code_root", "team") != "code":
        return None
    return present(code_cache, team)


def validate_manifest(project: Project, path: Path) -> tuple[Manifest, list]:
    """Load one manifest file and, where its code is fetched, check it against the checkout; return it with
    the checkout's findings for a team marked not runnable (they are its known breakage, not errors), or
    raise TeamNotFound (with suggestions) or ManifestError."""
    from harness.adapter import teamcode
    from harness.catalogue import manifests, roster

    if not path.exists() and path.parent.parent == project.teams_dir:
        roster.load(project, path.parent.name)
    shown = roster.display_path(project, path)
    team = manifests.load(path, shown)
    checkout = present(project.code_cache, team)
    if checkout is not None and team.entry.get("code_root") == "code":
        problems = [ManifestProblem(shown, field, message, "matches-checkout",
                                    f"checked against {roster.display_path(project, checkout)}")
                    for field, message in teamcode.checkout_problems(team, checkout)]
        if problems and team.runnable:
            raise ManifestError(problems)
        return team, problems
    return team, []
