"""The local runner's environments: each team runs in its recipe family's packages, built without Docker.

An environment is a virtual environment built with uv from the family's files (harness.run.families), once
per distinct set of pins, in $HARNESS_ENVS (default: the user's cache, <cache>/harness/envs/<family>-<key>):
the family's own first, then, for a team with runtime.extra_packages, a hard-linked copy of it with those
added. Files are hard-linked from uv's cache and byte-compiled at build time (the sandbox mounts the
environment read-only). Once built it is reused offline. A family whose packages are exactly the harness's
own lock (and a team that declares no family) runs in the harness's own environment, with nothing to build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.adapter.protocol import log_tail
from harness.core import locks
from harness.core.errors import TypedFailure
from harness.core.files import write_json_atomic
from harness.run import families

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest

ENVS_VARIABLE = "HARNESS_ENVS"
RECORD = "harness-environment.json"


@dataclass(frozen=True)
class Environment:
    """Where a team's adapter runs: an interpreter, the folder it lives in and the base installation it
    links to (both mounted read-only in the sandbox)."""

    python: Path
    prefix: Path
    base_prefix: Path
    family: str | None = None
    key: str | None = None

    @property
    def own(self) -> bool:
        return self.key is None

    def describe(self) -> dict:
        if self.own:
            return {"origin": "harness", "family": self.family, "prefix": str(self.prefix),
                    "python": sys.version.split()[0]}
        record = json.loads((self.prefix / RECORD).read_text())
        return {"origin": "family", "family": self.family, "key": self.key, "prefix": str(self.prefix),
                "python": record["python"], "packages": record["packages"]}


def harness_environment(family: str | None = None) -> Environment:
    return Environment(Path(sys.executable), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), family)


def envs_root() -> Path:
    if os.environ.get(ENVS_VARIABLE):
        return Path(os.environ[ENVS_VARIABLE])
    import platformdirs

    return platformdirs.user_cache_path("harness") / "envs"


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))


def name_of(family: families.Family, extras: tuple[str, ...]) -> str:
    return f"{family.name}-{family.key(extras, python_version())[:16]}"


def planned(team: Manifest) -> tuple[families.Family | None, str | None]:
    """The team's family and the name of its environment (None: the harness's own environment)."""
    family = families.of_team(team)
    extras = tuple(team.runtime.get("extra_packages", []))
    if family is None or (family.is_the_lock() and not extras):
        return family, None
    return family, name_of(family, extras)


def built(name: str) -> bool:
    return (envs_root() / name / RECORD).is_file()


def for_team(team: Manifest, log_path: Path, note=None) -> Environment:
    """The team's environment, built first when it does not exist yet (`note` says so, once)."""
    family, name = planned(team)
    if name is None or family is None:
        return harness_environment(family.name if family else None)
    extras = tuple(team.runtime.get("extra_packages", []))
    target = ensure(family, extras, log_path, lambda: note and note(
        f"{team.id}: building the {family.name} environment {name} (first use; reused after, offline); "
        f"log: {log_path}"))
    return Environment(target / "bin" / "python", target, Path(sys.base_prefix).resolve(), family.name,
                       family.key(extras, python_version()))


def ensure(family: families.Family, extras: tuple[str, ...], log_path: Path, on_build=lambda: None) -> Path:
    """The environment of the family with `extras`, built (once, by one process) when absent: the family's
    own first, then, with extras, a hard-linked copy of it with the extras installed."""
    root = envs_root()
    target = root / name_of(family, extras)
    if (target / RECORD).is_file():
        return target
    base = ensure(family, (), log_path, on_build) if extras else None
    root.mkdir(parents=True, exist_ok=True)
    with locks.held(target, f"the environment {target.name}", wait=True):
        if not (target / RECORD).is_file():
            on_build()
            build(family, extras, target, log_path, base)
    return target


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise TypedFailure("environment_failed", "uv is not installed, so no environment can be built",
                       hint="install the harness's requirements (`make setup`), or use runner: docker")


def build(family: families.Family, extras: tuple[str, ...], target: Path, log_path: Path,
          base: Path | None = None) -> None:
    """Build the environment in a staging folder (from a hard-linked copy of `base`, the family's own, when
    given: only the extras are installed then), and move it into place in one step."""
    uv = uv_binary()
    for abandoned in target.parent.glob(f".{target.name}.*"):  # staging a killed build left behind
        shutil.rmtree(abandoned, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    env = {**os.environ, "UV_NATIVE_TLS": os.environ.get("UV_NATIVE_TLS", "1"), "VIRTUAL_ENV": str(staging)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        with open(log_path, "a") as log:
            if base is not None:  # installers replace files (unlink, then write): the links stay the base's
                log.write(f"# copy: {base} (hard links)\n")
                staging.rmdir()
                shutil.copytree(base, staging, symlinks=True, copy_function=os.link)
                (staging / RECORD).unlink()
                steps = family.steps(extras)[-1:]
            else:
                _run([uv, "venv", "--quiet", "--relocatable", "--python", sys.executable, str(staging)], env, log)
                steps = family.steps(extras)
            python = str(staging / "bin" / "python")
            for step in steps:
                what = ["-r", str(step.file)] if step.file else list(step.packages)
                _run([uv, "pip", "install", "--python", python, "--link-mode", "hardlink", "--compile-bytecode",
                      *step.flags, *what], env, log, step.label)
            frozen = subprocess.run([uv, "pip", "freeze", "--python", python], env=env, capture_output=True,
                                    text=True, check=True).stdout.split()
        write_json_atomic(staging / RECORD, {
            "family": family.name, "key": family.key(extras, python_version()), "python": python_version(),
            "extras": list(extras), "packages": frozen, "built_s": round(time.perf_counter() - started, 1)})
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _run(command: list[str], env: dict, log, label: str = "venv") -> None:
    log.write(f"# {label}: {' '.join(command)}\n")
    log.flush()
    done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        log.flush()
        raise TypedFailure("environment_failed", f"building the environment failed at {label} "
                           f"(uv exited {done.returncode})", hint=f"full log: {log.name}",
                           log_tail=log_tail(Path(log.name)))
