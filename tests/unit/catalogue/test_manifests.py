"""Manifests: every shipped one validates; broken copies are refused with file, field and rule."""

import json
import shutil

import pytest
import yaml

from harness.catalogue import manifests as manifest_mod
from harness.core.errors import ManifestError

from conftest import REPO, harness_cli

TEAMS = sorted(p.parent.name for p in (REPO / "teams").glob("*/manifest.yaml") if not p.parent.name.startswith("_"))


@pytest.mark.parametrize("team_id", TEAMS)
def test_shipped_manifests_validate(team_id):
    team = manifest_mod.load(REPO / "teams" / team_id / "manifest.yaml")
    assert team.id == team_id


def broken_copy(project, team_id, edit):
    path = project / "teams" / team_id / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems_of(path):
    with pytest.raises(ManifestError) as caught:
        manifest_mod.load(path, display=str(path))
    return caught.value.problems


def test_typo_is_named_with_a_suggestion(project):
    path = broken_copy(project, "bicubic", lambda d: d["runtime"].update(timout_s=5))
    [problem] = problems_of(path)
    assert (problem.field, problem.rule) == ("runtime.timout_s", "additionalProperties")
    assert problem.hint == "did you mean 'timeout_s'?"
    assert str(path) in str(problem)


def test_wrong_type_and_bound(project):
    def edit(d):
        d["runtime"]["timeout_s"] = -5
        d["determinism"]["repeats"] = "three"

    problems = {p.field: p for p in problems_of(broken_copy(project, "bicubic", edit))}
    assert problems["runtime.timeout_s"].rule == "minimum"
    assert "-5 is not >= 1" in problems["runtime.timeout_s"].message
    assert problems["determinism.repeats"].rule == "type"


def test_missing_field_is_named(project):
    [problem] = problems_of(broken_copy(project, "bicubic", lambda d: d.pop("status")))
    assert (problem.field, problem.rule) == ("status", "required")
    assert problem.hint  # the field's description from the schema


def test_entry_kind_specific_fields(project):
    problems = problems_of(broken_copy(project, "realesrgan-x4plus", lambda d: d["entry"].update(tiel=256)))
    assert [(p.field, p.hint) for p in problems] == [("entry.tiel", "did you mean 'tile'?")]


def test_semantic_rules(project):
    def edit(d):
        d["id"] = "someone-else"
        d["entry"]["weights"] = "realesrgan-x4plus.pt"
        d["published"]["mini"]["values"]["psnr"] = 27.641
        d["published"]["mni"] = d["published"]["mini"]

    rules = {p.rule: p for p in problems_of(broken_copy(project, "realesrgan-x4plus", edit))}
    assert set(rules) == {"id-is-folder", "weights-declared", "value-matches-precision", "known-dataset"}
    assert rules["weights-declared"].hint == "did you mean 'realesrgan-x4plus.pth'?"
    assert rules["known-dataset"].hint == "did you mean 'mini'?"


def test_nondeterministic_needs_repeats(project):
    [problem] = problems_of(broken_copy(project, "random-tta", lambda d: d["determinism"].update(repeats=1)))
    assert (problem.field, problem.rule) == ("determinism.repeats", "minimum")


def test_not_runnable_needs_reasons(project):
    [problem] = problems_of(broken_copy(project, "bicubic", lambda d: d["status"].update(runnable=False)))
    assert (problem.field, problem.rule) == ("status.reasons", "required")


def test_mistyped_score_is_caught(project):
    def edit(d):
        d["published"]["mini"]["values"].update(lpips=0.2, dists=0.1, clipiqa=0.5, maniqa=0.4, musiq=60.0,
                                                niqe=4.0, perceptual_score=3.8123)
        d["published"]["mini"]["precision"].update(lpips=4, dists=4, clipiqa=4, maniqa=4, musiq=4,
                                                   perceptual_score=4)

    [problem] = problems_of(broken_copy(project, "bicubic", edit))
    assert problem.rule == "score-recomputes" and "3.8000" in problem.message


