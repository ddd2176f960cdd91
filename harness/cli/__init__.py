"""The `harness` command line: parse, call the library (harness.audit.workflow and friends), render. The only
place that prints and picks exit codes.

One module per command family (MODULES, each listing its commands in COMMANDS); rendering lives in
harness.cli.render, the shared command-line plumbing in harness.cli.session. A family module is imported
when one of its commands runs, or for the command list of `--help`.

Exit codes: 0 success; 1 a check did not pass (a manifest is invalid, a team did not reproduce);
2 the command could not do its work (bad input, missing data, a download failed); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import MutableMapping
from pathlib import Path

import click

from harness import __version__
from harness.cli.session import EXIT_CHECK_FAILED, EXIT_ERROR, EXIT_INTERRUPTED, Session
from harness.core.errors import HarnessError, ManifestError

# The command families, in the order `--help` lists them.
MODULES = ("catalogue", "fetching", "running", "evaluation", "auditing")


class HarnessGroup(click.Group):
    """The command families, loaded on first use; typed library errors rendered for people (tracebacks
    only with --debug)."""

    def _families(self) -> MutableMapping[str, click.Command]:
        if not self.commands:
            for module in MODULES:
                for command in importlib.import_module(f"{__name__}.{module}").COMMANDS:
                    self.add_command(command)
        return self.commands

    def list_commands(self, ctx):
        return sorted(self._families())

    def get_command(self, ctx, name):
        return self._families().get(name)

    def invoke(self, ctx):
        from harness.cli.render import err, lit, unique

        try:
            return super().invoke(ctx)
        except ManifestError as exc:
            for problem in unique(exc.problems):
                err(f"[red]error[/red] {lit(problem)}", soft_wrap=True)
            sys.exit(EXIT_CHECK_FAILED)
        except HarnessError as exc:
            if ctx.obj and ctx.obj.debug:
                raise
            err(f"[red]error:[/red] {lit(exc.message)}", soft_wrap=True)
            if exc.hint:
                err(f"[dim]hint:[/dim] {lit(exc.hint)}", soft_wrap=True)
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            if ctx.obj and ctx.obj.debug:
                raise
            err("[yellow]interrupted[/yellow]: what was finished is kept (a run folder appears only when it is "
                "complete, an evaluation is written whole, a download resumes); nothing half-made was left in "
                "place. Run the same command again to go on.", soft_wrap=True)
            sys.exit(EXIT_INTERRUPTED)
        except OSError as exc:  # a path that cannot be created, read or written
            if ctx.obj and ctx.obj.debug:
                raise
            where = f" {exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "") if exc.filename else ""
            err(f"[red]error:[/red]{lit(where)}: {lit(exc.strerror or exc)}", soft_wrap=True)
            sys.exit(EXIT_ERROR)


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help="The harness checkout to work in (default: the nearest folder upwards with teams/).")
@click.option("--debug", is_flag=True, help="Show Python tracebacks instead of short error messages.")
@click.option("-v", "--verbose", is_flag=True, help="Show each evaluation's full table and findings.")
@click.version_option(__version__, prog_name="harness")
@click.pass_context
def cli(ctx, root, debug, verbose):
    """Re-run NTIRE super-resolution models, score them as the organizers did, and check published numbers.

    Settings come from params.yaml and can be overridden per command. Exit codes: 0 success,
    1 a check did not pass, 2 an error stopped the command.
    """
    ctx.obj = Session(root=root, debug=debug, verbose=verbose)


def main():
    def stop(signum, frame):  # SIGTERM unwinds like Ctrl-C: children are stopped, staging is removed
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    cli()
