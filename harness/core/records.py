"""The records the audit writes, each defined once with its schema version.

- RunRecord: runs/<dataset>/<team>/record.json, how a team's outputs were produced (or why not);
- provenance and run_session: each run folder's provenance.json and session.json (the adapter writes them);
  stand_ins: the provenance of stand-in weights; model_metrics: the Efficient SR counts of a run;
- Evaluation: one run scored; TeamEvaluation: evaluations/<dataset>/<team>.json, every run of a team scored,
  with evaluation_session beside it (when, where);
- Verification: one row of the report, published versus reproduced, with the verdict.
They are written as JSON (`as_dict`) and read back as their types (`from_dict`, which refuses a record
of another schema); the report and the CLI still read some of them as plain dicts.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from harness.core.devices import gpu_name
from harness.core.errors import HarnessError
from harness.core.files import digest_of_files

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.core.settings import Settings


class Team(Protocol):
    """What a record reads of a team (harness.catalogue.manifests.Manifest is one): core names no wing."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def hash(self) -> str: ...
    @property
    def run_key(self) -> str: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def repeats(self) -> int: ...
    @property
    def determinism(self) -> dict: ...


RUN_RECORD_SCHEMA = "harness.run-record/1"
TEAM_EVALUATION_SCHEMA = "harness.team-evaluation/1"
EVALUATION_SCHEMA = "harness.evaluation/1"
VERIFICATION_SCHEMA = "harness.verification/1"
PROVENANCE_SCHEMA = "harness.provenance/1"
RUN_SESSION_SCHEMA = "harness.run-session/1"
STAND_INS_SCHEMA = "harness.stand-ins/1"
MODEL_METRICS_SCHEMA = "harness.model-metrics/1"
EVALUATION_SESSION_SCHEMA = "harness.evaluation-session/1"
REPORT_SCHEMA = "harness.report/1"
PUBLISHED_OUTPUTS = "published-outputs"  # the runner of a record on the evaluate-only route


# Significant digits of every value in an evaluation, metrics or plots file: six more than the finest published
# precision, and few enough that every CPU writes the same bytes (their floating-point kernels differ in the
# last bits, which are not evidence of anything).
STATED_DIGITS = 12