def test_invalid_yaml_names_the_line(project):
    path = project / "teams" / "bicubic" / "manifest.yaml"
    path.write_text("schema_version: 1\nid: [unclosed\n")
    [problem] = problems_of(path)
    assert problem.rule == "yaml" and "line" in problem.message


def alias_bomb(levels=12) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, expected", [
    (alias_bomb(), "more than 20 aliases"),
    ("id: " + "[" * 3000 + "]" * 3000 + "\n", "nested deeper than 40 levels"),
    ("id: " + "x" * (1 << 20) + "\n", "more than the 1048576"),
], ids=["alias-bomb", "deep-nesting", "oversized"])
def test_hostile_yaml_is_refused_at_once(project, text, expected):
    import time

    path = project / "teams" / "bicubic" / "manifest.yaml"
    path.write_text(text)
    started = time.perf_counter()
    [problem] = problems_of(path)
    assert expected in problem.message and problem.rule in ("yaml", "yaml-limits")
    assert time.perf_counter() - started < 5  # a refusal, not an expansion (generous bound: shared CI)
    done = harness_cli("validate", "bicubic", cwd=project)
    assert done.returncode == 1 and expected in done.stdout + done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["weights"].append({"name": "../../outside.pth", "source": {"kind": "local", "path": "x.pth"}}),
     "weights[1].name"),
    (lambda d: d["weights"].append({"name": "w.pth", "source": {"kind": "local", "path": "/etc/passwd"}}),
     "weights[1].source.path"),
    (lambda d: d["entry"].update(module="../../../harness/cli.py"), "entry.module"),
    (lambda d: d["entry"].update(working_dir_links={"../escape": "team00_dat.pth"}),
     "entry.working_dir_links.../escape"),
], ids=["weights-name", "local-weights-path", "module", "working-dir-link"])
def test_every_manifest_path_is_confined(project, edit, field):
    path = broken_copy(project, "dat-baseline", edit)
    found = {p.field: p.rule for p in problems_of(path)}
    assert found.get(field) in ("path-confined", "pattern"), found  # the schema may refuse it first


def test_every_schema_field_has_a_description():
    schema = json.loads((REPO / "schemas" / "manifest.schema.json").read_text())
    missing = []

    def walk(node, where, declared=()):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if name in declared:  # a conditional constraint on a field described above
                    continue
                if isinstance(sub, dict) and "description" not in sub and "$ref" not in sub:
                    missing.append(f"{where}.{name}")
                walk(sub, f"{where}.{name}")
            for key in ("items", "additionalProperties"):
                if isinstance(node.get(key), dict):
                    walk(node[key], where)
            own = tuple(node.get("properties", {}))
            branches = [node] + node.get("allOf", [])
            for sub in [b["then"] for b in branches if isinstance(b.get("then"), dict)]:
                walk(sub, where, own)
            for name, sub in node.get("$defs", {}).items():
                walk(sub, name)

    walk(schema, "")
    assert missing == [], missing


def test_run_key_ignores_published_numbers_but_not_the_team_code(project):
    path = project / "teams" / "random-tta" / "manifest.yaml"
    before = manifest_mod.load(path)
    broken_copy(project, "random-tta", lambda d: d["published"]["mini"]["values"].update(psnr=1.0))
    after = manifest_mod.load(path)
    assert before.run_key == after.run_key and before.hash != after.hash
    (project / "teams" / "random-tta" / "model.py").write_text("# changed\n", encoding="utf-8")
    assert manifest_mod.load(path).run_key != before.run_key


# --- through the CLI -------------------------------------------------------------------------

def test_validate_cli_exits_1_and_names_the_problem(project):
    broken_copy(project, "bicubic", lambda d: d["runtime"].update(scale=2))
    done = harness_cli("validate", cwd=project)
    assert done.returncode == 1
    assert "teams/bicubic/manifest.yaml: runtime.scale: 2 must be 4 (rule: const)" in done.stdout
    assert f"{len(TEAMS) - 1} valid, 1 invalid" in done.stdout
    assert harness_cli("validate", "realesrgan-x4plus", cwd=project).returncode == 0


