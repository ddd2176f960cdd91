"""The wings' import boundaries, held on every module of the package.

Wings stand bottom to top in the audit's flow (WINGS); a module imports its own wing and the wings below it,
never one above. core imports no other wing; verdict imports neither score nor run (a verdict is made from
records, not by scoring or running); the adapter, which runs inside the sandbox or a team's image, imports
nothing that touches Docker, DVC, Slurm or the network. Imports under `if TYPE_CHECKING:` (annotations only)
are held to the same rules."""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

WINGS = ["core", "imaging", "catalogue", "adapter", "fetch", "run", "score", "verdict", "report", "audit", "cli"]
NEVER = {"verdict": ("harness.score", "harness.run")}
# What the adapter must not reach, statically or at run time: engines, pipelines, schedulers, the network,
# and the wings that use them.
ADAPTER_NEVER = ("docker", "dvc", "submitit", "gdown", "requests", "urllib3", "http", "socket", "urllib.request",
                 "harness.fetch", "harness.run", "harness.score", "harness.verdict", "harness.report",
                 "harness.audit", "harness.cli")


def package_sources() -> dict[str, str]:
    sources = {}
    for path in sorted((REPO / "harness").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        sources[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path.read_text()
    return sources


def wing_of(module: str) -> str:
    """The wing a module stands in; the package's face (its version) counts as core, `python -m harness` as
    the command line."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in WINGS:
        return parts[1]
    return "cli" if module == "harness.__main__" else "core"


def imports_of(module: str, source: str) -> list[tuple[int, str]]:
    """(line, module imported) for every import in the module: at its top, inside a function, for annotations."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{module}:{node.lineno}: the package imports itself by absolute names only"
            base = node.module or ""
            found += [(node.lineno, f"{base}.{alias.name}" if base in ("harness", *_wing_packages()) else base)
                      for alias in node.names]
    return found


def _wing_packages() -> tuple[str, ...]:
    return tuple(f"harness.{wing}" for wing in WINGS)


def _reaches(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def violations(sources: dict[str, str]) -> list[str]:
    found = []
    for module, source in sources.items():
        wing = wing_of(module)
        where = module.replace(".", "/") + ".py"
        for line, target in imports_of(module, source):
            if target.startswith("harness."):
                other = wing_of(target)
                if WINGS.index(other) > WINGS.index(wing):
                    found.append(f"{where}:{line} imports {target}: {other} stands above {wing}")
                for banned in NEVER.get(wing, ()):
                    if _reaches(target, banned):
                        found.append(f"{where}:{line} imports {target}: {wing} never imports {banned}")
            if wing == "adapter":
                for banned in ADAPTER_NEVER:
                    if _reaches(target, banned):
                        found.append(f"{where}:{line} imports {target}: the adapter never reaches {banned}")
    return found


def test_every_wing_imports_only_itself_and_the_wings_below():
    assert violations(package_sources()) == []


def test_a_wing_importing_upward_is_caught():
    """The rule bites: core reaching up into the audit, verdict into score, and the adapter into Docker."""
    sources = package_sources()
    sources["harness.core.errors"] += "\n\ndef late():\n    from harness.audit import workflow\n"
    sources["harness.verdict.rules"] += "\nfrom harness.score.evaluation import Evaluation\n"
    sources["harness.adapter.entry"] += "\nimport docker\n"
    found = violations(sources)
    assert len(found) == 3, found
    assert any(v.startswith("harness/core/errors.py:") and "harness.audit.workflow: audit stands above core" in v
               for v in found), found
    assert any("verdict never imports harness.score" in v for v in found)
    assert any("imports docker: the adapter never reaches docker" in v for v in found)


def test_the_adapter_loads_no_engine_pipeline_scheduler_or_network_client():
    """At run time too: what `python -m harness.adapter` imports, inside a team's image, stays inside the wings
    it may use."""
    code = ("import sys, runpy; sys.argv = ['adapter', '--help']\n"
            "try:\n    runpy.run_module('harness.adapter', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    loaded = done.stdout.split()[-1:] and done.stdout.strip().splitlines()[-1].split()
    reached = sorted(m for m in loaded for banned in ADAPTER_NEVER if m == banned or m.startswith(banned + "."))
    assert reached == [], reached
    assert "harness.adapter.teamcode" in loaded  # the entry ran (as the main module) and loaded its own


def test_each_wing_says_what_it_holds():
    for wing in WINGS:
        assert (Path(REPO) / "harness" / wing / "__init__.py").read_text().startswith('"""'), wing


def test_contributing_lays_out_every_wing():
    layout = (REPO / "CONTRIBUTING.md").read_text().split("## 1. The layout", 1)[1].split("## 2.", 1)[0]
    assert [wing for wing in WINGS if f"harness/{wing}/" not in layout] == []


def test_every_package_of_the_tree_ships_in_the_wheel():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "harness").rglob("__init__.py")}
    assert found - listed == set()
