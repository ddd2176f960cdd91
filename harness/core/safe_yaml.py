"""YAML from people the harness does not trust: bounded in size, nesting and aliases before it is built,
and with every key of a mapping given once.

PyYAML's safe loader already refuses tags that run code; what it does not refuse is a small file that
expands into an enormous document (aliases of aliases), nests deep enough to exhaust recursion, or gives
a key twice (the last one silently winning).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.core.errors import ManifestError, ManifestProblem

MAX_BYTES = 1 << 20  # a manifest is a few kB
MAX_DEPTH = 40
MAX_ALIASES = 20  # a manifest needs none; 20 bound any expansion to a few thousand nodes


class TooLarge(yaml.YAMLError):
    def __init__(self, problem: str, mark=None):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key, first, mark):
        super().__init__(f"the key '{key}' is given twice (first at line {first.line + 1})")
        self.problem = str(self)
        self.problem_mark = mark


class BoundedLoader(yaml.SafeLoader):
    """Counts aliases and nesting while composing, before any object is constructed."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise TooLarge(f"more than {MAX_ALIASES} aliases (*name references)", self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise TooLarge(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base constructor says so
                break
            if first is not None:
                raise DuplicateKey(key, first, key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def load(raw: bytes | str):
    """The document, or yaml.YAMLError (TooLarge for a file past the limits)."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_BYTES:
        raise TooLarge(f"{size} bytes, more than the {MAX_BYTES} a document may have")
    return yaml.load(raw, Loader=BoundedLoader)


def read_mapping(path: Path, shown: str, what: str) -> tuple[bytes, dict]:
    """The bytes of a YAML file and the mapping they hold, read within yamlsafe's limits."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError([ManifestProblem(shown, "", "file not found", "exists")]) from None
    try:
        data = load(raw)
    except TooLarge as exc:
        raise ManifestError([ManifestProblem(shown, "", f"refused before it was read: {exc.problem}",
                                             "yaml-limits")]) from None
    except DuplicateKey as exc:
        mark = exc.problem_mark
        fix = "give each key once: the second would silently replace the first"
        raise ManifestError([ManifestProblem(shown, "", f"line {mark.line + 1}: {exc.problem}", "no-duplicate-keys",
                                             fix)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ManifestError([ManifestProblem(shown, "", f"not valid YAML at {where}: "
                                             f"{getattr(exc, 'problem', exc)}", "yaml")]) from None
    if not isinstance(data, dict):
        raise ManifestError([ManifestProblem(shown, "", f"{what} must be a mapping of fields", "type")])
    return raw, data
