"""A finding: one thing checked before work starts, with what to do about it. The doctor, a verification's
plan and each runner's own pre-flight (`check` beside its `make`) speak in findings."""

from __future__ import annotations

from dataclasses import asdict, dataclass

GIB = 2 ** 30


@dataclass
class Finding:
    check: str
    status: str  # ok, to fetch, warning, missing, unknown
    detail: str
    fix: str | None = None
    failure: str | None = None  # the failure kind (harness.core.failures) a run would end in, when this one blocks

    @property
    def blocking(self) -> bool:
        return self.status == "missing"

    def as_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "failure"}, "blocking": self.blocking}
