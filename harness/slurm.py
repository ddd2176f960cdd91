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
from datetime import datetime, timezone
from pathlib import Path

from . import data as data_mod
from . import inference, registry, runners
from . import weights as weights_mod
from .errors import HarnessError
from .fsutil import replace_dir, write_json_atomic
from .project import Project

JOBS_FILE = "jobs.json"
DEFAULT_SETTINGS = {"partition": None, "account": None, "cpus_per_task": 2, "mem_gb": 8, "gpus_per_job": 0,
                    "time_limit_min": None, "array_parallelism": 64, "poll_s": 5}
# Slurm accounting states at which a job is over, and the failure each one means.
FINAL_STATES = {"COMPLETED": None, "FAILED": "nonzero_exit", "TIMEOUT": "timeout", "DEADLINE": "timeout",
                "CANCELLED": "cancelled", "PREEMPTED": "cancelled", "NODE_FAIL": "node_failure",
                "BOOT_FAIL": "node_failure", "OUT_OF_MEMORY": "out_of_memory"}
WAITING_STATES = {"PENDING", "REQUEUED", "CONFIGURING", "SUSPENDED", "RESIZING"}


class SlurmError(HarnessError):
    pass


def run_team_job(root: str, team_id: str, dataset: str, runner_name: str, device: str, docker: dict) -> dict:
    """The job's body: one team through the ordinary runner path, on the node Slurm picked."""
    proj = Project(Path(root))
    team = registry.load(proj, team_id)
    runner = runners.get(runner_name, docker)
    import submitit

    lr_dir = data_mod.get(dataset).lr_dir(proj.data_dir)
    results = job_results(proj, dataset)
    record = inference.infer_team(team, runner, lr_dir, results, dataset,
                                  weights_mod.weights_dir(proj.weights_dir, team), device, proj.root)
    record["slurm_job_id"] = submitit.JobEnvironment().job_id
    write_json_atomic(inference.team_runs_dir(results, dataset, team.id) / inference.RECORD, record)
    return record


def job_results(proj: Project, dataset: str) -> Path:
    """Where jobs write their runs; the waiting stage moves them into runs/. DVC clears a stage's
    outputs before running it, so a job that finishes first must not write there."""
    return proj.root / ".cache" / "slurm" / dataset / "results"


def jobs_path(proj: Project, dataset: str) -> Path:
    return proj.root / ".cache" / "slurm" / dataset / JOBS_FILE


def load_jobs(proj: Project, dataset: str) -> dict:
    path = jobs_path(proj, dataset)
    return json.loads(path.read_text()) if path.exists() else {"jobs": {}}


def is_complete(proj: Project, team, dataset: str) -> bool:
    """The team's runs exist for its current run key and pass the output checks."""
    record = inference.load_record(proj.runs_dir, dataset, team.id)
    if not record or record["status"] != "ok" or record.get("run_key") != team.run_key:
        return False
    dirs = inference.run_dirs(proj.runs_dir, dataset, team.id)
    if len(dirs) != team.repeats:
        return False
    lr_dir = data_mod.get(dataset).lr_dir(proj.data_dir)
    try:
        for run_dir in dirs:
            inference.check_outputs(lr_dir, run_dir, team.runtime["scale"])
    except HarnessError:
        return False
    return True


def time_limit_min(team, settings: dict) -> int:
    """Slurm's limit leaves the runner's own timeout room to fire first and type the failure itself."""
    return int(settings["time_limit_min"] or math.ceil(team.runtime.get("timeout_s", 3600) * team.repeats / 60) + 5)


def _executor(proj: Project, dataset: str, settings: dict, minutes: int):
    import submitit

    folder = proj.root / ".cache" / "slurm" / dataset / "%j"
    executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    extra = {"account": settings["account"]} if settings["account"] else {}
    executor.update_parameters(timeout_min=minutes, cpus_per_task=settings["cpus_per_task"],
                               mem_gb=settings["mem_gb"], slurm_partition=settings["partition"],
                               slurm_array_parallelism=settings["array_parallelism"],
                               slurm_additional_parameters=extra, name=f"harness-{dataset}")
    if settings["gpus_per_job"]:
        executor.update_parameters(slurm_gres=f"gpu:{settings['gpus_per_job']}")
    return executor


