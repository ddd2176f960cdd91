"""Team manifests: loading, schema validation and semantic checks, with errors for people."""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import re
from pathlib import Path

from harness.core import safe_yaml
from harness.core.errors import ManifestError, ManifestProblem
from harness.core.settings import PACKAGE_DIR, SCHEMAS_DIR

SCHEMA_PATH = SCHEMAS_DIR / "manifest.schema.json"
MANIFEST_NAME = "manifest.yaml"
# Fields that do not change what a run produces; a change to them needs no re-run.
NON_RUN_FIELDS = ("published", "description", "name", "tracks", "status")
DETERMINISM_EVIDENCE = ("claimed", "measured")  # what was said and seen of the runs, not what they run


@functools.lru_cache(maxsize=1)
def field_order() -> tuple[str, ...]:
    """The schema's order of a manifest's fields, as a manifest is written."""
    return tuple(json.loads(SCHEMA_PATH.read_text())["properties"])


def schema() -> dict:
    """The manifest schema, with the metric names taken from the metric registry and the entry kinds from
    harness.core.registries.ENTRY_KINDS."""
    from harness.catalogue.metrics import all_specs
    from harness.core.registries import ENTRY_KINDS
    from harness.core.settings import TEAM_ID

    loaded = json.loads(SCHEMA_PATH.read_text())
    loaded["properties"]["id"]["pattern"] = TEAM_ID.pattern  # the one team-id rule (params, new-team, folders)
    loaded["$defs"]["metric_name"]["enum"] = list(all_specs())
    loaded["properties"]["entry"]["properties"]["kind"]["enum"] = list(ENTRY_KINDS)
    return loaded


@functools.lru_cache(maxsize=1)
def validator():
    from jsonschema import Draft202012Validator  # on first validation: not on every command's start

    return Draft202012Validator(schema())


class Manifest:
    """A validated team manifest and the folder it lives in."""

    def __init__(self, path: Path, data: dict, raw: bytes, defaults: dict | None = None):
        self.path = Path(path)
        self.data = data
        self.raw = raw
        self.defaults = defaults or {}  # what the challenge added (resolve): part of the hash

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def entry(self) -> dict:
        return self.data["entry"]

    @property
    def runtime(self) -> dict:
        return self.data["runtime"]

    @property
    def determinism(self) -> dict:
        return self.data["determinism"]

    @property
    def weights(self) -> list[dict]:
        return self.data.get("weights", [])

    @property
    def runnable(self) -> bool:
        return bool(self.data["status"]["runnable"])

    @property
    def nondeterministic(self) -> bool:
        return self.determinism["class"] == "nondeterministic"

    @property
    def repeats(self) -> int:
        return int(self.determinism.get("repeats", 1))

    @property
    def seed(self) -> int | None:
        return self.determinism.get("seed")

    def published(self, dataset: str) -> dict | None:
        return self.data.get("published", {}).get(dataset)

    @property
    def container(self) -> dict | None:
        return self.data.get("container")

    @property
    def hash(self) -> str:
        """Of the file, and of what its challenge added to it (harness.catalogue.manifests.resolve)."""
        applied = b"\0" + json.dumps(self.defaults, sort_keys=True).encode() if self.defaults else b""
        return hashlib.sha256(self.raw + applied).hexdigest()

    def limited(self, timeout_s: float | None = None, memory_gb: float | None = None) -> Manifest:
        """The same team with its runs capped at `timeout_s` and `memory_gb` (where they are lower than its
        own); the file on disk is not touched."""
        runtime = dict(self.runtime)
        if timeout_s:
            runtime["timeout_s"] = min(runtime.get("timeout_s", timeout_s), timeout_s)
        if memory_gb:
            runtime["memory_gb"] = min(runtime.get("memory_gb", memory_gb), memory_gb)
        return Manifest(self.path, {**self.data, "runtime": runtime}, self.raw, self.defaults)

    @functools.cached_property
    def run_key(self) -> str:
        """Changes exactly when a run could produce other outputs: run fields and team-folder files."""
        run_fields = {k: v for k, v in self.data.items() if k not in NON_RUN_FIELDS}
        run_fields["determinism"] = {k: v for k, v in self.determinism.items() if k not in DETERMINISM_EVIDENCE}
        digest = hashlib.sha256(json.dumps(run_fields, sort_keys=True).encode())
        for file in sorted(p for p in self.dir.rglob("*") if p.is_file() and p != self.path
                           and "__pycache__" not in p.parts):
            digest.update(str(file.relative_to(self.dir)).encode() + b"\0" + file.read_bytes())
        return digest.hexdigest()