def test_validate_unknown_team_suggests(project):
    done = harness_cli("validate", "bicubc", cwd=project)
    assert done.returncode == 2 and "did you mean 'bicubic'" in done.stderr


def test_new_team_scaffolds_a_template_that_validates_once_filled_in(project):
    done = harness_cli("new-team", "my-team", cwd=project)
    assert done.returncode == 0, done.stderr
    path = project / "teams" / "my-team" / "manifest.yaml"
    assert "id: my-team" in path.read_text()
    unfilled = harness_cli("validate", "my-team", cwd=project)
    assert unfilled.returncode == 1
    for field in ("name", "description", "published.ntire2025-test.values.psnr",
                  "published.ntire2025-test.source.citation", "weights[0].source.path"):
        assert f"{field}: still a placeholder: <replace:" in unfilled.stdout, field
    assert "is not of type" not in unfilled.stdout  # the placeholder is named, not a type error at the same field
    text = path.read_text()
    for placeholder, value in (("the team's name", '"My Team"'), ("one or two sentences", '"A SwinIR variant."'),
                               ("PSNR (dB) as published", "30.12"),
                               ("where the numbers come from", '"table at abc123"'),
                               ("the weights file's path", '"teams/my-team/model.pth"')):
        start = text.index('"<replace: ' + placeholder)
        text = text[:start] + value + text[text.index('>"', start) + 2:]
    path.write_text(text)
    filled = harness_cli("validate", "my-team", cwd=project)
    assert filled.returncode == 0, filled.stdout
    again = harness_cli("new-team", "my-team", cwd=project)
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = harness_cli("new-team", "My Team", cwd=project)
    assert bad.returncode == 2 and "is not a team id" in bad.stderr and "'my-team'" in bad.stderr


@pytest.mark.parametrize("team_id, valid", [("my-team", True), ("team2", True), ("my_team", False),
                                            ("My-Team", False)])
def test_new_team_validate_and_params_agree_on_every_id(project, team_id, valid):
    """One team-id rule: what new-team makes, validate and params.yaml take, and nothing else."""
    import yaml as yaml_mod

    made = harness_cli("new-team", team_id, cwd=project)
    assert (made.returncode == 0) == valid, made.stderr
    folder = project / "teams" / team_id
    if not valid:  # a folder made by hand with that name is named as a problem, and the catalogue still lists
        shutil.copytree(project / "teams" / "bicubic", folder)
        (folder / "manifest.yaml").write_text((folder / "manifest.yaml").read_text().replace("id: bicubic",
                                                                                              f"id: {team_id}"))
        listing = harness_cli("list", cwd=project)
        assert listing.returncode == 1 and "bicubic" in listing.stdout and team_id in listing.stdout + listing.stderr
    rule = "^[a-z0-9][a-z0-9-]*$"  # the one rule, named by each refusal
    checked = harness_cli("validate", team_id, cwd=project)
    assert (rule in checked.stdout + checked.stderr) == (not valid), checked.stdout + checked.stderr
    params = yaml_mod.safe_load((project / "params.yaml").read_text())
    (project / "params.yaml").write_text(yaml_mod.safe_dump({**params, "teams": [team_id]}))
    params_check = harness_cli("validate", "--params", cwd=project)
    assert (rule in params_check.stderr) == (not valid), params_check.stderr


def test_list_json(project):
    done = harness_cli("list", "--json", cwd=project)
    assert done.returncode == 0
    listing = json.loads(done.stdout)
    by_id = {t["id"]: t for t in listing["teams"]}
    assert set(by_id) == set(TEAMS)
    assert by_id["random-tta"]["determinism"] == "nondeterministic"
    assert by_id["bicubic"]["published"]["psnr"] > 20
