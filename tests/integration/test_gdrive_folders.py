"""Google Drive folders through gdown's real folder support (tests/fakedrive.py serves Drive on loopback over
real HTTPS), folders of any size, and weights imported by hand."""

import hashlib
import json
import os
import tarfile

import pytest

from harness.core.errors import ChecksumMismatch, DownloadError, WeightsUnavailable
from harness.fetch import gdrive, team_weights

from conftest import weights_team
from fakedrive import Drive, Served, drive_id

pytestmark = pytest.mark.network
ROOT_ID = drive_id("RootFolder")


@pytest.fixture
def drive(tmp_path, monkeypatch):
    """The organizers' layout: a shared folder, model_zoo/, a sub-folder per team."""
    site = Drive()
    site.folder(ROOT_ID, "NTIRE2025 SR")
    zoo = site.add(ROOT_ID, "model_zoo", folder=True)
    team = site.add(zoo, "team07_Demo", folder=True)
    site.model = site.add(team, "model.pth", os.urandom(2 * 2 ** 20))
    site.add(team, "options.yml", b"scale: 4\n")
    other = site.add(zoo, "team08_Other", folder=True)
    site.other = site.add(other, "other.pth", os.urandom(1000))
    site.zoo = zoo
    site.refuse(drive_id("NoAccess"), 403)
    served = Served(site, tmp_path)
    gdrive._LISTINGS.clear()  # each test's Drive is a new one
    for name, value in served.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HARNESS_GDRIVE_URL", raising=False)
    yield site
    served.close()


def folder_team(tmp_path, folder_id=ROOT_ID, path="model_zoo/team07_Demo"):
    return weights_team(tmp_path, "demo", "Weights in a Drive folder", {
        "name": "team07_Demo", "directory": True,
        "source": {"kind": "gdrive", "id": folder_id, "folder": True, "mirror": "the Baidu mirror",
                   **({"path": path} if path else {})}})


def fetch(team, tmp_path):
    return team_weights.fetch(team, tmp_path / "weights", tmp_path / "downloads", tmp_path)


def test_a_teams_sub_folder_of_a_shared_folder_is_fetched_and_pinned(drive, tmp_path):
    team = folder_team(tmp_path)
    drive.cut_once = {drive.model}
    with pytest.raises(DownloadError):  # the first try is cut half way: nothing is placed
        fetch(team, tmp_path)
    assert not (tmp_path / "weights" / "demo" / "team07_Demo").exists()
    fetched = fetch(team, tmp_path)  # the second resumes the cut file
    assert len(drive.ranges) == 1 and drive.ranges[0] != "bytes=0-"  # gdown writes whole chunks
    target = tmp_path / "weights" / "demo" / "team07_Demo"
    assert fetched == [target]
    assert (target / "model.pth").read_bytes() == drive.files[drive.model]
    assert (target / "options.yml").read_bytes() == b"scale: 4\n"
    assert not (target / "other.pth").exists()  # the other team's folder is listed, never downloaded
    assert not any(drive.other in path for path in drive.downloads())
    assert any(path == f"/embeddedfolderview?id={drive.zoo}" for path in drive.seen)
    assert set(drive.tunnels) == {"drive.google.com:443"}
    pins = json.loads((tmp_path / "weights" / "demo" / "sha256.json").read_text())
    assert pins["team07_Demo/model.pth"] == hashlib.sha256(drive.files[drive.model]).hexdigest()

    (target / "model.pth").write_bytes(b"changed")
    with pytest.raises(ChecksumMismatch, match="team07_Demo/model.pth"):
        fetch(team, tmp_path)


@pytest.mark.parametrize("folder_id, path, expected", [
    (drive_id("NoAccess"), None, "gave no folder listing that can be read"),
    (drive_id("Missing"), None, "gave no folder listing that can be read"),
    (ROOT_ID, "model_zoo/team99_Absent", "holds no file"),
])
def test_a_folder_that_cannot_be_read_is_a_typed_error_naming_it_and_the_manual_route(drive, tmp_path, folder_id,
                                                                                      path, expected):
    team = folder_team(tmp_path, folder_id, path)
    with pytest.raises(DownloadError, match=expected) as caught:
        fetch(team, tmp_path)
    assert folder_id in caught.value.message
    assert "harness weights import demo PATH" in caught.value.hint and "Baidu" in caught.value.hint
    assert not (tmp_path / "weights" / "demo" / "team07_Demo").exists()