def submit(proj: Project, teams: list, dataset: str, runner_name: str, device: str, docker: dict,
           settings: dict) -> dict:
    """Submit one job per team that is not already complete (one array when they share resources)."""
    listing = load_jobs(proj, dataset)
    by_id = {t.id: t for t in teams}
    known = {t: e for t, e in listing["jobs"].items() if t in by_id and e["run_key"] == by_id[t].run_key}
    states = sacct_states([e["job_id"] for e in known.values()])
    active = {t for t, e in known.items() if states[e["job_id"]] not in FINAL_STATES}
    wanted = [t for t in teams if t.runnable and t.id not in active and not is_complete(proj, t, dataset)]
    groups: dict[int, list] = {}
    for team in wanted:  # teams with the same time limit share one array
        groups.setdefault(time_limit_min(team, settings), []).append(team)
    submitted = {}
    for minutes, members in groups.items():
        executor = _executor(proj, dataset, settings, minutes)
        jobs = []
        try:
            with executor.batch():
                for team in members:
                    jobs.append(executor.submit(run_team_job, str(proj.root), team.id, dataset, runner_name,
                                                device, docker))
        except Exception as exc:
            raise SlurmError(f"sbatch failed: {exc}", hint="check that the Slurm commands work here "
                             "(sinfo) and the partition/account in params.yaml") from None
        for team, job in zip(members, jobs):
            submitted[team.id] = {"job_id": job.job_id, "run_key": team.run_key,
                                  "submitted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                  "array": len(members) > 1}
    listing["jobs"].update(submitted)
    write_json_atomic(jobs_path(proj, dataset), listing)
    return submitted


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


def wait(proj: Project, team, dataset: str, settings: dict, on_poll=None) -> dict:
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
        time.sleep(settings["poll_s"])
    record = inference.load_record(job_results(proj, dataset), dataset, team.id)
    written_by_job = record is not None and record.get("slurm_job_id") == entry["job_id"]
    if written_by_job:
        target = inference.team_runs_dir(proj.runs_dir, dataset, team.id)
        target.parent.mkdir(parents=True, exist_ok=True)
        replace_dir(inference.team_runs_dir(job_results(proj, dataset), dataset, team.id), target)
    kind = FINAL_STATES[state]
    if state == "FAILED" and _soft_timeout(proj, dataset, entry["job_id"]):
        kind = "timeout"
    if not written_by_job or kind:  # Slurm ended the job (time limit, cancel, node): its state is the failure
        seen = (record or {}).get("failure") if written_by_job else None
        record = inference.write_failed_record(
            team, proj.runs_dir, dataset, kind or "nonzero_exit",
            f"Slurm job {entry['job_id']} ended {state}" + (" at its time limit" if kind == "timeout" else "")
            + ("" if kind else " without a run record")
            + (f"; the runner saw: {seen['kind']}: {seen['message']}" if seen else ""),
            hint=f"job log: {job_log(proj, dataset, entry['job_id'])}")
    record["slurm_job_id"] = entry["job_id"]
    record["slurm_state"] = state
    for run in record.get("runs", []):
        run["provenance"]["slurm_job_id"] = entry["job_id"]
    write_json_atomic(inference.team_runs_dir(proj.runs_dir, dataset, team.id) / inference.RECORD, record)
    return record


def _soft_timeout(proj: Project, dataset: str, job_id: str) -> bool:
    """submitit ends a job that reaches its time limit itself (SIGUSR2), which Slurm records as FAILED."""
    import submitit

    job = submitit.SlurmJob(folder=str(proj.root / ".cache" / "slurm" / dataset / "%j"), job_id=job_id)
    try:
        error = job.exception()
    except Exception:  # no result file: the job died before submitit could write one
        return False
    return error is not None and "timed-out" in str(error)


def job_log(proj: Project, dataset: str, job_id: str) -> Path:
    return proj.root / ".cache" / "slurm" / dataset / job_id / f"{job_id}_0_log.out"


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