PLACEHOLDER = re.compile(r"<replace:[^>]*>")  # what the template marks for its author to fill in


def defaults_for(challenge_id) -> dict:
    """What a challenge adds to each of its manifests: its `manifest_defaults`, and for a `code` block
    that names no repository, the organizers' repository and commit (where the team code was released)."""
    from harness.catalogue import challenges

    known = challenges.catalogue().get(challenge_id) if isinstance(challenge_id, str) else None
    if known is None:
        return {}
    defaults = dict(known.data.get("manifest_defaults", {}))
    organizers = known.data.get("organizers")
    if organizers:
        defaults["code"] = {"repository": organizers["repository"], "commit": organizers["commit"],
                            **defaults.get("code", {})}
    return defaults


def resolve(data: dict) -> dict:
    """The manifest as its challenge completes it: every default under the manifest's own values (mappings
    merged key by key, anything else replaced); a code block with its own repository keeps its own commit."""
    return _resolved(data, applicable_defaults(data))


def applicable_defaults(data: dict) -> dict:
    defaults = defaults_for(data.get("challenge"))
    if "code" not in data or "repository" in (data.get("code") or {}):
        defaults = {k: v for k, v in defaults.items() if k != "code"}
    return defaults


def _resolved(data: dict, defaults: dict) -> dict:
    merged = _merged(defaults, data)
    order = field_order()
    return {k: merged[k] for k in sorted(merged, key=lambda k: order.index(k) if k in order else len(order))}


def _merged(under: dict, over: dict) -> dict:
    """`over`'s keys in its order, then those only `under` has."""
    out = {}
    for key, value in over.items():
        below = under.get(key)
        out[key] = _merged(below, value) if isinstance(value, dict) and isinstance(below, dict) else value
    for key, value in under.items():
        out.setdefault(key, value)
    return out


def load(path: Path, display: str | None = None) -> Manifest:
    """Load and validate one manifest, completed by its challenge's defaults (resolve); raise ManifestError
    listing every problem."""
    path = Path(path)
    shown = display or str(path)
    raw, data = safe_yaml.read_mapping(path, shown, "a manifest")
    placeholders = placeholder_problems(data, shown)
    if placeholders:  # a template is not a manifest: say what is left to fill in, before any other rule
        raise ManifestError(placeholders)
    if isinstance(data.get("challenge"), str):  # an unknown challenge is the problem, not the defaults it lacks
        unknown = _challenge_problems({**data, "tracks": [], "published": {}}, shown)
        if unknown and unknown[0].rule == "known-challenge":
            raise ManifestError(unknown)
    defaults = applicable_defaults(data)
    data = _resolved(data, defaults)
    problems = schema_problems(data, shown)
    if not problems:
        problems = semantic_problems(data, path, shown)
    if problems:
        raise ManifestError(problems)
    return Manifest(path, data, raw, defaults)


def placeholder_problems(data, shown: str, where: tuple = ()) -> list[ManifestProblem]:
    """Every value the template left as '<replace: ...>'."""
    if isinstance(data, dict):
        return [p for key, value in data.items() for p in placeholder_problems(value, shown, where + (key,))]
    if isinstance(data, list):
        return [p for index, value in enumerate(data) for p in placeholder_problems(value, shown, where + (index,))]
    if isinstance(data, str) and PLACEHOLDER.search(data):
        return [ManifestProblem(shown, _field(list(where)), f"still a placeholder: {data}", "no-placeholder",
                                "replace it with the real value (the template's text says what goes there)")]
    return []


