"""Running a team's own Python code as the organizers' `test.py` would, without touching that code.

- Where the code is: the team folder of this harness (code_root 'team'), or `code.path` inside a checkout
  of `code.repository` (code_root 'code'); `entry.module` is relative to that folder.
- Each module is executed once, under the name the team's code imports it by: `import_aliases` map
  the names the code uses onto folders of the checkout, and the folder's own dotted name resolves to
  the same module objects. The mapping travels in HARNESS_IMPORT_ALIASES so that child interpreters
  (multiprocessing spawn re-imports harness.adapter.entry) resolve the same names.
- The callable runs in a scratch working directory laid out like the organizers' checkout (links to
  its top-level entries, plus `working_dir_links` to weights at hard-coded paths).
- On a CPU, the CUDA calls that only query or tidy the device get stand-ins, and `torch.load` maps
  tensors to the CPU; library modules that moved since the code was written are aliased.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from harness.adapter.protocol import ALIASES_VARIABLE, OVERRIDE_VARIABLE
from harness.core.errors import InferenceFailed

if TYPE_CHECKING:  # annotations only: no import at run time
    from harness.catalogue.manifests import Manifest

# Modules that moved in the libraries the harness pins, by the name old code imports.
LIBRARY_MOVES = {"torchvision.transforms.functional_tensor": "torchvision.transforms._functional_tensor"}


def code_folders(team: Manifest, code_dir: Path | None) -> tuple[Path, Path]:
    """(import root, team folder): sys.path gets the import root; entry.module is inside the team folder."""
    if team.entry.get("code_root", "team") == "team":
        return team.dir, team.dir
    checkout = Path(code_dir or os.environ.get(OVERRIDE_VARIABLE, "/opt/code"))
    code = team.data["code"]
    if not checkout.is_dir():
        raise InferenceFailed("code_unavailable", f"no checkout of {code['repository']} at {checkout}",
                              hint=f"run `harness fetch code {team.id}`, or pass --code-dir with a checkout at "
                                   f"{code['commit']}")
    folder = checkout / code.get("path", ".")
    if not folder.is_dir():
        raise InferenceFailed("code_unavailable", f"{checkout} has no {code.get('path')}/ (code.path)",
                              hint=f"is {checkout} a checkout of {code['repository']} at {code['commit']}?")
    return checkout, folder


def dotted(root: Path, folder: Path) -> str:
    """The dotted module name of a folder below an import root ('models/team06_VAI-GM' -> 'models.team06_VAI-GM')."""
    return ".".join(folder.relative_to(root).parts)


class _Existing(importlib.abc.Loader):
    """Hands out a module that is already loaded under its canonical name, keeping its own spec (the
    import system sets the new name's spec on it, which would break its relative imports)."""

    def __init__(self, canonical: str):
        self.canonical = canonical
        self.own_spec = None

    def create_module(self, spec):
        module = importlib.import_module(self.canonical)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self.own_spec


class AliasFinder(importlib.abc.MetaPathFinder):
    """Resolves the names team code imports: an alias is a package at its folder; the folder's own
    dotted name (and a moved library module's old name) resolves to the canonical module object."""

    def __init__(self, packages: dict[str, str], renames: dict[str, str]):
        self.packages = packages  # alias -> folder
        self.renames = renames  # name -> canonical name (same module object)

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.packages:
            folder = Path(self.packages[fullname])
            init = folder / "__init__.py"
            if init.is_file():
                return importlib.util.spec_from_file_location(fullname, init,
                                                              submodule_search_locations=[str(folder)])
            spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [str(folder)]
            return spec
        for name, canonical in self.renames.items():
            if fullname == name or fullname.startswith(name + "."):
                if name in LIBRARY_MOVES and _importable_elsewhere(fullname):
                    return None
                target_name = canonical + fullname[len(name):]
                return importlib.machinery.ModuleSpec(fullname, _Existing(target_name),
                                                      is_package=fullname == name or None)
        return None


def _importable_elsewhere(fullname: str) -> bool:
    """The old name still exists in the installed library (no alias needed)."""
    parent = fullname.rpartition(".")[0]
    try:
        search = importlib.import_module(parent).__path__
    except (ImportError, AttributeError):
        return False
    return importlib.machinery.PathFinder.find_spec(fullname, search) is not None


def install_aliases(packages: dict[str, str], renames: dict[str, str], root: Path) -> None:
    """Put the finder first on sys.meta_path and tell child interpreters (through the environment)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, AliasFinder)]
    sys.meta_path.insert(0, AliasFinder(packages, {**LIBRARY_MOVES, **renames}))
    os.environ[ALIASES_VARIABLE] = json.dumps({"packages": packages, "renames": renames, "path": str(root)})


def install_from_environment() -> None:
    """In a child interpreter: the parent's aliases and import root, before anything is unpickled."""
    given = os.environ.get(ALIASES_VARIABLE)
    if not given:
        return
    aliases = json.loads(given)
    if aliases["path"] not in sys.path:
        sys.path.insert(0, aliases["path"])
    sys.meta_path.insert(0, AliasFinder(aliases["packages"], {**LIBRARY_MOVES, **aliases["renames"]}))


def prepare_imports(team: Manifest, root: Path, folder: Path) -> str:
    """Make the team's import names resolve (here and in child interpreters); return the name of the
    package its code folder is imported as."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    packages = {alias: str(root / target) for alias, target in team.entry.get("import_aliases", {}).items()}
    if folder == root and team.entry.get("code_root", "team") == "team":
        # the harness's own team folder: a package of its own, so relative imports work
        package = f"harness_team_{team.id.replace('-', '_')}"
        packages[package] = str(folder)
    elif folder == root:  # a checkout's root: its modules by their own dotted paths (models.team00_SPAN)
        package = ""
    else:
        package = next((a for a, target in packages.items() if Path(target) == folder), dotted(root, folder))
    renames = {dotted(root, Path(target)): alias for alias, target in packages.items()
               if Path(target) != root and Path(target).is_relative_to(root) and dotted(root, Path(target)) != alias}
    install_aliases(packages, renames, root)
    return package


def import_team_module(team: Manifest, root: Path, folder: Path, relative_file: str, what: str = "entry.module"):
    """Import a Python file of the team's code folder once, under the name its own code uses."""
    module_path = folder / relative_file
    if not module_path.resolve().is_relative_to(folder.resolve()) or not module_path.is_file():
        raise InferenceFailed("entry_error", f"{what}: {relative_file} does not exist in "
                              f"{'the team folder' if root == folder else 'code.path of the checkout'}")
    package = prepare_imports(team, root, folder)
    parts = Path(relative_file).with_suffix("").parts
    try:
        return importlib.import_module(".".join(p for p in (package, *parts) if p))
    except ImportError as exc:
        raise InferenceFailed("entry_error", f"importing {relative_file} failed: {type(exc).__name__}: {exc}",
                              hint="check entry.import_aliases against the code's import statements, and the "
                                   "packages its image installs") from exc


_IMPORT = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][\w.\-]*)|import_module\(\s*f?['\"]([\w.\-]+)", re.M)


def checkout_problems(team: Manifest, checkout: Path) -> list[tuple[str, str]]:
    """(field, problem) for what the manifest says about the code that the checkout contradicts: the
    code folder, the entry module, the networks' files, and import aliases against the code's imports."""
    problems = []
    folder = checkout / team.data["code"].get("path", ".")
    if not folder.is_dir():
        return [("code.path", f"'{team.data['code'].get('path')}' is not a folder of the checkout")]
    if not (folder / team.entry["module"]).is_file():
        problems.append(("entry.module", f"'{team.entry['module']}' is not a file of {team.data['code']['path']}/"))
    for index, weight in enumerate(team.weights):
        if "network" in weight and not (folder / weight["network"]["class"].rsplit(":", 1)[0]).is_file():
            problems.append((f"weights[{index}].network.class", f"'{weight['network']['class']}': no such file in "
                             f"{team.data['code']['path']}/"))
    imported = {statement or call for source in folder.rglob("*.py")
                for statement, call in _IMPORT.findall(source.read_text(errors="replace"))}
    own = dotted(checkout, folder)
    aliases = team.entry.get("import_aliases", {})
    for alias, target in aliases.items():
        if not (checkout / target).is_dir():
            problems.append((f"entry.import_aliases.{alias}", f"'{target}' is not a folder of the checkout"))
        if not any(name == alias or name.startswith(alias + ".") for name in imported):
            problems.append((f"entry.import_aliases.{alias}", f"the code never imports '{alias}'"))
    parts = Path(team.data["code"].get("path", ".")).parts
    packages_folder = parts[0] if parts else None  # 'models' in the organizers' layout
    for name in sorted(imported):
        package = ".".join(name.split(".")[:2])
        if name.split(".")[0] == packages_folder and "." in name and package != own and package not in aliases \
                and not (checkout / package.replace(".", "/")).exists():
            problems.append(("entry.import_aliases", f"the code imports '{package}', which is neither a folder of "
                             "the checkout nor an alias"))
    return sorted(set(problems))


# --- networks: stand-in weights and the fit of real ones -------------------------------------------

def build_network(team: Manifest, root: Path, folder: Path, weight: dict):
    """The network a weights file loads into, built as the code builds it (randomly initialised)."""
    module_file, class_name = weight["network"]["class"].rsplit(":", 1)
    module = import_team_module(team, root, folder, module_file, f"weights[{weight['name']}].network.class")
    network_class = getattr(module, class_name, None)
    if network_class is None:
        raise InferenceFailed("entry_error", f"{module_file} defines no {class_name}")
    return network_class(*network_positional(weight["network"]), **weight["network"].get("args", {}))


def network_positional(network: dict) -> list:
    """The constructor's positional arguments; {attributes: {...}} becomes an object with those attributes."""
    from types import SimpleNamespace

    return [SimpleNamespace(**item["attributes"]) if isinstance(item, dict) and set(item) == {"attributes"} else item
            for item in network.get("positional", [])]


def state_dict_at(saved, key):
    """The state dict in a saved object: under `key`, or the first of a list of keys present ('raw': the
    object itself), as the code picks it."""
    keys = [key] if isinstance(key, str) else list(key)
    for candidate in keys:
        if candidate == "raw" or (isinstance(saved, dict) and candidate in saved):
            return _state_dict(saved, candidate)
    return _state_dict(saved, keys[0])


def _state_dict(saved, key: str):
    if key == "raw":
        return saved
    if not isinstance(saved, dict) or key not in saved:
        found = ", ".join(map(str, saved)) if isinstance(saved, dict) else type(saved).__name__
        raise InferenceFailed("weights_mismatch", f"the checkpoint has no '{key}' (it holds: {found[:200]})",
                              hint="check weights[].network.key in the manifest")
    return saved[key]


def write_random_weights(team: Manifest, root: Path, folder: Path, out_dir: Path) -> list[Path]:
    """Randomly initialised weights in exactly the container each file's loader reads (raw or under
    its key), for every weights file whose network the manifest describes."""
    import torch

    written = []
    torch.manual_seed(0)
    for weight in team.weights:
        if "network" not in weight:
            continue
        state = build_network(team, root, folder, weight).state_dict()
        key = weight["network"].get("key", "raw")
        target = Path(out_dir) / weight["name"] / "stand-in.pth" if weight.get("directory") else \
            Path(out_dir) / weight["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state if key == "raw" else {key: state}, target)
        written.append(target)
    return written


def network_shapes(team: Manifest, root: Path, folder: Path, weight: dict) -> dict:
    """The state dict's shapes of the network a weights file loads into, built on torch's meta device (no
    memory, no initialisation) where the network allows it."""
    import torch

    try:
        with torch.device("meta"):
            network = build_network(team, root, folder, weight)
    except Exception:  # a constructor that computes on real values
        network = build_network(team, root, folder, weight)
    return {name: value.shape for name, value in network.state_dict().items()}


def check_weights(team: Manifest, root: Path, folder: Path, weights_dir: Path) -> None:
    """Each described weights file fits its network (names and shapes), or a typed weights_mismatch
    says what differs: minutes before a long run rather than at its end."""
    import torch

    for weight in team.weights:
        if "network" not in weight or not (Path(weights_dir) / weight["name"]).exists():
            continue
        path = weights_file(weights_dir, weight)
        expected = network_shapes(team, root, folder, weight)
        saved = _state_dict(torch.load(path, map_location="cpu", weights_only=False),
                            weight["network"].get("key", "raw"))
        missing = sorted(set(expected) - set(saved))
        unexpected = sorted(set(saved) - set(expected))
        shapes = [f"{k}: {tuple(saved[k].shape)} instead of {tuple(expected[k])}" for k in expected
                  if k in saved and hasattr(saved[k], "shape") and saved[k].shape != expected[k]]
        if missing or unexpected or shapes:
            parts = [f"{len(missing)} missing ({', '.join(missing[:3])})" if missing else "",
                     f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])})" if unexpected else "",
                     f"{len(shapes)} of another shape ({'; '.join(shapes[:2])})" if shapes else ""]
            raise InferenceFailed("weights_mismatch", f"{weight['name']} does not fit "
                                  f"{weight['network']['class']}: " + ", ".join(p for p in parts if p) + " key(s)",
                                  hint="the file belongs to another network or configuration; check the source "
                                       "and weights[].network")


