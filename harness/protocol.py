"""The adapter protocol: how `python -m harness.entry` (inside every image, or a local child process)
talks to the runner that started it. Both sides import this module and nothing else of each other.

- Outputs: one PNG per LR input under the same name, and PROVENANCE beside them.
- Progress: one line per finished image on stdout, `[done/total] name`.
- Failure: FAILURE ({kind, message, hint}) in the output folder and exit code EXIT_FAILED.
- Anything else (a signal, another exit code) is decoded by `decode_exit`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import InferenceFailed
from .fsutil import write_json_atomic

PROVENANCE = "provenance.json"
FAILURE = "failure.json"
EXIT_FAILED = 3
LOG_TAIL_LINES = 20
# Set by the adapter for the processes the team's code starts (the import names it resolves); a runner
# never passes its own value on.
ALIASES_VARIABLE = "HARNESS_IMPORT_ALIASES"
_PROGRESS = re.compile(r"^\[(\d+)/(\d+)\] (.*)$")


def progress_line(done: int, total: int, name: str) -> str:
    return f"[{done}/{total}] {name}"


def parse_progress(line: str) -> tuple[int, int, str] | None:
    match = _PROGRESS.match(line.rstrip())
    return (int(match.group(1)), int(match.group(2)), match.group(3)) if match else None


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
    """Turns the adapter's output (chunks or lines) into a log file and progress calls."""

    def __init__(self, log, on_progress=None):
        self.log, self.on_progress, self.pending = log, on_progress, b""

    def feed(self, chunk: bytes) -> None:
        self.log.write(chunk)
        self.log.flush()
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            parsed = parse_progress(line.decode(errors="replace"))
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
