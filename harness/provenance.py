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

from . import __version__


def git_sha(path: Path) -> str | None:
    try:
        import git

        repo = git.Repo(path, search_parent_directories=True)
        sha = repo.head.commit.hexsha
        return sha + ("+dirty" if repo.is_dirty(untracked_files=False) else "")
    except Exception:  # not a checkout (inside a container, an sdist): recorded as unknown
        return None


def harness_info(repo_root: Path | None = None) -> dict:
    return {"harness_version": __version__,
            "git_sha": git_sha(repo_root or Path(__file__).resolve().parent.parent)}


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
        info["gpu"] = {"name": torch.cuda.get_device_name(index), "capability": f"{major}.{minor}",
                       "arch_list": torch.cuda.get_arch_list()}
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def session_info(repo_root: Path | None = None) -> dict:
    """What changes from one session to the next: the checkout's commit (and whether it was dirty), the
    machine's kernel, this process."""
    import os

    return {"git_sha": harness_info(repo_root)["git_sha"], "platform": platform.platform(), "pid": os.getpid()}
