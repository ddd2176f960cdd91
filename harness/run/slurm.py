"""The slurm executor: each team's inference becomes a Slurm job, submitted with submitit.

Inside the job the team runs through the same runner code as on one machine (docker, local...), so its
run folders, record and typed failures are the same. The audit's jobs are listed in
.cache/slurm/<dataset>/jobs.json (team -> job id, run key); `harness jobs` and `harness cancel` read it.
A job that Slurm ends before the runner could write a record (time limit, cancellation, node failure,
out of memory) gets a record typed from its accounting state.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import HarnessError
from harness.core.failures import SLURM_FINAL_STATES as FINAL_STATES
from harness.core.files import replace_dir, write_json_atomic
from harness.core.project import Project, team_runs_dir
from harness.core.records import RunRecord
from harness.core.settings import SlurmSettings
from harness.run import inference

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest

WAITING_STATES = {"PENDING", "REQUEUED", "CONFIGURING", "SUSPENDED", "RESIZING"}


class SlurmError(HarnessError):
    pass


def job_id() -> str:
    """Inside a job: its Slurm job id."""
    import submitit

    return submitit.JobEnvironment().job_id


def load_jobs(proj: Project, dataset: str) -> dict:
    path = proj.slurm_jobs(dataset)
    return json.loads(path.read_text()) if path.exists() else {"jobs": {}}


def time_limit_min(team: Manifest, settings: SlurmSettings) -> int:
    """Slurm's limit leaves the runner's own timeout room to fire first and type the failure itself."""
    return int(settings.time_limit_min or math.ceil(team.runtime.get("timeout_s", 3600) * team.repeats / 60) + 5)


def _executor(proj: Project, dataset: str, settings: SlurmSettings, minutes: int):
    import submitit

    folder = proj.slurm_dir(dataset) / "%j"
    executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    extra = {"account": settings.account} if settings.account else {}
    # submitit's default warning (90 s before the limit) would reach a short job before Python has
    # installed submitit's handler, and the job would die untyped; a quarter of the limit leaves it room.
    executor.update_parameters(timeout_min=minutes, slurm_signal_delay_s=min(90, max(10, minutes * 15)),
                               cpus_per_task=settings.cpus_per_task,
                               mem_gb=settings.mem_gb, slurm_partition=settings.partition,
                               slurm_array_parallelism=settings.array_parallelism,
                               slurm_additional_parameters=extra, name=f"harness-{dataset}")
    if settings.gpus_per_job:
        executor.update_parameters(slurm_gres=f"gpu:{settings.gpus_per_job}")
    return executor


def submit(proj: Project, teams: list, dataset: str, settings: SlurmSettings, job: Callable,
           job_args: Callable) -> dict:
    """Submit `job(*job_args(team))` for each team (one array per time limit); record them in jobs.json.

    The caller chooses the teams (not complete, not already queued: see `active`)."""
    listing = load_jobs(proj, dataset)
    groups: dict[int, list] = {}
    for team in teams:  # teams with the same time limit share one array
        groups.setdefault(time_limit_min(team, settings), []).append(team)
    submitted = {}
    for minutes, members in groups.items():
        executor = _executor(proj, dataset, settings, minutes)
        jobs = []
        try:
            with executor.batch():
                for team in members:
                    jobs.append(executor.submit(job, *job_args(team)))
        except Exception as exc:
            raise SlurmError(f"sbatch failed: {exc}", hint="check that the Slurm commands work here "
                             "(sinfo) and the partition/account in params.yaml") from None
        for team, submitted_job in zip(members, jobs, strict=True):
            submitted[team.id] = {"job_id": submitted_job.job_id, "run_key": team.run_key,
                                  "submitted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                  "array": len(members) > 1}
    listing["jobs"].update(submitted)
    write_json_atomic(proj.slurm_jobs(dataset), listing)
    return submitted


def active(proj: Project, teams: list, dataset: str) -> set[str]:
    """Teams whose job for their current manifest is queued or running."""
    by_id = {t.id: t for t in teams}
    known = {t: e for t, e in load_jobs(proj, dataset)["jobs"].items()
             if t in by_id and e["run_key"] == by_id[t].run_key}
    states = sacct_states([e["job_id"] for e in known.values()])
    return {t for t, e in known.items() if states[e["job_id"]] not in FINAL_STATES}


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    """Each job's state from Slurm's accounting (squeue forgets finished jobs; sacct does not)."""
    if not job_ids:
        return {}
    done = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(job_ids)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SlurmError(f"sacct failed: {done.stderr.strip()}", hint="the cluster needs slurmdbd for sacct")
    states = {}
    for line in done.stdout.splitlines():
        job_id, _, state = line.partition("|")
        states[job_id] = state.split()[0] if state else "UNKNOWN"  # 'CANCELLED by 0' -> CANCELLED
    return {job_id: states.get(job_id, "PENDING") for job_id in job_ids}


def counts(states: dict[str, str]) -> dict[str, int]:
    summary = {"queued": 0, "running": 0, "done": 0}
    for state in states.values():
        summary["done" if state in FINAL_STATES else "queued" if state in WAITING_STATES else "running"] += 1
    return summary


def wait(proj: Project, team: Manifest, dataset: str, settings: SlurmSettings, on_poll=None) -> dict:
    """Wait for the team's job, then return its run record, typed from Slurm's state if the job wrote none."""
    listing = load_jobs(proj, dataset)
    entry = listing["jobs"].get(team.id)
    if entry is None or entry["run_key"] != team.run_key:
        raise SlurmError(f"{team.id} has no job for its current manifest", hint="run `harness jobs submit`")
    all_ids = [e["job_id"] for e in listing["jobs"].values()]
    while True:
        states = sacct_states(all_ids)
        state = states[entry["job_id"]]
        if on_poll:
            on_poll(counts(states), state)
        if state in FINAL_STATES:
            break
        time.sleep(settings.poll_s)
    written = inference.load_record(proj.slurm_results(dataset), dataset, team.id)
    written_by_job = written is not None and written.slurm_job_id == entry["job_id"]
    if written_by_job:
        target = proj.team_runs(dataset, team.id)
        target.parent.mkdir(parents=True, exist_ok=True)
        replace_dir(team_runs_dir(proj.slurm_results(dataset), dataset, team.id), target)
    kind = FINAL_STATES[state]
    if state == "FAILED" and _soft_timeout(proj, dataset, entry["job_id"]):
        kind = "timeout"
    if not written_by_job or kind:  # Slurm ended the job (time limit, cancel, node): its state is the failure
        seen = written.failure if written is not None and written_by_job else None
        written = RunRecord.from_dict(inference.write_failed_record(
            team, proj.runs_dir, dataset, kind or "nonzero_exit",
            f"Slurm job {entry['job_id']} ended {state}" + (" at its time limit" if kind == "timeout" else "")
            + ("" if kind else " without a run record")
            + (f"; the runner saw: {seen['kind']}: {seen['message']}" if seen else ""),
            hint=f"job log: {job_log(proj, dataset, entry['job_id'])}"))
    assert written is not None  # the job's record, or the failure just written
    written.slurm_job_id, written.slurm_state = entry["job_id"], state
    for run in written.runs:
        run["provenance"]["slurm_job_id"] = entry["job_id"]
    record = written.as_written()
    write_json_atomic(proj.team_runs(dataset, team.id) / inference.RECORD, record)
    return record


def _soft_timeout(proj: Project, dataset: str, job_id: str) -> bool:
    """submitit ends a job that reaches its time limit itself (SIGUSR2), which Slurm records as FAILED."""
    import submitit

    job: submitit.SlurmJob = submitit.SlurmJob(folder=str(proj.slurm_dir(dataset) / "%j"), job_id=job_id)
    try:
        error = job.exception()
    except Exception:  # no result file: the job died before submitit could write one
        error = None
    if error is not None and "timed-out" in str(error):
        return True
    log = job_log(proj, dataset, job_id)  # submitit logs the case before it ends the job
    return log.exists() and "this job is timed-out" in log.read_text(errors="replace")


def job_log(proj: Project, dataset: str, job_id: str) -> Path:
    return proj.slurm_dir(dataset) / job_id / f"{job_id}_0_log.out"


def cancel(proj: Project, dataset: str, team_ids: list[str] | None = None) -> list[str]:
    """scancel the audit's jobs (all, or those of the named teams) that have not ended."""
    listing = load_jobs(proj, dataset)
    chosen = {t: e for t, e in listing["jobs"].items() if not team_ids or t in team_ids}
    states = sacct_states([e["job_id"] for e in chosen.values()])
    active = [e["job_id"] for e in chosen.values() if states[e["job_id"]] not in FINAL_STATES]
    if active:
        done = subprocess.run(["scancel", *active], capture_output=True, text=True)
        if done.returncode != 0:
            raise SlurmError(f"scancel failed: {done.stderr.strip()}")
    return active