@contextlib.contextmanager
def organizers_workdir(root: Path, links: dict[str, str], weights_dir: Path):
    """Run in a scratch folder shaped like the organizers' checkout: its top-level entries linked (read
    only in practice), `links` to weights at the paths the code hard-codes; whatever the code writes
    into its working directory stays in the scratch folder."""
    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="harness-work-") as scratch:
        for entry in sorted(Path(root).iterdir()):
            if not entry.name.startswith("."):
                (Path(scratch) / entry.name).symlink_to(entry.resolve())
        for relative, name in links.items():
            place = Path(scratch)
            for part in Path(relative).parts[:-1]:
                place = place / part
                if place.is_symlink():  # a folder of the checkout: made real, so the link can go into it
                    _materialise(place)
                place.mkdir(exist_ok=True)
            link = Path(scratch) / relative
            if link.is_symlink():
                link.unlink()
            link.symlink_to((weights_dir / name).resolve())
        os.chdir(scratch)
        try:
            yield Path(scratch)
        finally:
            os.chdir(previous)


def _materialise(folder: Path) -> None:
    """Replace a linked folder by a real one holding links to its entries (so new files can go there)."""
    target = folder.resolve()
    folder.unlink()
    folder.mkdir()
    for entry in target.iterdir():
        (folder / entry.name).symlink_to(entry)


