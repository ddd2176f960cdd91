"""What every command shares: the checkout it works in, its settings read once, and the small checks
done before the work starts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import click

from harness.catalogue import audit_params, challenges, roster
from harness.catalogue.manifests import Manifest
from harness.core import project as project_mod
from harness.core import settings
from harness.core.errors import HarnessError
from harness.core.project import Project
from harness.core.settings import Settings

EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it

CHALLENGE_HELP = ("Every team of this challenge (challenges/ID.yaml), on its test dataset unless --dataset "
                  "says otherwise; instead of --teams.")
GPUS_HELP = ("With the docker runner and a cuda device: GPUs passed through, as docker run --gpus takes them: "
             "all, a count, or device=ID[,ID] (default: params.yaml).")
FROM_OUTPUTS_HELP = ("Score the team's published output images instead of running it: a folder, a .zip/.tar "
                     "archive, an http(s) URL or gdrive:<id>; alone, the source the manifest declares.")


@dataclass
class Session:
    """The command line's context object: global options, the checkout (found on first use, so that
    commands that need none work anywhere) and params.yaml (read once)."""

    root: Path | None = None
    debug: bool = False
    verbose: bool = False
    jobs_dataset: str | None = None  # `harness jobs --dataset`, for its subcommands
    _project: Project | None = field(default=None, repr=False)
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = Project(self.root.resolve()) if self.root else Project.find()
        return self._project

    @property
    def settings(self) -> Settings:
        """params.yaml's settings; each command lays its own options over them (Settings.given)."""
        if self._settings is None:
            self._settings = audit_params.read(self.project)
        return self._settings

    @property
    def checkout(self) -> Project | None:
        """The checkout, or None where the command runs outside one."""
        try:
            return self.project
        except HarnessError:
            return None

    @property
    def here(self) -> tuple[Settings, Path, Path]:
        """Settings, metric-weight cache and downloads of where the command stands: the checkout's, or
        outside one, the defaults (and a params.yaml in this folder, if any) with the user's cache."""
        proj = self.checkout
        if proj is not None:
            return self.settings, proj.metric_cache, proj.downloads_dir
        return (settings.load(Path.cwd() / settings.PARAMS_FILE), project_mod.metric_cache(None),
                project_mod.downloads_dir(None))

    def shown(self, path: Path) -> str:
        return roster.display_path(self.project, path)

    def named_teams(self, team_ids, all_teams: bool) -> tuple[list[Manifest], list]:
        """The teams a command names, or with --all every team of the catalogue (and the invalid ones' problems)."""
        if all_teams:
            return roster.load_all(self.project)
        if not team_ids:
            raise HarnessError("name at least one team, or --all")
        return [roster.load(self.project, t) for t in team_ids], []

    def selection(self, team_list: str | None, dataset: str | None,
                  challenge_id: str | None) -> tuple[list[str], str]:
        """The teams and dataset a command works on: --teams, or a challenge's teams, else params.yaml's."""
        if challenge_id and team_list:
            raise click.UsageError("give --teams or --challenge, not both")
        if challenge_id:
            rules = challenges.get(challenge_id)
            team_ids = [t for t in roster.team_ids(self.project)
                        if roster.load(self.project, t).data["challenge"] == challenge_id]
            return team_ids, dataset or rules.test_dataset
        team_ids = [t.strip() for t in team_list.split(",")] if team_list else list(self.settings.teams)
        return team_ids, dataset or self.settings.dataset


def writable(path: Path) -> None:
    """Refuse a result path that cannot be written before the work, not after it."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot write {path}: {exc.filename}: {exc.strerror}") from None
    if not os.access(Path(path).parent, os.W_OK) or Path(path).is_dir():
        raise HarnessError(f"cannot write {path}: " + ("it is a folder" if Path(path).is_dir() else
                                                      f"{Path(path).parent} is not writable"))


def result_path(value: Path | None) -> Path | None:
    """A --json option's path, refused at once when it cannot be written."""
    if value is not None:
        writable(value)
    return value


pass_session = click.make_pass_decorator(Session)


def device_option(help_text: str):
    """--device: cpu, cuda or cuda:N, checked when given (a 'did you mean' for gpu)."""
    def checked(ctx, param, value):
        return None if value is None else settings.valid_device(value, "--device")

    return click.option("--device", callback=checked, help=help_text)


def finite_option(name: str, help_text: str):
    """A number option that must be finite and above 0 (nan and inf are refused)."""
    def checked(ctx, param, value):
        return None if value is None else settings.check_number(value, name)

    return click.option(name, type=float, callback=checked, help=help_text)


def json_option(help_text: str):
    """--json PATH: where a command writes its result; a path that cannot be written is refused first."""
    return click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
                        callback=lambda ctx, param, value: result_path(value), help=help_text)


UNSAFE_HELP = ("Where no sandbox can be made (bubblewrap missing), run untrusted team code anyway, with your "
               "rights: your files, your keys, the network. Loud on purpose; every record of the run says so. "
               "Also HARNESS_UNSAFE_NO_SANDBOX=1.")


def unsafe_option(command):
    """--unsafe-no-sandbox: the explicit opt-in, warned about whenever it is given."""
    def warn(ctx, param, value):
        if value:
            from harness.cli.render import err

            err("[bold red]WARNING: --unsafe-no-sandbox: team code may run unsandboxed, with your rights "
                "(files, keys, network)[/bold red]")
        return value

    return click.option("--unsafe-no-sandbox", "unsafe_no_sandbox", is_flag=True, callback=warn,
                        help=UNSAFE_HELP)(command)
