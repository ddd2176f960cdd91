"""What a result was made with: harness, code, libraries, hardware.

Provenance is split in two: what decides the result (versions, hashes, flags) is written beside it in a
file the pipeline hashes; what changes from one session to the next (when, how long, which checkout
commit, the machine's kernel, process ids) goes to a `session.json` beside it, which DVC ignores
(.dvcignore), so a repeated audit of the same code and data leaves dvc.lock as it was.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from harness import __version__
from harness.core.settings import PACKAGE_DIR

# What the audit writes itself: a change there is the audit's record of what ran, not an edit of the checkout.
AUDIT_WRITES = ("dvc.lock",)


def git_sha(path: Path) -> str | None:
    """The checkout's commit, with '+dirty' when tracked files were changed by someone (the files the audit
    writes itself, AUDIT_WRITES, do not count: they are its result, not the state it started from)."""
    try:
        import git

        repo = git.Repo(path, search_parent_directories=True)
        sha = repo.head.commit.hexsha
        changed = [line[3:] for line in repo.git.status("--porcelain", "--untracked-files=no").splitlines()]
        return sha + ("+dirty" if any(name not in AUDIT_WRITES for name in changed) else "")
    except Exception:  # not a checkout (inside a container, an sdist): recorded as unknown
        return None


def harness_info(repo_root: Path | None = None) -> dict:
    return {"harness_version": __version__,
            "git_sha": git_sha(repo_root or PACKAGE_DIR.parent)}


def torch_info(device: str) -> dict:
    import torch

    info = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": device,
        "threads": torch.get_num_threads(),
        "determinism_flags": {
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        },
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        major, minor = torch.cuda.get_device_capability(index)
        name = torch.cuda.get_device_name(index)
        info["gpu"] = {"name": name, "capability": f"{major}.{minor}", "arch_list": torch.cuda.get_arch_list()}
        info["executed_on"] = {"device": "cuda", "name": name}
    else:
        info["cpu"] = platform.processor() or platform.machine()
        info["executed_on"] = {"device": "cpu"}  # the model name is the session's: outputs rarely depend on it
    return info


def cpu_model() -> str:
    """The processor's model name, as the kernel reports it (its floating-point kernels can differ by model)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def session_info(repo_root: Path | None = None) -> dict:
    """What changes from one session to the next: the checkout's commit (and whether it was dirty), the
    machine's kernel, this process."""
    import os

    return {"git_sha": harness_info(repo_root)["git_sha"], "platform": platform.platform(), "cpu": cpu_model(),
            "pid": os.getpid()}
