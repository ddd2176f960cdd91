"""Runs the adapter in a child process of the current Python environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from ..entry import EXIT_FAILED, FAILURE
from ..errors import InferenceFailed

LOG_TAIL_LINES = 20
PROGRESS_LINE = re.compile(r"^\[(\d+)/(\d+)\] (.*)$")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def pump_lines(stream, log, on_progress) -> None:
    """Copy the adapter's output to the log, turning its '[i/n] name' lines into progress calls."""
    for raw in iter(stream.readline, b""):
        log.write(raw)
        log.flush()
        match = PROGRESS_LINE.match(raw.decode(errors="replace").rstrip())
        if match and on_progress:
            on_progress(int(match.group(1)), int(match.group(2)), match.group(3))


class LocalRunner:
    name = "local"
    selection: str | None = None

    def run_once(self, team, lr_dir: Path, out_dir: Path, weights_dir: Path, device: str, run_index: int,
                 log_path: Path, repo_root: Path, on_progress=None) -> None:
        command = [sys.executable, "-m", "harness.entry", "--manifest", str(team.path), "--input", str(lr_dir),
                   "--output", str(out_dir), "--weights", str(weights_dir), "--device", device,
                   "--run-index", str(run_index), "--repo-root", str(repo_root)]
        timeout = team.runtime.get("timeout_s", 3600)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=repo_root,
                                       env=env)
            reader = threading.Thread(target=pump_lines, args=(process.stdout, log, on_progress), daemon=True)
            reader.start()
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                reader.join(5)
                raise InferenceFailed("timeout", f"{team.id}: no result after {timeout} s (runtime.timeout_s); "
                                      "the process was killed", log_tail=log_tail(log_path)) from None
            except BaseException:  # Ctrl-C: stop the child too, leave no orphan
                process.kill()
                process.wait()
                raise
            reader.join(5)
        if code == 0:
            return
        failure_file = out_dir / FAILURE
        if code == EXIT_FAILED and failure_file.exists():
            failure = json.loads(failure_file.read_text())
            raise InferenceFailed(failure["kind"], f"{team.id}: {failure['message']}", failure.get("hint"),
                                  log_tail=log_tail(log_path))
        if code in (-9, 137):
            raise InferenceFailed("killed", f"{team.id}: the adapter was killed (SIGKILL), most often by the "
                                  "kernel's out-of-memory killer", log_tail=log_tail(log_path))
        raise InferenceFailed("nonzero_exit", f"{team.id}: the adapter exited with code {code}",
                              log_tail=log_tail(log_path))