@contextlib.contextmanager
def cpu_stand_ins(device: str):
    """On a CPU: the CUDA calls that only query or tidy the device answer as a single GPU would,
    `.cuda()` of a module or tensor keeps it where it is (code that builds or warms up its network on a
    GPU), and torch.load maps tensors to the CPU unless told otherwise. Undone afterwards."""
    import torch

    if device.startswith("cuda"):
        yield
        return
    saved = {name: getattr(torch.cuda, name) for name in ("current_device", "empty_cache", "synchronize",
                                                           "set_device", "reset_peak_memory_stats")}
    moves = {torch.nn.Module: torch.nn.Module.cuda, torch.Tensor: torch.Tensor.cuda}
    for owner in moves:
        owner.cuda = lambda self, *args, **kwargs: self  # type: ignore[attr-defined]
    original_load = torch.load

    def load(*args, **kwargs):
        kwargs.setdefault("map_location", "cpu")
        return original_load(*args, **kwargs)

    torch.cuda.current_device = lambda: 0
    for name in ("empty_cache", "synchronize", "set_device", "reset_peak_memory_stats"):
        setattr(torch.cuda, name, lambda *args, **kwargs: None)
    torch.load = load
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(torch.cuda, name, function)
        for owner, method in moves.items():
            owner.cuda = method  # type: ignore[attr-defined]
        torch.load = original_load