def stated(value: Any) -> Any:
    """`value` with every finite float rounded to STATED_DIGITS significant digits (in lists and dicts too)."""
    if isinstance(value, float):
        return float(f"{value:.{STATED_DIGITS}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: stated(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stated(v) for v in value]
    return value


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def failure(kind: str, message: str, hint: str | None = None, log_tail: str | None = None) -> dict:
    """A failure as records hold it; `kind` is one of harness.core.failures.KINDS."""
    from harness.core.failures import KINDS

    if kind not in KINDS:
        raise ValueError(f"undeclared failure kind '{kind}' (declare it in harness/core/failures.py)")
    out = {"kind": kind, "message": message, "hint": hint}
    if log_tail is not None:
        out["log_tail"] = log_tail
    return out


def failure_of(exc: HarnessError) -> dict:
    return failure(exc.kind, exc.message, exc.hint, getattr(exc, "log_tail", None))


def provenance(team: Team, run_index: int, entry_kind: str, harness_version: str, torch: dict,
               inputs_sha256: dict, weights_sha256: dict, outputs_sha256: dict) -> dict:
    """A run folder's provenance.json: what the outputs were made from, byte for byte (no times: those
    are the run's session)."""
    return {"schema": PROVENANCE_SCHEMA, "team": team.id, "run_index": run_index, "harness_version": harness_version,
            "manifest_hash": team.hash, "run_key": team.run_key, "entry_kind": entry_kind, "seed": team.seed,
            "determinism_class": team.determinism["class"], **torch, "inputs_sha256": inputs_sha256,
            "weights_sha256": weights_sha256, "outputs_sha256": outputs_sha256}


def run_session(session: dict, started: str, wall_s: float, seconds_per_image: dict, timing: str) -> dict:
    """A run folder's session.json: when, on what machine, how long."""
    return {"schema": RUN_SESSION_SCHEMA, **session, "started": started, "wall_s": wall_s,
            "seconds_per_image": seconds_per_image, "per_image_timing": timing}


def stand_ins(team_id: str, files: dict[str, str]) -> dict:
    """The provenance of stand-in weights: which files, which bytes."""
    return {"schema": STAND_INS_SCHEMA, "team": team_id, "files": files}


def model_record(stats: dict, device: str, clock: str, runtime_ms: dict) -> dict:
    """The Efficient SR counts of a run's network, and its runtime per image on the device."""
    return {"schema": MODEL_METRICS_SCHEMA, **stats, "device": device, "clock": clock, "runtime_ms": runtime_ms}


def evaluation_session(session: dict) -> dict:
    """Beside a team evaluation: when and where it was scored (kept out of the evaluation, which is content)."""
    return {"schema": EVALUATION_SESSION_SCHEMA, **session}


def ran_on(provenance: dict) -> dict:
    """What executed a run, from its provenance (the adapter measured the device; the runner added how the
    code was held and in what): device kind, GPU model where one was used, containment, environment or image.
    Together with the run key it is the run's identity: a run is reused only for a question it answers."""
    executed = provenance.get("executed_on") or {}
    local, container = provenance.get("local") or {}, provenance.get("container") or {}
    environment = local.get("environment") or {}
    return {"device": executed.get("device"), "gpu": executed.get("name") if executed.get("device") == "cuda" else None,
            "containment": "container" if container else local.get("containment"),
            "environment": container.get("image_id") or environment.get("key") or environment.get("origin")}


def identity_mismatch(inference_state: dict, settings: Settings) -> str | None:
    """Why a run that executed as `inference_state` says cannot stand for one made with these settings
    (None: it can)."""
    ran_on = inference_state.get("ran_on") or {}
    asked = settings.device.split(":")[0]
    if ran_on.get("device") != asked:
        return f"it ran on {ran_on.get('device') or 'an unrecorded device'}, not {asked}"
    here = gpu_name(settings.device) if asked == "cuda" else None
    if asked == "cuda" and ran_on.get("gpu") != here:
        return f"it ran on a {ran_on.get('gpu')}, not on this machine's {here}"
    if settings.runner != "auto" and inference_state.get("runner") != settings.runner:
        return f"it ran with the {inference_state.get('runner')} runner, not {settings.runner}"
    if ran_on.get("containment") == "unsafe" and not settings.unsafe_no_sandbox:
        return "it ran without a sandbox (--unsafe-no-sandbox)"
    return None


class RecordError(HarnessError):
    """A record on disk that is not of the kind or schema version this harness reads: for this harness,
    what it records was not made."""

    kind = "not_evaluated"


Record = TypeVar("Record")


def _from_dict(cls: type[Record], data: dict[str, Any], schema: str, where: str) -> Record:
    """A record of type `cls` from its JSON form; a record of another schema (another harness version
    wrote it) is refused with the way out, never half-read."""
    if not isinstance(data, dict):
        raise RecordError(f"{where}: not a record (a JSON object is expected)")
    if data.get("schema") != schema:
        raise RecordError(f"{where}: a '{data.get('schema')}' record, not '{schema}'",
                          hint="another version of the harness wrote it: run the step again (--rerun)")
    names = {f.name for f in fields(cls) if f.init and not f.name.startswith("_")}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names - {"schema"})
    if unknown:
        raise RecordError(f"{where}: unknown field(s) {', '.join(unknown)} in a '{schema}' record",
                          hint="another version of the harness wrote it: run the step again (--rerun)")
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:  # a required field is missing
        raise RecordError(f"{where}: an incomplete '{schema}' record: {exc}",
                          hint="run the step again (--rerun)") from None


@dataclass
class RunRecord:
    team: str
    dataset: str
    runner: str | None
    device: str | None
    manifest_hash: str
    run_key: str
    repeats: int
    runner_selection: str | None = None
    source: str | None = None  # the published-outputs route: where the images came from
    started: str = field(default_factory=now)
    runs: list = field(default_factory=list)
    status: str = "ok"  # ok, failed, not_runnable
    failure: dict | None = None
    wall_s: float | None = None
    slurm_job_id: str | None = None  # run as a Slurm job: which one, and the state it ended in
    slurm_state: str | None = None
    ran_on: dict | None = None  # what executed the runs, measured (harness.core.records.ran_on), not what was asked
    _clock: float = field(default_factory=time.perf_counter, repr=False)

    OPTIONAL = ("runner_selection", "source", "slurm_job_id", "slurm_state", "ran_on")  # left out when None
    VOLATILE = ("started", "wall_s")  # when and how long: the team's session.json, not record.json

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "run record") -> RunRecord:
        """A record as record.json holds it (when and how long are in session.json: None here)."""
        return _from_dict(cls, {**dict.fromkeys(cls.VOLATILE), **data}, RUN_RECORD_SCHEMA, where)

    def as_written(self) -> dict:
        """What record.json holds: the record without when and how long."""
        return {k: v for k, v in self.as_dict().items() if k not in self.VOLATILE}

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def start(cls, team: Team, dataset: str, runner: str | None = None, device: str | None = None,
              repeats: int | None = None, **extra) -> RunRecord:
        return cls(team=team.id, dataset=dataset, runner=runner, device=device, manifest_hash=team.hash,
                   run_key=team.run_key, repeats=team.repeats if repeats is None else repeats, **extra)

    def fail(self, kind: str, message: str, hint: str | None = None, log_tail: str | None = None,
             status: str = "failed") -> RunRecord:
        self.status, self.failure = status, failure(kind, message, hint, log_tail)
        return self

    def finish(self) -> dict:
        """The record, its wall time taken now unless it has one."""
        if self.wall_s is None:
            self.wall_s = round(time.perf_counter() - self._clock, 3)
        return self.as_dict()

    def as_dict(self) -> dict:
        out = {"schema": RUN_RECORD_SCHEMA, **asdict(self)}
        del out["_clock"]
        for optional in self.OPTIONAL:
            if out[optional] is None:
                del out[optional]
        return out


