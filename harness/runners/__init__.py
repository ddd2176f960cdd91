"""Runners: one contract (runners.base: RunRequest, Runner), several ways to execute a team's adapter
(harness.entry): local (the team's family environment in a sandbox), docker (its image), podman (the
docker runner's code against a daemonless podman service).
"""

from __future__ import annotations

from ..errors import HarnessError, ImageError
from ..settings import RUNNERS
from .base import RunRequest, Runner
from .local import LocalRunner

__all__ = ["RUNNERS", "RunRequest", "Runner", "LocalRunner", "get", "register"]


def _local(options, selection: str):
    return LocalRunner(getattr(options, "local", None), getattr(options, "unsafe_no_sandbox", False))


def _docker(options, selection: str, client=None):
    from .. import images
    from .docker import DockerRunner

    client = client or images.engine()
    return DockerRunner(getattr(options, "docker", None), client,
                        f"{selection} ({images.engine_description(client)})")


def _podman(options, selection: str):
    from .podman import PodmanRunner

    return PodmanRunner(getattr(options, "docker", None), selection=f"{selection} (a `podman system service` of "
                                                                   "its own)")


def _auto(options, selection: str):
    """docker when an engine answers, local otherwise; the choice and its reason are kept."""
    from .. import images

    try:
        client = images.engine()
    except ImageError as exc:
        runner = _local(options, selection)
        runner.selection = f"auto: local ({exc.message})"
        return runner
    return _docker(options, "auto: docker", client)


_FACTORIES = {"auto": _auto, "local": _local, "docker": _docker, "podman": _podman}


def register(name: str, factory) -> None:
    """Add a runner: `factory(options, selection)` returns it (for plug-ins and tests)."""
    _FACTORIES[name] = factory


def get(name: str, options=None) -> Runner:
    """The runner called `name` (one of settings.RUNNERS), set up from the run options (RunOptions)."""
    if name not in _FACTORIES:
        raise HarnessError(f"unknown runner '{name}'", hint=f"available: {', '.join(_FACTORIES)}")
    return _FACTORIES[name](options, name)
