"""Progress of long work, in one shape: the library reports Steps, the CLI draws them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One update. With `note`, a line to show once; otherwise the state of the bar keyed by `task`."""

    task: str
    label: str | None = None  # what the bar says now (default: the task)
    done: int | None = None
    total: int | None = None
    unit: str = "items"  # items or bytes
    note: str | None = None
    outcome: bool = False  # the note states a result (shown with the results), not a status
    record: dict | None = None  # a run record just written, for the reader to show


Progress = Callable[[Step], None]


def silent(step: Step) -> None:
    """A Progress that shows nothing (tests, jobs)."""


def note(progress: Progress | None, task: str, text: str, outcome: bool = False) -> None:
    (progress or silent)(Step(task, note=text, outcome=outcome))


def transfer(progress: Progress | None, task: str) -> Callable[[int, int | None], None]:
    """A byte-count callback (the download functions' shape) that reports Steps."""
    return lambda done, total: (progress or silent)(Step(task, done=done, total=total, unit="bytes"))


def transfers(progress: Progress | None) -> Callable[[str], Callable[[int, int | None], None]]:
    """One byte-count callback per named file (the dataset functions' shape)."""
    return lambda name: transfer(progress, name)