@dataclass
class Verification:
    team: str
    name: str
    dataset: str
    determinism: str
    verdict: str | None = None
    failure: dict | None = None
    runs: int = 0
    metrics: dict = field(default_factory=dict)
    unverified: list = field(default_factory=list)
    findings: list = field(default_factory=list)
    exact_outputs: bool | None = None
    ground_truth: bool = True  # False: only what needs no HR images was checked
    source: str | None = None
    ran_with: dict | None = None
    scored_by: dict | None = None
    checked_on: str | None = None  # 'model' when the dataset was not here and only the model was checked
    unpublished: dict = field(default_factory=dict)  # computed, never published: {name: {reproduced, uncertainty}}
    not_computed: dict = field(default_factory=dict)  # asked for, not computed: {name: {reason, fetch}}

    @classmethod
    def of(cls, team: Team, dataset: str) -> Verification:
        return cls(team=team.id, name=team.name, dataset=dataset, determinism=team.determinism["class"])

    @classmethod
    def failed_row(cls, team: Team, dataset: str, exc: HarnessError) -> dict:
        """The report row of a team whose verification raised: its own row, not the end of the audit."""
        row = cls.of(team, dataset)
        row.verdict, row.failure = "failed", failure(exc.kind, exc.message, exc.hint)
        return row.as_dict()

    def as_dict(self) -> dict:
        out = asdict(self)
        for optional in ("source", "ran_with", "scored_by", "checked_on"):
            if out[optional] is None:
                del out[optional]
        return out


@dataclass
class Evaluation:
    mode: str
    metrics: list[str]
    per_image: dict[str, dict[str, float | None]] = field(default_factory=dict)
    mean: dict[str, float | None] = field(default_factory=dict)
    unavailable: dict[str, dict[str, str]] = field(default_factory=dict)
    findings: list[dict] = field(default_factory=list)
    failed_images: dict[str, str] = field(default_factory=dict)
    output_sha256: dict[str, str] = field(default_factory=dict)
    ground_truth: bool = True
    lr_consistency: dict[str, dict] = field(default_factory=dict)  # per image, when the LR inputs were given
    model: dict | None = None  # how the model metrics were measured (device, clock), when there are any
    # how many processes scored the images and why (not in the record: the values do not depend on it)
    workers: int = 1
    workers_reason: str = ""
    stand_in: bool = False  # scored with stand-in metric weights (harness.fetch.stand_ins): the numbers measure nothing
    # the torch threads that scored the learned metrics on a CPU: their sums, so their last bits, depend on it
    torch_threads: int | None = None

    @property
    def status(self) -> str:
        return "failed" if self.failed_images else "ok"

    @property
    def outputs_digest(self) -> str:
        return digest_of_files(self.output_sha256)

    def as_dict(self) -> dict:
        fits = [c["psnr_y"] for c in self.lr_consistency.values() if c["psnr_y"] is not None]
        return {
            "schema": EVALUATION_SCHEMA,
            "mode": self.mode,
            "status": self.status,
            "metrics": self.metrics,
            "ground_truth": self.ground_truth,
            "n_images": len(self.per_image),
            "per_image": self.per_image,
            "mean": self.mean,
            "unavailable": self.unavailable,
            "findings": self.findings,
            "failed_images": self.failed_images,
            "lr_consistency": {"per_image": self.lr_consistency,
                               "mean_psnr_y": sum(fits) / len(fits) if fits else None} if self.lr_consistency else None,
            "outputs_digest": self.outputs_digest,
            "output_sha256": self.output_sha256,
            **({"model": self.model} if self.model else {}),
            **({"stand_in": True} if self.stand_in else {}),
            **({"torch_threads": self.torch_threads} if self.torch_threads else {}),
        }


@dataclass
class TeamEvaluation:
    team: str
    dataset: str
    mode: str
    metrics: list
    run_key: str
    harness_version: str
    pyiqa_version: str | None
    metric_weights: dict
    device: str = "cpu"
    ground_truth: bool = True  # False: scored without HR (no-reference metrics and LR consistency only)
    inference: dict | None = None  # status, failure, runner, device, image, image_id of the run record
    runs: list = field(default_factory=list)  # one harness.evaluation/1 per run, or its failure
    evaluator: dict | None = None  # where it was scored: this environment or the evaluator image
    stand_in: bool = False  # scored with stand-in metric weights: never compared with published numbers

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "team evaluation") -> TeamEvaluation:
        return _from_dict(cls, data, TEAM_EVALUATION_SCHEMA, where)

    def as_dict(self) -> dict:
        out = {"schema": TEAM_EVALUATION_SCHEMA, **asdict(self)}
        if not self.stand_in:
            del out["stand_in"]
        return out