def _paths(data: dict) -> list[tuple[str, str]]:
    """Every path a manifest gives, with its field: each must stay inside the folder it is relative to."""
    entry = data.get("entry", {})
    found = [("entry.module", entry.get("module")), ("code.path", data.get("code", {}).get("path"))]
    found += [(f"entry.working_dir_links.{link}", link) for link in entry.get("working_dir_links", {})]
    for index, spec in enumerate(data.get("weights", [])):
        found.append((f"weights[{index}].name", spec.get("name")))
        if spec.get("source", {}).get("kind") in ("local", "code"):
            found.append((f"weights[{index}].source.path", spec["source"].get("path")))
    return [(field, value) for field, value in found if isinstance(value, str)]


def _confined(value: str) -> bool:
    from pathlib import PurePosixPath

    path = PurePosixPath(value.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts and not value.startswith("~")


def _field(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _show(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def schema_problems(data: dict, shown: str) -> list[ManifestProblem]:
    problems = []
    for error in sorted(validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        problems.extend(_explain(error, shown))
    # One problem per (field, rule); if/then branches can repeat an error.
    unique: dict[tuple[str, str, str], ManifestProblem] = {}
    for p in problems:
        unique.setdefault((p.field, p.rule, p.message), p)
    return list(unique.values())


def _explain(error, shown: str) -> list[ManifestProblem]:
    if error.validator in ("anyOf", "oneOf", "allOf") and error.context:
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        return _explain(deepest, shown)
    path = list(error.absolute_path)
    field = _field(path)
    rule = error.validator
    if rule == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        out = []
        for key in error.instance:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed here: {', '.join(allowed)}"
            out.append(ManifestProblem(shown, _field(path + [key]), f"unknown field '{key}'",
                                       "additionalProperties", hint))
        return out
    if rule == "required":
        out = []
        for key in error.validator_value:
            if isinstance(error.instance, dict) and key not in error.instance:
                desc = _describe(path + [key])
                out.append(ManifestProblem(shown, _field(path + [key]), "missing required field",
                                           "required", desc))
        return out
    if rule == "propertyNames":
        return [ManifestProblem(shown, field, error.message, rule)]
    if rule == "enum":
        options = ", ".join(map(str, error.validator_value))
        close = difflib.get_close_matches(str(error.instance), [str(v) for v in error.validator_value], n=1)
        suggestion = f"did you mean '{close[0]}'?" if close else None
        return [ManifestProblem(shown, field, f"{_show(error.instance)} is not one of: {options}", rule,
                                suggestion)]
    if rule == "type":
        return [ManifestProblem(shown, field, f"{_show(error.instance)} is not of type "
                                f"{error.validator_value}", rule)]
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[rule]
        return [ManifestProblem(shown, field, f"{_show(error.instance)} is not {op} "
                                f"{error.validator_value}", rule)]
    if rule == "const":
        return [ManifestProblem(shown, field, f"{_show(error.instance)} must be "
                                f"{_show(error.validator_value)}", rule)]
    if rule == "pattern":
        return [ManifestProblem(shown, field, f"{_show(error.instance)} does not match "
                                f"{error.validator_value}", rule, _describe(path))]
    return [ManifestProblem(shown, field, error.message, rule)]


def _describe(path) -> str | None:
    """The schema description of a field, shown as a hint."""
    node = schema()
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            props = node.get("properties", {})
            if part in props:
                node = props[part]
            elif isinstance(node.get("additionalProperties"), dict):
                node = node["additionalProperties"]
            else:
                return None
        while "$ref" in node:
            node = schema()["$defs"][node["$ref"].split("/")[-1]]
    desc = node.get("description")
    return f"{desc}" if desc else None


def semantic_problems(data: dict, path: Path, shown: str) -> list[ManifestProblem]:
    """What the schema cannot see: the folder, the challenge, paths, weights, entry, recipe, published values."""
    problems = []

    def problem(field, message, rule, hint=None):
        problems.append(ManifestProblem(shown, field, message, rule, hint))

    if path.name == MANIFEST_NAME and path.parent.name != data["id"]:
        problem("id", f"'{data['id']}' differs from the folder name '{path.parent.name}'", "id-is-folder",
                f"rename the folder or set id: {path.parent.name}")
    problems += _challenge_problems(data, shown)
    for field, value in _paths(data):
        if not _confined(value):
            problem(field, f"'{value}' leaves the folder it belongs to (absolute, or climbs with '..')",
                    "path-confined", "give a path relative to, and inside, its folder")
    names = [w["name"] for w in data.get("weights", [])]
    for name in {n for n in names if names.count(n) > 1}:
        problem("weights", f"file name '{name}' is listed twice", "unique-weight-names")
    _entry_problems(data, path, names, problem)
    containers = recipes_dir(path)
    if data.get("container", {}).get("recipe") and containers:  # images carry no containers/
        problems.extend(recipe_problems(data["container"], containers, shown))
    for dataset, published in data.get("published", {}).items():
        _published_problems(dataset, published, data["challenge"], problem)
    return problems


def _entry_problems(data: dict, path: Path, names: list[str], problem) -> None:
    """The entry point names files that exist and weights that are declared."""
    entry = data["entry"]
    if entry["kind"] == "spandrel" and entry["weights"] not in names:
        close = difflib.get_close_matches(entry["weights"], names, n=1)
        problem("entry.weights", f"'{entry['weights']}' is not one of weights[].name", "weights-declared",
                f"did you mean '{close[0]}'?" if close else "declare the file under weights:")
    if entry["kind"] == "ntire-main":
        if entry.get("code_root", "team") == "team" and not (path.parent / entry["module"]).is_file():
            problem("entry.module", f"'{entry['module']}' does not exist in {path.parent.name}/", "module-exists")
        if entry.get("code_root") == "code" and "code" not in data:
            problem("entry.code_root", "'code' needs the code: section (repository, commit, path)", "code-declared")
        shape = entry.get("model_dir", "folder")
        if shape == "file" and len(names) != 1:
            problem("entry.model_dir", f"'file' needs exactly one weights file, found {len(names)}",
                    "single-weights-file")
        named = [(f"entry.model_dir.{k}", shape[k]) for k in ("file", "only_file_in")
                 if isinstance(shape, dict) and k in shape]
        if isinstance(shape, dict) and "keys" in shape:
            named += [(f"entry.model_dir.keys.{key}", name) for key, name in shape["keys"].items()]
        named += [(f"entry.working_dir_links.{link}", target)
                  for link, target in entry.get("working_dir_links", {}).items()]
        for field, name in named:
            if name not in names:
                problem(field, f"'{name}' is not one of weights[].name", "weights-declared")
    if entry["kind"] == "none" and data["status"]["runnable"]:
        problem("entry.kind", "an entry without code cannot be runnable", "none-is-not-runnable",
                "set status.runnable: false with the reasons")


def _published_problems(dataset: str, published: dict, challenge_id: str, problem) -> None:
    """A known dataset; each value with its decimals and no more; each score recomputing from its terms."""
    from harness.catalogue import datasets as datasets
    from harness.catalogue import metrics

    base = f"published.{dataset}"
    known = datasets.all_datasets()
    if dataset not in known:
        close = difflib.get_close_matches(dataset, list(known), n=1)
        problem(base, f"unknown dataset '{dataset}'", "known-dataset",
                f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}")
    values, precision = published["values"], published["precision"]
    for name in values:
        if name not in precision:
            problem(f"{base}.precision.{name}", "missing: every published value needs its decimals",
                    "precision-for-each-value")
        elif _decimals_exceed(values[name], precision[name]):
            problem(f"{base}.values.{name}", f"{values[name]} has more than {precision[name]} decimals",
                    "value-matches-precision", "a mistyped digit, or the precision is wrong")
    for name in precision:
        if name not in values:
            problem(f"{base}.precision.{name}", "precision given for a value that is not published",
                    "precision-for-each-value")
    for name in published.get("tolerance", {}):
        if name not in metrics.all_specs():
            problem(f"{base}.tolerance.{name}", f"unknown metric '{name}'", "known-metric")
    for score in _challenge_scores(challenge_id):
        inconsistency = score.inconsistency(values, precision)
        if inconsistency:
            problem(f"{base}.values.{score.name}", inconsistency, "score-recomputes",
                    "one of the components or the score is mistyped")


def recipes_dir(manifest_path: Path) -> Path | None:
    """containers/ of the checkout a manifest at teams/<id>/manifest.yaml belongs to, else that of the
    checkout the package runs from; None where neither has one (inside an image)."""
    for checkout in (Path(manifest_path).resolve().parent.parent.parent, PACKAGE_DIR.parent):
        if (checkout / "containers").is_dir():
            return checkout / "containers"
    return None


def dockerfile_args(dockerfile: Path) -> dict[str, str | None]:
    """ARG names declared in a Dockerfile, with their defaults."""
    args = {}
    for line in dockerfile.read_text().splitlines():
        words = line.strip().split(None, 1)
        if len(words) == 2 and words[0].upper() == "ARG":
            name, _, default = words[1].partition("=")
            args[name.strip()] = default.strip() or None
    return args


def recipe_problems(container: dict, containers: Path, shown: str) -> list[ManifestProblem]:
    problems = []
    recipe = container["recipe"]
    dockerfile = containers / recipe / "Dockerfile"
    if not dockerfile.is_file():
        known = sorted(p.parent.name for p in containers.glob("*/Dockerfile"))
        close = difflib.get_close_matches(recipe, known, n=1)
        return [ManifestProblem(shown, "container.recipe", f"no recipe containers/{recipe}/Dockerfile", "recipe-exists",
                                f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}")]
    declared = dockerfile_args(dockerfile)
    for name in container.get("build_args", {}):
        if name not in declared:
            problems.append(ManifestProblem(shown, f"container.build_args.{name}",
                                            f"containers/{recipe}/Dockerfile declares no ARG {name}", "arg-declared",
                                            f"declared: {', '.join(declared)}"))
    return problems


def _decimals_exceed(value: float, decimals: int) -> bool:
    return abs(round(value, decimals) - value) > 1e-9


def _challenge_problems(data: dict, shown: str) -> list[ManifestProblem]:
    """The challenge exists, and the manifest's tracks and ranks are the challenge's."""
    from harness.catalogue import challenges

    known = challenges.catalogue()
    if data["challenge"] not in known:
        close = difflib.get_close_matches(data["challenge"], list(known), n=1)
        return [ManifestProblem(shown, "challenge", f"unknown challenge '{data['challenge']}'", "known-challenge",
                                f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)} "
                                "(challenges/<id>.yaml)")]
    tracks = known[data["challenge"]].tracks
    problems = []
    for name in data.get("tracks", []):
        if name not in [t.name for t in tracks]:
            problems.append(ManifestProblem(shown, "tracks", f"'{name}' is not a track of {data['challenge']}",
                                            "known-track", f"tracks: {', '.join(t.name for t in tracks)}"))
    for dataset, entry_pub in data.get("published", {}).items():
        for track_id in entry_pub.get("ranks", {}):
            if track_id not in [t.id for t in tracks]:
                problems.append(ManifestProblem(shown, f"published.{dataset}.ranks.{track_id}",
                                                f"'{track_id}' is not a track id of {data['challenge']}",
                                                "known-track", f"ids: {', '.join(t.id for t in tracks)}"))
    return problems


def _challenge_scores(challenge_id: str) -> list:
    from harness.catalogue import challenges

    known = challenges.catalogue().get(challenge_id)
    return list(known.scores.values()) if known else []


def render_template(template: Path, team_id: str) -> str:
    return template.read_text().replace("{{id}}", team_id)
