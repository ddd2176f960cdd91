"""Runners: one contract (runners.base: RunRequest, Runner), several ways to execute a team's adapter
(harness.adapter.entry): local (the team's family environment in a sandbox), docker (its image), podman (the
docker runner's code against a daemonless podman service), auto (docker when an engine answers).

Which runners exist is harness.core.registries.RUNNERS: a new runner is a module with `make(settings, selection)`
and `check(settings, teams)` (its pre-flight: what it needs of the machine, as findings) and one line there.
"""

from __future__ import annotations

from harness.core.errors import HarnessError
from harness.core.registries import RUNNERS, load
from harness.core.settings import Settings

__all__ = ["RUNNERS", "check", "get", "names"]


def names() -> tuple[str, ...]:
    return tuple(RUNNERS)


def get(name: str, settings: Settings | None = None):
    """The runner called `name`, set up from the settings (their runner sections, the sandbox opt-in)."""
    if name not in RUNNERS:
        raise HarnessError(f"unknown runner '{name}'", hint=f"available: {', '.join(RUNNERS)}")
    factory = RUNNERS[name]
    return (load(factory) if isinstance(factory, str) else factory)(settings or Settings(), name)


def check(settings: Settings, teams: list) -> list:
    """The pre-flight of the settings' runner for these teams (harness.core.findings.Finding), from the `check`
    its module carries beside `make`; a runner registered as a plain callable has none."""
    factory = RUNNERS.get(settings.runner)
    if not isinstance(factory, str):
        return []
    module = factory.split(":")[0]
    import importlib

    own = getattr(importlib.import_module(module), "check", None)
    return own(settings, teams) if own else []
