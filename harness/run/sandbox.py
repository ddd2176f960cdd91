"""The local runner's sandbox: bubblewrap (`bwrap`, Debian's package `bubblewrap`).

Why bubblewrap: it is the unprivileged sandbox Flatpak is built on, packaged by every Linux distribution,
needs no daemon and no setuid helper where user namespaces are allowed, and builds the file system view
mount by mount, so the team's code sees exactly what an image would give it and nothing of the user's:

- no network: a network namespace of its own (not even the host's 127.0.0.1);
- a root file system of read-only binds: /usr and the few /etc files programs need, the interpreter and
  the environment, the harness's adapter, the team folder, its code, the LR images and the weights;
  writable only its output folder and a private /tmp (HOME is an empty folder in it);
- its own PID namespace, killed with the adapter: no process outlives the run (`--die-with-parent`);
- no capabilities, no new user namespaces inside, a uid of its own (10001).
Memory is bounded on a CPU by an address-space limit (prlimit), approximately.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core import registries
from harness.run.lockdown import SCRATCH

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest

TOOL = "bwrap"
UID = 10001
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What programs read from /etc (the dynamic linker's cache, Debian's alternatives, time zone, fonts).
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "fonts", "nsswitch.conf")
HOME = f"{SCRATCH}/home"  # inside the sandbox: an empty folder on its private tmpfs, never the user's
PASSWD = f"runner:x:{UID}:{UID}::{HOME}:/bin/sh\n"
GROUP = f"runner:x:{UID}:\n"


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    writable: bool = False


def trusted(team: Manifest) -> bool:
    """A team whose run executes no code from outside this repository's maintainers: an entry kind that
    runs only the harness's code, or a team whose folder holds exactly the code its challenge file pins
    as the maintainers' own (trusted_code: the embedded mini suite). Naming a trusted challenge is not
    enough: the bytes must be the pinned ones."""
    from harness.catalogue import challenges

    if registries.entry_kind(team.entry["kind"]).harness_code_only:
        return True
    known = challenges.catalogue().get(team.data["challenge"])
    pinned = known.trusted_code.get(team.id) if known else None
    return pinned is not None and "repository" not in team.data.get("code", {}) and code_digest(team) == pinned


def code_digest(team: Manifest) -> str:
    """sha256 over the team folder's files but its manifest (each relative path, then its bytes' sha256)."""
    import hashlib

    folder = team.path.parent
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.yaml"
                       and "__pycache__" not in p.parts):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def executable() -> str | None:
    return shutil.which(TOOL)


@functools.lru_cache(maxsize=1)
def problem() -> str | None:
    """Why no sandbox can be made here (None: it works), from one real sandboxed `true`."""
    tool = executable()
    if tool is None:
        return "bubblewrap (bwrap) is not installed"
    probe = [tool, *_isolation(), *_system(), "--", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not start: {exc}"
    if done.returncode != 0:
        return f"bwrap cannot make a sandbox here: {done.stderr.strip()[-300:]}"
    return None


@functools.lru_cache(maxsize=1)
def version() -> str:
    done = subprocess.run([executable() or TOOL, "--version"], capture_output=True, text=True)
    return done.stdout.strip() or TOOL


def _isolation() -> list[str]:
    args = ["--unshare-all", "--unshare-user", "--uid", str(UID), "--gid", str(UID), "--die-with-parent",
            "--new-session", "--cap-drop", "ALL"]
    return args + (["--disable-userns"] if _supports_disable_userns() else [])


@functools.lru_cache(maxsize=1)
def _supports_disable_userns() -> bool:
    """--disable-userns (no user namespaces inside) came with bubblewrap 0.8."""
    done = subprocess.run([executable() or TOOL, "--help"], capture_output=True, text=True)
    return "--disable-userns" in done.stdout + done.stderr


def _system() -> list[str]:
    args = []
    for folder in SYSTEM_DIRS:
        if os.path.islink(folder):  # merged /usr: /lib -> usr/lib
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args + ["--proc", "/proc", "--dev", "/dev", "--ro-bind-try", "/sys", "/sys"]


def command(argv: list[str], mounts: list[Mount], env: dict[str, str], scratch: Path, scratch_bytes: int,
            gpu: bool = False, memory_bytes: int | None = None) -> list[str]:
    """The sandboxed command line: `argv` run with only `mounts` visible (plus the system), `env` as its
    whole environment, in a private /tmp of `scratch_bytes`. `scratch` is a host folder for the sandbox's
    own /etc/passwd and /etc/group."""
    (scratch / "passwd").write_text(PASSWD)
    (scratch / "group").write_text(GROUP)
    args = [executable() or TOOL, *_isolation(), *_system(),
            "--ro-bind", str(scratch / "passwd"), "/etc/passwd", "--ro-bind", str(scratch / "group"), "/etc/group",
            "--size", str(scratch_bytes), "--tmpfs", SCRATCH, "--dir", HOME]
    for mount in mounts:
        args += ["--bind" if mount.writable else "--ro-bind", str(Path(mount.source).resolve()), mount.target]
    if gpu:
        for device in sorted(glob.glob("/dev/nvidia*")):
            args += ["--dev-bind", device, device]
    args += ["--clearenv", "--chdir", SCRATCH]
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    limit = ["prlimit", f"--as={memory_bytes}", "--"] if memory_bytes and shutil.which("prlimit") else []
    return [*args, "--", *limit, *argv]
