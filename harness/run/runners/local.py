"""Runs the adapter on this machine: in the team's family environment (harness.run.environments), inside a sandbox
(harness.run.sandbox), laid out as its image would be.

Team code is untrusted. Without a sandbox, only teams that run no outside code (entry kinds `classical`
and `spandrel`: the harness's code and a state dict; the embedded mini suite, `trusted_code` in its
challenge file) run; anything else is refused with `sandbox_unavailable`, unless the user accepts the risk
with --unsafe-no-sandbox (HARNESS_UNSAFE_NO_SANDBOX=1), which every record of the run then says.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from harness.adapter.protocol import (
    ALIASES_VARIABLE,
    OVERRIDE_VARIABLE,
    PROVENANCE,
    LineSplitter,
    add_to_session,
    decode_exit,
    log_tail,
)
from harness.core.errors import InferenceFailed
from harness.core.files import write_json_atomic
from harness.core.findings import Finding
from harness.core.provenance import session_info
from harness.core.settings import CHALLENGES_DIR, PACKAGE_DIR, SCHEMAS_DIR, LocalSettings, Settings
from harness.run import environments, sandbox
from harness.run.lockdown import CONTAINER_ENV, SCRATCH
from harness.run.runners.base import RunRequest

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest

# The image's layout, kept inside the sandbox: the adapter gets the same arguments as in a container.
LR_MOUNT, WEIGHTS_MOUNT, OUTPUT_MOUNT, CODE_MOUNT, HARNESS_ROOT = "/data/lr", "/weights", "/output", "/opt/code", \
    "/opt/harness"
LIBRARY_MAPPINGS_GB = 8  # address space torch's libraries and thread arenas take before any work


class LocalRunner:
    name = "local"
    selection: str | None = None

    def __init__(self, settings: LocalSettings | None = None, unsafe_no_sandbox: bool = False):
        self.settings = settings or LocalSettings()
        self.unsafe_no_sandbox = unsafe_no_sandbox

    def containment(self, team: Manifest) -> str:
        """How the team's code is held: 'sandbox', 'trusted' (runs no code of its own) or 'unsafe'; or
        InferenceFailed('sandbox_unavailable') naming the fix."""
        problem = sandbox.problem()
        if problem is None:
            return "sandbox"
        if sandbox.trusted(team):
            return "trusted"
        if self.unsafe_no_sandbox:
            return "unsafe"
        raise InferenceFailed("sandbox_unavailable", f"{team.id}: its code would run with your rights: {problem}",
                              hint="install bubblewrap (apt-get install bubblewrap), or use --runner docker; to run "
                                   "it anyway, pass --unsafe-no-sandbox (HARNESS_UNSAFE_NO_SANDBOX=1)")

    def run_once(self, request: RunRequest) -> None:
        team = request.team
        containment = self.containment(team)
        environment = environments.for_team(team, request.log_path.parent / "environment.log")
        timeout = team.runtime.get("timeout_s", 3600)
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        code_dir = request.code_dir or (Path(os.environ[OVERRIDE_VARIABLE]) if os.environ.get(OVERRIDE_VARIABLE)
                                        else None)
        if code_dir is not None and not code_dir.is_dir():
            raise InferenceFailed("code_unavailable", f"{team.id}: no checkout at {code_dir}",
                                  hint=f"run `harness fetch code {team.id}`, "
                                       f"or point {OVERRIDE_VARIABLE} at a checkout")
        with tempfile.TemporaryDirectory(prefix="harness-local-") as scratch:
            if containment == "sandbox":
                command, env = self._sandboxed(request, environment, code_dir, Path(scratch))
            else:
                command, env = self._plain(request, environment, code_dir, Path(scratch))
            with open(request.log_path, "ab") as log:
                if containment == "unsafe":
                    log.write(b"harness: UNSAFE: no sandbox; the team's code runs with the user's rights "
                              b"(--unsafe-no-sandbox)\n")
                code = self._follow(command, env, log, request, timeout)
        decode_exit(team.id, code, request.out_dir, request.log_path)
        self._add_host_provenance(request.out_dir, environment, containment)

    def _sandboxed(self, request: RunRequest, environment: environments.Environment, code_dir: Path | None,
                   scratch: Path) -> tuple[list[str], dict]:
        team = request.team
        weights = Path(request.weights_dir)
        if not weights.is_dir():
            weights = scratch / "no-weights"
            weights.mkdir()
        mounts = [sandbox.Mount(PACKAGE_DIR, f"{HARNESS_ROOT}/harness"),
                  sandbox.Mount(SCHEMAS_DIR, f"{HARNESS_ROOT}/schemas"),
                  sandbox.Mount(CHALLENGES_DIR, f"{HARNESS_ROOT}/challenges"),
                  sandbox.Mount(team.dir, f"{HARNESS_ROOT}/teams/{team.id}"),
                  sandbox.Mount(environment.base_prefix, str(environment.base_prefix)),
                  sandbox.Mount(environment.prefix, str(environment.prefix)),
                  sandbox.Mount(Path(request.lr_dir), LR_MOUNT),
                  sandbox.Mount(weights, WEIGHTS_MOUNT),
                  sandbox.Mount(Path(request.out_dir), OUTPUT_MOUNT, writable=True)]
        if code_dir:
            mounts.append(sandbox.Mount(code_dir, CODE_MOUNT))
        env = {**CONTAINER_ENV, "HOME": sandbox.HOME, "USER": "runner", "LOGNAME": "runner", "LANG": "C.UTF-8",
               "PATH": f"{environment.python.parent}:/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": HARNESS_ROOT,
               "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": self._threads(), "MPLCONFIGDIR": f"{SCRATCH}/mpl",
               "HARNESS_CODE_DIR": CODE_MOUNT}
        if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        argv = [str(environment.python), "-m", "harness.adapter",
                *request.adapter_args(f"{HARNESS_ROOT}/teams/{team.id}/manifest.yaml", LR_MOUNT, OUTPUT_MOUNT,
                                      WEIGHTS_MOUNT, HARNESS_ROOT, CODE_MOUNT if code_dir else None)]
        gpu = request.device.startswith("cuda")
        memory = None if gpu else self._address_space(team)
        return sandbox.command(argv, mounts, env, scratch, int(self.settings.scratch_gb * 2 ** 30), gpu,
                               memory), {}

    def _plain(self, request: RunRequest, environment: environments.Environment, code_dir: Path | None,
               scratch: Path) -> tuple[list[str], dict]:
        """No sandbox: the adapter as a child process (trusted teams, or the explicit unsafe opt-in)."""
        team = request.team
        (scratch / "harness").symlink_to(PACKAGE_DIR)  # the harness package alone, not what lies beside it
        env = {k: v for k, v in os.environ.items() if k != ALIASES_VARIABLE}
        env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(scratch), OMP_NUM_THREADS=self._threads())
        command = [str(environment.python), "-m", "harness.adapter",
                   *request.adapter_args(str(team.path), str(request.lr_dir), str(request.out_dir),
                                         str(request.weights_dir), str(request.repo_root),
                                         str(code_dir) if code_dir else None)]
        return command, env

    def _threads(self) -> str:
        return str(self.settings.threads or max(1, math.floor(len(os.sched_getaffinity(0)))))

    def _address_space(self, team: Manifest) -> int:
        """The memory bound on a CPU: runtime.memory_gb (or local.memory_gb) of address space, plus the
        mappings torch's libraries take before any work."""
        memory_gb = team.runtime.get("memory_gb", self.settings.memory_gb)
        return int((memory_gb + LIBRARY_MAPPINGS_GB) * 2 ** 30)

    def _follow(self, command: list[str], env: dict, log, request: RunRequest, timeout: float) -> int:
        team = request.team
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=request.repo_root,
                              env=env or None, start_new_session=True) as process:
            splitter = LineSplitter(log, request.on_progress)
            output = process.stdout
            assert output is not None  # stdout=PIPE

            def read() -> None:
                for chunk in iter(lambda: output.read1(65536), b""):  # type: ignore[attr-defined]
                    splitter.feed(chunk)

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(process)
                reader.join(5)
                raise InferenceFailed("timeout", f"{team.id}: no result after {timeout} s (runtime.timeout_s); "
                                      "the process was killed", log_tail=log_tail(request.log_path)) from None
            except BaseException:  # Ctrl-C: stop the child too, leave no orphan
                _kill(process)
                raise
            reader.join(5)
        return code

    def _add_host_provenance(self, out_dir: Path, environment: environments.Environment, containment: str) -> None:
        path = Path(out_dir) / PROVENANCE
        if not path.exists():
            return
        provenance = json.loads(path.read_text())
        provenance["local"] = {
            "environment": {k: v for k, v in environment.describe().items() if k != "prefix"},
            "containment": containment,
            "sandbox": {"tool": sandbox.version(), "network": "none", "file_system": "read-only except /output "
                        "and a private /tmp", "pid_namespace": True, "user": sandbox.UID}
            if containment == "sandbox" else None,
            "unsafe": containment == "unsafe"}
        write_json_atomic(path, provenance)
        add_to_session(out_dir, {"host": {**session_info(None), "environment": str(environment.prefix)}})


