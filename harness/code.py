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
from urllib.parse import urlparse

from . import locks
from .errors import HarnessError
from .fsutil import replace_dir

MIRROR_VARIABLE = "HARNESS_GIT_MIRROR"
OVERRIDE_VARIABLE = "HARNESS_CODE_DIR"


class CodeUnavailable(HarnessError):
    kind = "code_unavailable"


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


def checkout_dir(code_cache: Path, team) -> Path:
    code = team.data["code"]
    owner, name = slug(code["repository"])
    return Path(code_cache) / owner / f"{name}@{code['commit']}"


def present(code_cache: Path, team) -> Path | None:
    """The team's checkout when it is in place at its commit (no network); None otherwise."""
    if "code" not in team.data:
        return None
    folder = checkout_dir(code_cache, team)
    return folder if _at_commit(folder, team.data["code"]["commit"]) else None


def _at_commit(folder: Path, commit: str) -> bool:
    import git

    try:
        return git.Repo(folder).head.commit.hexsha.startswith(commit)
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError, ValueError):
        return False


def fetch(code_cache: Path, team) -> Path:
    """The team's checkout at its pinned commit: reused when present, cloned otherwise."""
    import git

    code = team.data.get("code")
    if not code:
        raise CodeUnavailable(f"{team.id} declares no code repository (code: in its manifest)")
    target = checkout_dir(code_cache, team)
    if _at_commit(target, code["commit"]):
        dirty = git.Repo(target).is_dirty(untracked_files=False)
        if dirty:
            raise CodeUnavailable(f"{target} has local changes to tracked files",
                                  hint=f"remove {target} and run `harness fetch code {team.id}` again")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # teams of one repository share its checkout: one process clones it, the others are told who does
    with locks.held(target.parent / f".{target.name}.lock", f"the checkout {target.name}"):
        if _at_commit(target, code["commit"]):
            return target
        return _clone(code, target)


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
                                  hint="check code.commit in the manifest") from None
        if not repo.head.commit.hexsha.startswith(code["commit"]):
            raise CodeUnavailable(f"{url}: checked out {repo.head.commit.hexsha}, not {code['commit']}")
        repo.close()
        staging.chmod(0o755)  # readable by a container's unprivileged user, like any clone
        replace_dir(staging, target)
    except git.exc.GitCommandError as exc:
        raise CodeUnavailable(f"cloning {url} failed: {(exc.stderr or str(exc)).strip()[-300:]}",
                              hint=f"check the network, or set {MIRROR_VARIABLE} to a mirror holding "
                                   f"{'/'.join(slug(code['repository']))}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def for_run(code_cache: Path, team) -> Path | None:
    """The checkout a run uses: HARNESS_CODE_DIR's when set (the adapter reads it), else the fetched one."""
    if os.environ.get(OVERRIDE_VARIABLE) or team.entry.get("code_root", "team") != "code":
        return None
    return present(code_cache, team)
