"""runner: auto: docker when an engine answers, the sandboxed local runner otherwise; the choice and its
reason are kept (record.json's runner_selection)."""

from __future__ import annotations

from harness.core.errors import ImageError
from harness.core.findings import Finding


def make(settings, selection: str):
    from harness.run import docker_images
    from harness.run.runners import docker, local

    try:
        client = docker_images.engine()
    except ImageError as exc:
        runner = local.make(settings, selection)
        runner.selection = f"auto: local ({exc.message})"
        return runner
    return docker.make(settings, "auto: docker", client)


def check(settings, teams: list) -> list[Finding]:
    """Docker's check where an engine answers; else the local runner's, saying that auto falls back to it."""
    from harness.run import docker_images
    from harness.run.runners import docker, local

    try:
        client = docker_images.engine()
    except ImageError as exc:
        return [Finding(docker_images.ENGINE_CHECK, "warning", exc.message + "; runner auto falls back to local",
                        exc.hint),
                *local.check(settings, teams)]
    return docker.check(settings, teams, client)