def _kill(process: subprocess.Popen) -> None:
    """The adapter and everything it started (its session; in a sandbox, the whole PID namespace)."""
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def make(settings: Settings, selection: str) -> LocalRunner:
    """The registry's factory (harness.core.registries.RUNNERS)."""
    return LocalRunner(settings.local, settings.unsafe_no_sandbox)


def check(settings: Settings, teams: list[Manifest]) -> list[Finding]:
    """What this runner needs of the machine for these teams: a sandbox for each one that runs code of its
    own (unless the user opted out), and each team's family environment."""
    untrusted = [t.id for t in teams if t.runnable and not sandbox.trusted(t)]
    problem = sandbox.problem()
    if problem is None:
        out = [Finding("sandbox", "ok", f"{sandbox.version()}: no network, read-only files, own PID namespace")]
    elif untrusted and settings.unsafe_no_sandbox:
        out = [Finding("sandbox", "warning", f"{problem}; UNSAFE: {', '.join(untrusted)} run with your rights "
                       "(--unsafe-no-sandbox)")]
    else:
        out = [Finding("sandbox", "missing" if untrusted else "warning", f"{problem}; " + (
            f"refused locally: {', '.join(untrusted)}" if untrusted else "the teams here run only the harness's code"),
            "make sandbox (apt-get install bubblewrap), or use runner: docker", failure="sandbox_unavailable")]
    for team in teams:
        if not team.runnable or settings.source == "outputs":
            continue
        family, name = environments.planned(team)
        if name is None:
            out.append(Finding(f"{team.id}: environment", "ok", "the harness's own (" +
                               (f"family {family.name} is its lock)" if family else "no recipe family)")))
        elif environments.built(name):
            out.append(Finding(f"{team.id}: environment", "ok", f"{name}, built"))
        else:
            out.append(Finding(f"{team.id}: environment", "to fetch", f"{name} is built on first use from "
                               f"containers/{family.name if family else '?'}/ (packages from PyPI)",
                               f"harness smoke {team.id}"))
    return out
