"""The registries of what plugs in, as names: read by validation, help texts, doctor and construction
alike, so that one line here makes a plug-in selectable everywhere. Each entry names the function that
builds or runs it ("module:function"); nothing is imported until one is used.

- RUNNERS: how a team's adapter is executed (params.yaml's runner, --runner);
- ENTRY_KINDS: how the adapter calls a team's model (a manifest's entry.kind; the manifest schema's
  entry kinds are checked against it);
- METRIC_BACKENDS: how a metric is computed (a MetricSpec's backend; harness.score.backends);
- metrics: harness.catalogue.metrics.METRICS, where each metric's facts are one MetricSpec (harness metrics lists it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# runner name -> "module:function" making it from the settings (harness.run.runners.get)
RUNNERS: dict[str, str | Callable] = {
    "auto": "harness.run.runners.choice:make",
    "local": "harness.run.runners.local:make",
    "docker": "harness.run.runners.docker:make",
    "podman": "harness.run.runners.podman:make",
}


def register_runner(name: str, factory: str | Callable) -> None:
    """Add a runner: `factory(settings, selection)` returns it (a callable, or its "module:function")."""
    RUNNERS[name] = factory


@dataclass(frozen=True)
class EntryKind:
    """How the adapter runs a team of this kind: `run` is "module:function" taking an entry.EntryCall and
    returning seconds per output; `harness_code_only`: the kind executes no code but the harness's own (no
    sandbox is needed to hold it)."""

    run: str
    harness_code_only: bool
    timing: str = "measured"  # how seconds per image are known


ENTRY_KINDS: dict[str, EntryKind] = {
    "classical": EntryKind("harness.adapter.entry:run_classical", True),
    "spandrel": EntryKind("harness.adapter.entry:run_spandrel", True),
    "select-model": EntryKind("harness.adapter.entry:run_select_model", False),
    "ntire-main": EntryKind("harness.adapter.entry:run_ntire_main", False, "output mtime deltas (first includes load)"),
    "none": EntryKind("harness.adapter.entry:run_none", True),
}


def entry_kind(name: str) -> EntryKind:
    from harness.core.errors import HarnessError

    if name not in ENTRY_KINDS:
        raise HarnessError(f"unknown entry kind '{name}'", hint=f"known: {', '.join(ENTRY_KINDS)}")
    return ENTRY_KINDS[name]


# backend name -> "module:attribute", the backend object, in the order an image's metrics are scored
METRIC_BACKENDS: dict[str, str] = {
    "builtin-fr": "harness.score.backends.full_reference:BACKEND",
    "builtin-nr": "harness.score.backends.no_reference:BACKEND",
    "pyiqa": "harness.score.backends.learned:BACKEND",
    "model": "harness.score.backends.model:BACKEND",
    "derived": "harness.score.backends.derived:BACKEND",
}


def load(target: str) -> Any:
    """The function or object a registry entry names ("module:attribute")."""
    import importlib

    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)
