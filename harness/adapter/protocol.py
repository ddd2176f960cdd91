"""The adapter protocol: how `python -m harness.adapter` (inside every image, or a local child process)
talks to the runner that started it. Both sides import this module and nothing else of each other.

- Outputs: one PNG per LR input under the same name, PROVENANCE and SESSION beside them.
- Progress: one line per finished image on stdout, `[done/total] name`.
- The team's code sees RUN_INDEX_VARIABLE, the run's index.
- Failure: FAILURE ({kind, message, hint}) in the output folder and exit code EXIT_FAILED.
- Anything else (a signal, another exit code) is decoded by `decode_exit`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.core.errors import InferenceFailed
from harness.core.files import write_json_atomic

PROVENANCE = "provenance.json"
SESSION = "session.json"  # the volatile part of provenance (harness.core.provenance), ignored by DVC
FAILURE = "failure.json"
EXIT_FAILED = 3
LOG_TAIL_LINES = 20
LOG_LIMIT_BYTES = 8 * 2 ** 20  # of a run's log; what comes after is dropped, behind one marker line
LINE_LIMIT_BYTES = 64 * 2 ** 10  # a progress line is short: a longer "line" is not parsed
# Set by the adapter for the processes the team's code starts (the import names it resolves); a runner
# never passes its own value on.
ALIASES_VARIABLE = "HARNESS_IMPORT_ALIASES"
# The team's checkout, when the adapter is not to look at /opt/code (the local runner, or a user's own checkout)
OVERRIDE_VARIABLE = "HARNESS_CODE_DIR"
# Set by the adapter for the team's code: the index (1..repeats) of the run, for code that varies by run.
RUN_INDEX_VARIABLE = "HARNESS_RUN_INDEX"
_PROGRESS = re.compile(r"^\[(\d+)/(\d+)\] (.*)$")


def progress_line(done: int, total: int, name: str) -> str:
    return f"[{done}/{total}] {name}"


def parse_progress(line: str) -> tuple[int, int, str] | None:
    match = _PROGRESS.match(line.rstrip())
    return (int(match.group(1)), int(match.group(2)), match.group(3)) if match else None


def add_to_session(output_dir: Path, facts: dict) -> None:
    """What the runner adds to a run's volatile provenance (the adapter wrote the file)."""
    path = Path(output_dir) / SESSION
    session = json.loads(path.read_text()) if path.exists() else {}
    write_json_atomic(path, {**session, **facts})


def write_failure(output_dir: Path, kind: str, message: str, hint: str | None) -> int:
    """The adapter's side of a typed failure; returns the exit code to end with."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / FAILURE, {"kind": kind, "message": message, "hint": hint})
    return EXIT_FAILED


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


class LineSplitter:
    """Turns the adapter's output (chunks or lines) into a log file of at most `limit` bytes and progress
    calls; output past the limit is read (so the team never blocks on a full pipe) and dropped."""

    def __init__(self, log, on_progress=None, limit: int = LOG_LIMIT_BYTES):
        self.log, self.on_progress, self.pending = log, on_progress, b""
        self.limit, self.room, self.dropped = limit, limit, 0

    def feed(self, chunk: bytes) -> None:
        kept = chunk[:max(self.room, 0)]
        if kept:
            self.log.write(kept)
            self.room -= len(kept)
        if len(kept) < len(chunk):
            if not self.dropped:
                self.log.write(f"\n[harness: the log reached its limit of {self.limit:,} bytes; "
                               "the rest of the team's output is dropped]\n".encode())
            self.dropped += len(chunk) - len(kept)
        self.log.flush()
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        self.pending = self.pending[-LINE_LIMIT_BYTES:]
        for line in lines:
            parsed = parse_progress(line[:LINE_LIMIT_BYTES].decode(errors="replace"))
            if parsed and self.on_progress:
                self.on_progress(*parsed)


def decode_exit(team_id: str, code: int | None, out_dir: Path, log_path: Path, oom_killed: bool = False,
                memory_limit_gb: float | None = None) -> None:
    """Raise the typed failure an exit code means; return for a success (code 0)."""
    if code == 0:
        return
    tail = log_tail(log_path)
    failure_file = Path(out_dir) / FAILURE
    if code == EXIT_FAILED and failure_file.exists():
        failure = json.loads(failure_file.read_text())
        raise InferenceFailed(failure["kind"], f"{team_id}: {failure['message']}", failure.get("hint"), tail)
    if oom_killed or (memory_limit_gb is not None and code == 137):
        raise InferenceFailed("out_of_memory", f"{team_id}: the container was killed at its memory limit of "
                              f"{memory_limit_gb:g} GiB (exit {code})",
                              "raise runtime.memory_gb in the manifest or docker.memory_gb in params.yaml", tail)
    if code in (-9, 137):
        raise InferenceFailed("killed", f"{team_id}: the adapter was killed (SIGKILL), most often by the kernel's "
                              "out-of-memory killer", log_tail=tail)
    raise InferenceFailed("nonzero_exit", f"{team_id}: the adapter exited with code {code}", log_tail=tail)
