"""Runners: one interface, several ways to execute a team's adapter (harness.entry).

A runner's `run_once(team, lr_dir, out_dir, weights_dir, device, run_index, log_path)` executes one
pass of the adapter over lr_dir into out_dir, raising InferenceFailed with a typed kind on failure.
"""

from __future__ import annotations

from .local import LocalRunner

RUNNERS = {"local": LocalRunner}


def get(name: str):
    from ..errors import HarnessError

    if name not in RUNNERS:
        raise HarnessError(f"unknown runner '{name}'", hint=f"available: {', '.join(RUNNERS)}")
    return RUNNERS[name]()
