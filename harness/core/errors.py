"""Typed errors. The library raises them; only the CLI renders them and picks exit codes."""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness reports to a person; `kind` names it in records (harness.core.failures)."""

    exit_code = 2
    kind = "error"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class ManifestError(HarnessError):
    """One or more problems in manifests; each problem names file, field, value and rule."""

    def __init__(self, problems: list[ManifestProblem]):
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
    kind = "data_unavailable"


class ChecksumMismatch(HarnessError):
    kind = "checksum_mismatch"


class DownloadError(HarnessError):
    kind = "download_failed"


class WeightsUnavailable(HarnessError):
    kind = "weights_unavailable"


class ConversionError(HarnessError):
    pass


class MetricUnavailable(HarnessError):
    """A metric cannot be computed here (for example its weights are absent)."""

    kind = "metric_unavailable"

    def __init__(self, metric: str, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.metric = metric


class EvaluationError(HarnessError):
    kind = "evaluation_failed"


class PairingError(EvaluationError):
    """Outputs and ground truth do not pair one to one."""

    def __init__(self, message: str, missing: list[str], extra: list[str], hint: str | None = None):
        super().__init__(message, hint)
        self.missing = missing
        self.extra = extra


class InputRefused(HarnessError):
    """A file given to the harness breaks the input policy (harness.imaging.input_policy); the message names it and the
    rule."""

    kind = "input_refused"

    def __init__(self, message: str, rule: str, hint: str | None = None):
        super().__init__(f"{message} (rule: {rule})", hint)
        self.rule = rule


class TypedFailure(HarnessError):
    """A failure recorded with its kind (one of harness.core.failures.KINDS) and the log tail that shows it."""

    def __init__(self, kind: str, message: str, hint: str | None = None, log_tail: str = ""):
        from harness.core.failures import KINDS

        if kind not in KINDS:
            raise ValueError(f"undeclared failure kind '{kind}' (declare it in harness/core/failures.py)")
        super().__init__(message, hint)
        self.kind = kind
        self.log_tail = log_tail

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "hint": self.hint, "log_tail": self.log_tail}


class InferenceFailed(TypedFailure):
    """A team's inference failed."""


class ImageError(TypedFailure):
    """An image could not be built or found, or no engine answers."""
