"""Runners: one contract (runners.base: RunRequest, Runner), several ways to execute a team's adapter
(harness.entry): local (the team's family environment in a sandbox), docker (its image), podman (the
docker runner's code against a daemonless podman service), auto (docker when an engine answers).

RUNNERS is the one list of runners: params.yaml's validation, every --runner help text, doctor and
construction read it. A new runner is a module with `make(options, selection)` and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ..errors import HarnessError

# name -> "module:function" that makes the runner from the run options (imported only when one is built)
RUNNERS: dict[str, str | Callable] = {
    "auto": "harness.runners.choice:make",
    "local": "harness.runners.local:make",
    "docker": "harness.runners.docker:make",
    "podman": "harness.runners.podman:make",
}


def names() -> tuple[str, ...]:
    return tuple(RUNNERS)


def register(name: str, factory: str | Callable) -> None:
    """Add a runner: `factory(options, selection)` returns it (a callable, or its "module:function")."""
    RUNNERS[name] = factory


def get(name: str, options=None):
    """The runner called `name`, set up from the run options (audit.RunOptions)."""
    if name not in RUNNERS:
        raise HarnessError(f"unknown runner '{name}'", hint=f"available: {', '.join(RUNNERS)}")
    factory = RUNNERS[name]
    if isinstance(factory, str):
        module, function = factory.split(":")
        factory = getattr(importlib.import_module(module), function)
    return factory(options, name)
