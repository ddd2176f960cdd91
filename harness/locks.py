"""One writer at a time: a second harness process that would write the same run, evaluation or dataset
is refused with the holder's PID and command. The lock is an flock on a small file, so the kernel
releases it when its holder dies, even by SIGKILL: a crash never leaves a lock that blocks."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path

from .errors import HarnessError


class Busy(HarnessError):
    kind = "error"


@contextlib.contextmanager
def held(lock_path: Path, what: str, wait: bool = False):
    """Hold the lock at `lock_path` for writing `what`; raise Busy naming the holder if another has it (or,
    with `wait`, wait for it: for work another holder does once for everybody, such as an environment)."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except ValueError:
                holder = {}
            since = time.strftime("%H:%M:%S", time.localtime(holder["since"])) if "since" in holder else "?"
            raise Busy(f"{what} is being written by another harness process (PID {holder.get('pid', '?')}, "
                       f"`{holder.get('command', '?')}`, since {since})",
                       hint="wait for it to finish, or stop it; the lock goes with its process") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": " ".join(_command()), "since": time.time()}))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the flock


def _command() -> list[str]:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("cli.py", "__main__.py", "harness")):
        argv[0] = "harness"
    return argv
