"""runner: auto: docker when an engine answers, the sandboxed local runner otherwise; the choice and its
reason are kept (record.json's runner_selection)."""

from __future__ import annotations

from ..errors import ImageError


def make(settings, selection: str):
    from .. import images
    from . import docker, local

    try:
        client = images.engine()
    except ImageError as exc:
        runner = local.make(settings, selection)
        runner.selection = f"auto: local ({exc.message})"
        return runner
    return docker.make(settings, "auto: docker", client)