def test_published_outputs_come_from_the_teams_sub_folder_only(drive, tmp_path):
    from harness.run.published_outputs import fetch_source

    local = fetch_source(f"gdrive:{ROOT_ID}", tmp_path / "downloads", subfolder="team08_Other")
    files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    assert files == ["team08_Other/other.pth"]
    assert not any(drive.model in path for path in drive.downloads())


def test_a_folder_of_any_size_is_listed_and_fetched_whole(drive, tmp_path):
    """gdown 5 read at most 50 files of a folder; the organizers publish 100 outputs per team."""
    from harness.run.published_outputs import fetch_source

    outputs = drive.add(ROOT_ID, "outputs", folder=True)
    team = drive.add(outputs, "team09_Many", folder=True)
    for index in range(901, 1001):
        drive.add(team, f"{index:04d}x4.png", f"image {index}".encode())
    local = fetch_source(f"gdrive:{ROOT_ID}", tmp_path / "downloads", subfolder="team09_Many")
    files = sorted(p.name for p in (local / "team09_Many").iterdir())
    assert files == [f"{index:04d}x4.png" for index in range(901, 1001)]
    assert (local / "team09_Many" / "0950x4.png").read_bytes() == b"image 950"


def test_an_unreachable_drive_is_one_line_naming_the_host_and_the_manual_route(tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(gdrive, "_LISTINGS", {})  # not the listing an earlier test of this process read
    team = folder_team(tmp_path)
    with pytest.raises(DownloadError) as caught:
        fetch(team, tmp_path)
    assert caught.value.message.startswith("cannot reach drive.google.com") and "\n" not in caught.value.message
    assert "listing Google Drive folder" in caught.value.message
    assert "harness weights import demo PATH" in caught.value.hint


def test_weights_import_checks_names_and_pins(tmp_path):
    team = folder_team(tmp_path)
    downloaded = tmp_path / "baidu" / "model_zoo"
    (downloaded / "team07_Demo").mkdir(parents=True)
    (downloaded / "team07_Demo" / "model.pth").write_bytes(b"weights")
    # the parent folder
    pins = team_weights.import_weights(team, downloaded, tmp_path / "weights", tmp_path / "downloads")
    assert pins == {"team07_Demo/model.pth": hashlib.sha256(b"weights").hexdigest()}
    assert (tmp_path / "weights" / "demo" / "team07_Demo" / "model.pth").read_bytes() == b"weights"

    archive = tmp_path / "team07.tar.gz"  # the team's folder itself, as an archive
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(downloaded / "team07_Demo", arcname="team07_Demo")
    assert team_weights.import_weights(team, archive, tmp_path / "weights", tmp_path / "downloads") == pins
    itself = downloaded / "team07_Demo"
    assert team_weights.import_weights(team, itself, tmp_path / "weights", tmp_path / "downloads") == pins

    (downloaded / "team07_Demo" / "model.pth").write_bytes(b"other weights")
    with pytest.raises(ChecksumMismatch, match="team07_Demo/model.pth"):
        team_weights.import_weights(team, downloaded, tmp_path / "weights", tmp_path / "downloads")
    assert (tmp_path / "weights" / "demo" / "team07_Demo" / "model.pth").read_bytes() == b"weights"

    wrong = folder_team(tmp_path)
    wrong.data["weights"].append({"name": "extra.pth", "source": {"kind": "local", "path": "x"}})
    empty = tmp_path / "empty"
    (empty / "team07_Demo").mkdir(parents=True)
    with pytest.raises(WeightsUnavailable, match="team07_Demo/: missing") as caught:
        team_weights.import_weights(wrong, empty, tmp_path / "elsewhere", tmp_path / "downloads")
    assert "extra.pth: missing" in caught.value.message
    assert not (tmp_path / "elsewhere" / "demo").exists()
