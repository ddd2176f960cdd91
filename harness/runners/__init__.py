"""Runners: one contract (runners.base: RunRequest, Runner), several ways to execute a team's adapter
(harness.entry): local, docker, podman (the docker runner's code against a daemonless podman service).
"""

from __future__ import annotations

from ..errors import HarnessError, ImageError
from ..settings import RUNNERS
from .base import RunRequest, Runner
from .local import LocalRunner

__all__ = ["RUNNERS", "RunRequest", "Runner", "LocalRunner", "get", "register"]


def _docker(settings: dict | None, selection: str, client=None):
    from .. import images
    from .docker import DockerRunner

    client = client or images.engine()
    return DockerRunner(settings, client, f"{selection} ({images.engine_description(client)})")


def _podman(settings: dict | None, selection: str):
    from .podman import PodmanRunner

    return PodmanRunner(settings, selection=f"{selection} (a `podman system service` of its own)")


def _auto(settings: dict | None, selection: str):
    """docker when an engine answers, local otherwise; the choice and its reason are kept."""
    from .. import images

    try:
        client = images.engine()
    except ImageError as exc:
        runner = LocalRunner()
        runner.selection = f"auto: local ({exc.message})"
        return runner
    return _docker(settings, "auto: docker", client)


_FACTORIES = {"auto": _auto, "local": lambda settings, selection: LocalRunner(), "docker": _docker,
              "podman": _podman}


def register(name: str, factory) -> None:
    """Add a runner: `factory(docker_settings, selection)` returns it (for plug-ins and tests)."""
    _FACTORIES[name] = factory


def get(name: str, docker_settings: dict | None = None) -> Runner:
    """The runner called `name` (one of settings.RUNNERS)."""
    if name not in _FACTORIES:
        raise HarnessError(f"unknown runner '{name}'", hint=f"available: {', '.join(_FACTORIES)}")
    return _FACTORIES[name](docker_settings, name)
