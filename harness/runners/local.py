"""Runs the adapter in a child process of the current Python environment."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from ..errors import InferenceFailed
from ..protocol import ALIASES_VARIABLE, LineSplitter, decode_exit, log_tail
from .base import RunRequest


class LocalRunner:
    name = "local"
    selection: str | None = None

    def run_once(self, request: RunRequest) -> None:
        team = request.team
        command = [sys.executable, "-m", "harness.entry",
                   *request.adapter_args(str(team.path), str(request.lr_dir), str(request.out_dir),
                                         str(request.weights_dir), str(request.repo_root),
                                         str(request.code_dir) if request.code_dir else None)]
        timeout = team.runtime.get("timeout_s", 3600)
        env = {k: v for k, v in os.environ.items() if k != ALIASES_VARIABLE}
        env["PYTHONUNBUFFERED"] = "1"
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(request.log_path, "ab") as log, \
                subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=request.repo_root,
                                 env=env) as process:
            splitter = LineSplitter(log, request.on_progress)
            reader = threading.Thread(target=lambda: [splitter.feed(line) for line in
                                                      iter(process.stdout.readline, b"")], daemon=True)
            reader.start()
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                reader.join(5)
                raise InferenceFailed("timeout", f"{team.id}: no result after {timeout} s (runtime.timeout_s); "
                                      "the process was killed", log_tail=log_tail(request.log_path)) from None
            except BaseException:  # Ctrl-C: stop the child too, leave no orphan
                process.kill()
                process.wait()
                raise
            reader.join(5)
        decode_exit(team.id, code, request.out_dir, request.log_path)