def only_file_in(folder: Path) -> Path:
    """The one file of a weights folder whose file name was not published."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")) \
        if Path(folder).is_dir() else []
    if len(files) != 1:
        raise InferenceFailed("weights_unavailable", f"{folder} holds {len(files)} files; the code reads exactly one",
                              hint="place the team's one weights file in that folder")
    return files[0]


def weights_file(weights_dir: Path, weight: dict) -> Path:
    """Where a declared weights entry's bytes are: the file, or the one file of a declared folder."""
    path = Path(weights_dir) / weight["name"]
    return only_file_in(path) if weight.get("directory") else path


def model_dir_argument(team: Manifest, weights_dir: Path):
    """What the callable's model_dir receives, as the manifest declares it."""
    shape = team.entry.get("model_dir", "folder")
    if shape == "file":
        return str(weights_dir / team.weights[0]["name"])
    if shape == "files":
        return {w["name"]: str(weights_dir / w["name"]) for w in team.weights}
    if shape == "folder":
        return str(weights_dir)
    if "file" in shape:  # one declared file; its siblings in the folder are read too
        return str(weights_dir / shape["file"])
    if "only_file_in" in shape:
        return str(only_file_in(weights_dir / shape["only_file_in"]))
    if "folder" in shape:  # a declared sub-folder of the weights
        return str(weights_dir / shape["folder"])
    return {key: str(weights_dir / name) for key, name in shape["keys"].items()}  # the code's own keys
