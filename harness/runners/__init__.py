"""Runners: one interface, several ways to execute a team's adapter (harness.entry): local, docker,
podman (the docker runner's code against a daemonless podman service).

A runner's `run_once(team, lr_dir, out_dir, weights_dir, device, run_index, log_path, repo_root,
on_progress)` executes one pass of the adapter over lr_dir into out_dir, raising InferenceFailed with
a typed kind on failure. `selection` says why this runner was chosen (for `runner: auto`).
"""

from __future__ import annotations

from ..errors import HarnessError
from .local import LocalRunner

RUNNERS = ("auto", "local", "docker", "podman")


def get(name: str, docker_settings: dict | None = None):
    """The runner called `name`; 'auto' picks docker when an engine answers, local otherwise."""
    from .. import images

    if name not in RUNNERS:
        raise HarnessError(f"unknown runner '{name}'", hint=f"available: {', '.join(RUNNERS)}")
    if name == "local":
        return LocalRunner()
    if name == "podman":
        from .podman import PodmanRunner

        return PodmanRunner(docker_settings, selection="podman (a `podman system service` of its own)")
    from .docker import DockerRunner

    try:
        client = images.engine()
    except images.ImageError as exc:
        if name == "docker":
            raise
        runner = LocalRunner()
        runner.selection = f"auto: local ({exc.message})"
        return runner
    selection = f"{'auto: ' if name == 'auto' else ''}docker ({images.engine_description(client)})"
    return DockerRunner(docker_settings, client, selection)
