"""The registries of what plugs in, as names: read by validation (params.yaml), help texts, doctor and
construction alike, so that one line here makes a plug-in selectable everywhere. Each entry names the
function that builds it ("module:function"); nothing is imported until one is built.
"""

from __future__ import annotations

from collections.abc import Callable

# runner name -> "module:function" making it from the run options (harness.runners.get)
RUNNERS: dict[str, str | Callable] = {
    "auto": "harness.runners.choice:make",
    "local": "harness.runners.local:make",
    "docker": "harness.runners.docker:make",
    "podman": "harness.runners.podman:make",
}


def register_runner(name: str, factory: str | Callable) -> None:
    """Add a runner: `factory(options, selection)` returns it (a callable, or its "module:function")."""
    RUNNERS[name] = factory
