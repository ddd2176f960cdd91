"""Stand-in metric weights and the checks on learned-metric files, without building a network: a marked cache
is refused by fetch, verify and audit and labels what it scores; a file with other bytes or other keys is
refused by name before pyiqa loads it."""

import json
from pathlib import Path

import pytest
import torch
from verdicts import evaluation, published, run, team

from harness.audit import workflow
from harness.catalogue import audit_params, datasets
from harness.catalogue import metrics as M
from harness.core.project import Project
from harness.core.records import Evaluation
from harness.fetch import metric_keys, metric_pins, metric_weights, stand_in_files, stand_ins
from harness.verdict import rules

LPIPS_FILE = "torch/hub/pyiqa/LPIPS_v0.1_alex-df73285e.pth"
ALEXNET_FILE = "torch/hub/checkpoints/alexnet-owt-7be5be79.pth"


def marked_cache(folder: Path, files: dict[str, dict]) -> Path:
    """A stand-in cache holding the given state dicts, its marker recording their digests."""
    folder.mkdir(parents=True, exist_ok=True)
    digests = {}
    for rel, tensors in files.items():
        stand_in_files.save_torch(folder / rel, tensors)
        digests[rel] = metric_pins.digest_of(folder / rel)
    (folder / stand_ins.MARKER).write_text(json.dumps({"schema": stand_ins.SCHEMA, "files": digests}))
    return folder


def test_the_builder_refuses_a_folder_that_may_hold_real_weights(tmp_path):
    (tmp_path / "checksums.json").write_text("{}")
    with pytest.raises(stand_ins.StandInRefused, match="not a stand-in cache"):
        stand_in_files.build(tmp_path, tmp_path / "downloads")
    assert not (tmp_path / stand_ins.MARKER).exists()


def test_seeds_come_from_file_names_alone():
    assert stand_ins.seed_of("torch/hub/clip/RN50.pt") == stand_ins.seed_of("elsewhere/RN50.pt")
    assert stand_ins.seed_of(LPIPS_FILE) != stand_ins.seed_of(ALEXNET_FILE)


def test_fetch_never_pins_into_a_stand_in_cache(tmp_path):
    cache = marked_cache(tmp_path, {})
    with pytest.raises(stand_ins.StandInRefused, match="stand-in cache"):
        metric_weights.fetch(["lpips"], cache, tmp_path / "downloads")
    assert not (cache / metric_weights.CHECKSUMS).exists()


def test_verify_refuses_an_evaluation_made_with_stand_ins():
    made = evaluation(run(lpips=0.1))
    made.stand_in = True
    result = rules.judge(team(published=published({"lpips": 0.1}, {"lpips": 4})), "mini", made)
    assert result["verdict"] == "failed" and result["failure"]["kind"] == "stand_in_weights"
    marked_run = evaluation({**run(lpips=0.1), "stand_in": True})
    assert rules.judge(team(published=published({"lpips": 0.1}, {"lpips": 4})), "mini",
                         marked_run)["failure"]["kind"] == "stand_in_weights"


def test_records_say_stand_in_only_when_it_is():
    assert "stand_in" not in Evaluation("faithful", ["lpips"]).as_dict()
    assert Evaluation("faithful", ["lpips"], stand_in=True).as_dict()["stand_in"] is True
    assert "stand_in" not in evaluation().as_dict()


