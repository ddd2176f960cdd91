"""Recipe families: the software stack a team runs on, one folder per family under containers/.

    containers/<family>/Dockerfile                the image, FROM an official base pinned by digest
    containers/<family>/base.txt                  what that base image holds (torch, torchvision, ...)
    containers/<family>/requirements.txt          the family's packages
    containers/<family>/requirements-source.txt   packages built against the installed torch

The image and the local runner's environment install the same files in the same order, with the same
flags; the image has base.txt already (its FROM), the local environment installs it first. A team's
`runtime.extra_packages` come last, over the family's pins.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import TypedFailure

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest

CONTAINERS = "containers"
# (file, extra flags), in install order.
STEPS = (("base.txt", ()), ("requirements.txt", ()),
         ("requirements-source.txt", ("--no-build-isolation", "--no-deps")))
EXTRAS_FLAGS = ("--no-build-isolation", "--no-deps")
_CONSTRAINT = re.compile(r"^\s*(-c|--constraint)\s+(\S+)\s*$")
_BARE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Step:
    """One install command: a requirements file (or the team's packages) and its flags."""

    label: str
    file: Path | None
    packages: tuple[str, ...]
    flags: tuple[str, ...]


@dataclass(frozen=True)
class Family:
    name: str
    folder: Path

    @classmethod
    def of(cls, containers: Path, name: str) -> Family:
        folder = Path(containers) / name
        if not (folder / "Dockerfile").is_file():
            raise TypedFailure("environment_failed", f"no recipe family '{name}' ({CONTAINERS}/{name}/Dockerfile)",
                               hint="check container.recipe in the manifest")
        return cls(name, folder)

    def steps(self, extras: tuple[str, ...] = ()) -> list[Step]:
        steps = [Step(file, self.folder / file, (), flags) for file, flags in STEPS if (self.folder / file).is_file()]
        if extras:
            steps.append(Step("runtime.extra_packages", None, tuple(extras), EXTRAS_FLAGS))
        return steps

    def inputs(self) -> dict[str, str]:
        """The text of every file the environment is built from, constraint files included."""
        texts = {}
        for step in self.steps():
            if step.file is None:  # the team's own packages: no file
                continue
            texts[step.file.name] = step.file.read_text()
            for line in texts[step.file.name].splitlines():
                match = _CONSTRAINT.match(line)
                if match:
                    constraint = (step.file.parent / match.group(2)).resolve()
                    texts[match.group(2)] = constraint.read_text()
        return texts

    def is_the_lock(self) -> bool:
        """Only names constrained by the harness's own lock: the harness's environment is this family's."""
        if [s.label for s in self.steps()] != ["requirements.txt"]:
            return False
        lines = [line.split("#")[0].strip() for line in (self.folder / "requirements.txt").read_text().splitlines()]
        lines = [line for line in lines if line]
        constraints = [_CONSTRAINT.match(line) for line in lines]
        if not constraints or not constraints[0] or (self.folder / constraints[0].group(2)).resolve() != \
                (self.folder.parent.parent / "requirements.lock").resolve():
            return False
        return all(_BARE_NAME.match(line) for line in lines[1:])

    def key(self, extras: tuple[str, ...], python: str) -> str:
        """Changes exactly when the environment would hold other packages."""
        payload = {"family": self.name, "python": python, "machine": platform.machine(),
                   "files": self.inputs(), "extras": list(extras)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def of_team(team: Manifest) -> Family | None:
    """The team's family (container.recipe) in the containers/ of its checkout (else of the harness's), or
    None when it declares none or pins a ready image."""
    from harness.catalogue.manifests import recipes_dir

    recipe = (team.container or {}).get("recipe")
    containers = recipes_dir(team.path)
    return Family.of(containers, recipe) if recipe and containers else None
