"""Typed errors. The library raises them; only the CLI renders them and picks exit codes."""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness reports to a person."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class ManifestError(HarnessError):
    """One or more problems in manifests; each problem names file, field, value and rule."""

    def __init__(self, problems: list["ManifestProblem"]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ManifestProblem:
    def __init__(self, file: str, field: str, message: str, rule: str, hint: str | None = None):
        self.file = file
        self.field = field
        self.message = message
        self.rule = rule
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.file}: {self.field or '(top level)'}: {self.message} (rule: {self.rule})"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def as_dict(self) -> dict:
        return {"file": self.file, "field": self.field, "message": self.message,
                "rule": self.rule, "hint": self.hint}


class TeamNotFound(HarnessError):
    pass


class DatasetError(HarnessError):
    pass


class ChecksumMismatch(HarnessError):
    pass


class DownloadError(HarnessError):
    pass


class WeightsUnavailable(HarnessError):
    pass


class ConversionError(HarnessError):
    pass


class MetricUnavailable(HarnessError):
    """A metric cannot be computed here (for example its weights are absent)."""

    def __init__(self, metric: str, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.metric = metric


class EvaluationError(HarnessError):
    pass


class PairingError(EvaluationError):
    """Outputs and ground truth do not pair one to one."""

    def __init__(self, message: str, missing: list[str], extra: list[str], hint: str | None = None):
        super().__init__(message, hint)
        self.missing = missing
        self.extra = extra


class InferenceFailed(HarnessError):
    """A team's inference failed; `kind` is one of the failure types in verify.FAILURE_KINDS."""

    def __init__(self, kind: str, message: str, hint: str | None = None, log_tail: str = ""):
        super().__init__(message, hint)
        self.kind = kind
        self.log_tail = log_tail