def test_audit_with_a_stand_in_cache_refuses_to_compare(project, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_METRIC_WEIGHTS", str(marked_cache(tmp_path / "cache", {})))
    proj = Project(project)
    rows = workflow.audit(proj, ["bicubic"], datasets.get("mini"), audit_params.read(proj).given(runner="local"))
    assert rows[0]["verdict"] == "failed" and rows[0]["failure"]["kind"] == "stand_in_weights"
    assert "stand-in weights" in rows[0]["failure"]["message"]


def test_a_file_whose_digest_is_not_the_pinned_one_is_refused_by_name(tmp_path):
    stand_in_files.save_torch(tmp_path / LPIPS_FILE, {"x": torch.zeros(1)})  # its sha256 cannot start with df73285e
    with pytest.raises(metric_pins.WrongWeightFile, match=f"lpips: {LPIPS_FILE}: sha256 .* is not df73285e"):
        metric_pins.check_digests("lpips", tmp_path)
    stand_in_files.save_torch(tmp_path / "torch/hub/clip/RN50.pt", {"x": torch.zeros(1)})
    with pytest.raises(metric_pins.WrongWeightFile, match=f"RN50.pt: sha256 .* is not {metric_pins.CLIP_RN50_SHA256}"):
        metric_pins.check_digests("clipiqa", tmp_path)


def test_a_stand_in_file_changed_after_its_build_is_refused(tmp_path):
    cache = marked_cache(tmp_path, {LPIPS_FILE: {"lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}})
    stand_in_files.save_torch(cache / LPIPS_FILE, {"lin0.model.1.weight": torch.ones(1, 64, 1, 1)})
    with pytest.raises(metric_pins.WrongWeightFile, match="as the stand-in builder recorded"):
        metric_pins.check_digests("lpips", cache)


def test_a_file_with_wrong_keys_is_refused_naming_the_file_and_the_keys(tmp_path):
    wrong = {f"lin{i}.weight": torch.zeros(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
    cache = marked_cache(tmp_path, {LPIPS_FILE: wrong, ALEXNET_FILE: {"features.0.weight": torch.zeros(64, 3, 11, 11)}})
    with pytest.raises(metric_pins.WrongWeightFile) as caught:
        metric_pins.check("lpips", cache)
    assert caught.value.path == LPIPS_FILE and caught.value.kind == "wrong_metric_weights"
    assert "missing keys: lin0.model.1.weight" in caught.value.message
    assert "unexpected keys: lin0.weight" in caught.value.message


def test_other_shapes_are_refused_too(tmp_path):
    file = tmp_path / "dists.pth"
    stand_in_files.save_torch(file, {"alpha": torch.zeros(1, 1475, 1, 1), "beta": torch.zeros(1, 1474, 1, 1)})
    with pytest.raises(metric_pins.WrongWeightFile, match="other shapes: beta"):
        metric_keys.check("dists", "torch/hub/pyiqa/DISTS_weights-f5e65c96.pth", file)


def test_the_expected_keys_come_from_the_networks_themselves():
    assert len(metric_keys.expected_shapes(ALEXNET_FILE)) == 16
    assert len(metric_keys.expected_shapes("torch/hub/checkpoints/vgg16-397923af.pth")) == 32
    assert len(metric_keys.expected_shapes("torch/hub/pyiqa/musiq_koniq_ckpt-e95806b9.pth")) == 248


def test_every_learned_weight_file_has_a_pin_or_is_named_trust_on_first_use():
    for spec in M.METRICS.values():
        for weight in spec.weight_files:
            assert metric_pins.expected_digest(weight.path, Path("/nonexistent")) is not None \
                or weight.path in metric_pins.TRUST_ON_FIRST_USE, weight.path


def test_the_plan_of_a_verification_with_a_stand_in_cache_is_blocked(project, tmp_path, monkeypatch):
    from harness.audit import plan
    from harness.catalogue import roster

    monkeypatch.setenv("HARNESS_METRIC_WEIGHTS", str(marked_cache(tmp_path / "cache", {})))
    proj = Project(project)
    findings = plan.make(proj, roster.load(proj, "bicubic"), datasets.get("mini"), audit_params.read(proj))
    (blocked,) = [f for f in plan.blocking(findings) if f.check == "metric weights"]
    assert "stand-in weights" in blocked.detail


def test_lpips_layers_saved_under_both_names_the_network_gives_them_are_accepted(tmp_path):
    both = {}
    for i, c in enumerate((64, 192, 384, 256, 256)):
        both[f"lin{i}.model.1.weight"] = both[f"lins.{i}.model.1.weight"] = torch.zeros(1, c, 1, 1)
    file = tmp_path / "lpips.pth"
    stand_in_files.save_torch(file, both)
    metric_keys.check("lpips", LPIPS_FILE, file)  # no error


def test_evaluating_a_team_into_the_project_with_stand_ins_is_refused(project, tmp_path, monkeypatch):
    from harness.catalogue import roster

    monkeypatch.setenv("HARNESS_METRIC_WEIGHTS", str(marked_cache(tmp_path / "cache", {})))
    proj = Project(project)
    with pytest.raises(stand_ins.StandInRefused, match="never compared with published ones"):
        workflow.evaluate_team(proj, roster.load(proj, "bicubic"), datasets.get("mini"), audit_params.read(proj))
    assert not proj.evaluation_file("mini", "bicubic").exists()


def test_the_clip_digest_hook_acts_for_a_marked_cache_only(tmp_path, monkeypatch):
    with stand_ins.quiet_imports():
        from pyiqa.archs import clip_model
    monkeypatch.setitem(clip_model._MODELS, "RN50", clip_model._MODELS["RN50"])  # restored after the test
    assert stand_ins.allow_stand_in_clip(tmp_path) is False
    assert metric_pins.CLIP_RN50_SHA256 in clip_model._MODELS["RN50"]
    cache = marked_cache(tmp_path / "cache", {stand_ins.CLIP_RN50: {"x": torch.zeros(1)}})
    assert stand_ins.allow_stand_in_clip(cache) is True
    url = clip_model._MODELS["RN50"]
    assert url.split("/")[-2] == stand_ins.marked_digests(cache)[stand_ins.CLIP_RN50] and url.endswith("/RN50.pt")
