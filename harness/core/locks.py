"""One writer at a time: a second harness process that would write the same run, evaluation or dataset
is refused with the holder's PID and command. The lock is an flock on a small file, so the kernel
releases it when its holder dies, even by SIGKILL: a crash never leaves a lock that blocks.

Lock files live in the harness's own lock folder (HARNESS_LOCKS, else the user's cache), named after the
resource they guard, never beside it: a lock changes nothing in data/, runs/ or evaluations/, and the
holder removes its file when it is done."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path

from harness.core.errors import HarnessError


class Busy(HarnessError):
    kind = "error"


LOCKS_VARIABLE = "HARNESS_LOCKS"


def folder() -> Path:
    if os.environ.get(LOCKS_VARIABLE):
        return Path(os.environ[LOCKS_VARIABLE])
    from harness.core.project import user_cache

    return user_cache() / "locks"


def lock_file(resource: Path) -> Path:
    """The lock file of a resource (a folder or file the holder writes), by its absolute path."""
    import hashlib

    absolute = str(Path(resource).resolve())
    return folder() / f"{Path(absolute).name[:40]}-{hashlib.sha256(absolute.encode()).hexdigest()[:24]}.lock"


def _open_locked(path: Path, wait: bool):
    """An open handle on `path` holding its flock; None when another holds it (and not `wait`). A file that
    its holder removed while this one waited is opened again (the lock is the file that is there)."""
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return handle, False
        try:
            if os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino:
                return handle, True
        except FileNotFoundError:
            pass
        handle.close()  # removed under us: take the one that is there now


@contextlib.contextmanager
def held(resource: Path, what: str, wait: bool = False):
    """Hold the lock of `resource` for writing `what`; raise Busy naming the holder if another has it (or,
    with `wait`, wait for it: for work another holder does once for everybody, such as an environment)."""
    lock_path = lock_file(resource)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle, ok = _open_locked(lock_path, wait)
    try:
        if not ok:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except ValueError:
                holder = {}
            since = time.strftime("%H:%M:%S", time.localtime(holder["since"])) if "since" in holder else "?"
            raise Busy(f"{what} is being written by another harness process (PID {holder.get('pid', '?')}, "
                       f"`{holder.get('command', '?')}`, since {since})",
                       hint="wait for it to finish, or stop it; the lock goes with its process")
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": " ".join(_command()), "since": time.time(),
                                 "resource": str(Path(resource).resolve())}))
        handle.flush()
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)  # removed while still held: a waiter then takes a fresh file
    finally:
        handle.close()  # closing releases the flock


def _command() -> list[str]:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("cli.py", "__main__.py", "harness")):
        argv[0] = "harness"
    return argv
