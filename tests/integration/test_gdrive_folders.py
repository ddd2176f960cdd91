"""Google Drive folders through gdown's real folder support, and weights imported by hand.

gdown reads a folder's listing from the web page Drive serves at drive.google.com/drive/folders/<id>,
follows sub-folders there and downloads files from drive.google.com/uc. Those addresses are written
into gdown, so the test puts a loopback HTTPS proxy in front of them (HTTPS_PROXY): it answers
CONNECT, terminates TLS with a certificate for drive.google.com signed by a CA made here (given to
requests by REQUESTS_CA_BUNDLE) and serves folder pages in the format gdown parses and the files
behind them. What this proves: the harness drives gdown's folder code end to end over real HTTPS,
narrows to a team's sub-folder, resumes, pins and refuses. What it cannot: that Drive's real pages
still look like this (gdown's maintainers track that).
"""

import datetime
import hashlib
import json
import os
import socketserver
import ssl
import tarfile
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import weights_team
from harness import weights
from harness.errors import ChecksumMismatch, DownloadError, WeightsUnavailable

pytestmark = pytest.mark.network
FOLDER = "application/vnd.google-apps.folder"
ROOT_ID, ZOO_ID, TEAM_ID, OTHER_ID = "1RootFolder0000000000000000000000", "1ZooFolder", "1TeamFolder", "1OtherTeam"
FILE_IDS = {"1TeamModel": os.urandom(2 * 2 ** 20), "1TeamConfig": b"scale: 4\n", "1OtherModel": os.urandom(1000)}
FOLDERS = {  # id: (title, [(child id, name, type)])
    ROOT_ID: ("NTIRE2025 SR", [(ZOO_ID, "model_zoo", FOLDER)]),
    ZOO_ID: ("model_zoo", [(TEAM_ID, "team07_Demo", FOLDER), (OTHER_ID, "team08_Other", FOLDER)]),
    TEAM_ID: ("team07_Demo", [("1TeamModel", "model.pth", "application/octet-stream"),
                              ("1TeamConfig", "options.yml", "text/plain")]),
    OTHER_ID: ("team08_Other", [("1OtherModel", "other.pth", "application/octet-stream")]),
    "1NoAccess": None,  # Drive's sign-in / quota page: no listing in it
}


def drive_page(title: str, children: list) -> bytes:
    """A folder page as Drive serves it: the listing is a JS string with every character escaped."""
    listing = json.dumps([[[child_id, [title], name, kind] for child_id, name, kind in children]])
    escaped = "".join(c if c.isalnum() else f"\\x{ord(c):02x}" for c in listing)
    return (f"<!DOCTYPE html><html><head><title>{title} - Google Drive</title></head><body>"
            f"<script>window['_DRIVE_ivd'] = '{escaped}';</script></body></html>").encode()


class DriveSite(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []
    ranges: list = []
    cut_once: set = set()

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        type(self).seen.append(url.path + ("?" + url.query if url.query else ""))
        if url.path.startswith("/drive/folders/"):
            folder = url.path.rsplit("/", 1)[-1]
            if folder not in FOLDERS:
                return self.reply(404, b"<html><title>Not found</title></html>", "text/html")
            if FOLDERS[folder] is None:
                return self.reply(200, b"<html><head><title>Sign in - Google Accounts</title></head></html>",
                                  "text/html")
            return self.reply(200, drive_page(*FOLDERS[folder]), "text/html; charset=utf-8")
        file_id = (parse_qs(url.query).get("id") or [""])[0]
        if url.path != "/uc" or file_id not in FILE_IDS:
            return self.reply(404, b"<html><title>Not found</title></html>", "text/html")
        body, start = FILE_IDS[file_id], 0
        if self.headers.get("Range"):
            type(self).ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", f'attachment; filename="{file_id}.bin"')
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if file_id in type(self).cut_once:  # the connection drops half way, once
            type(self).cut_once.discard(file_id)
            self.wfile.write(body[start:start + (len(body) - start) // 2])
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def reply(self, code, body, kind):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class InterceptingProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class ProxyHandler(socketserver.StreamRequestHandler):
    def handle(self):
        request = self.rfile.readline().decode("latin-1").split()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        if len(request) < 2 or request[0] != "CONNECT" or not request[1].endswith(".google.com:443"):
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        self.server.tunnels.append(request[1])
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        try:
            tls = self.server.context.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            DriveSite(tls, self.client_address, self.server)
        except OSError:
            pass
        finally:
            tls.close()


def make_certificates(folder):
    """A CA and a drive.google.com certificate it signs (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harness test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                                 "drive.google.com")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("drive.google.com")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "drive.pem", folder / "drive.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


@pytest.fixture
def drive(tmp_path, monkeypatch):
    ca_path, cert_path, key_path = make_certificates(tmp_path)
    proxy = InterceptingProxy(("127.0.0.1", 0), ProxyHandler)
    proxy.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    proxy.context.load_cert_chain(cert_path, key_path)
    proxy.tunnels = []
    DriveSite.seen, DriveSite.ranges, DriveSite.cut_once = [], [], set()
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_path))
    monkeypatch.delenv("HARNESS_GDRIVE_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # gdown keeps cookies under ~/.cache
    yield proxy
    proxy.shutdown()
    proxy.server_close()


def folder_team(tmp_path, folder_id=ROOT_ID, path="model_zoo/team07_Demo"):
    return weights_team(tmp_path, "demo", "Weights in a Drive folder", {
        "name": "team07_Demo", "directory": True,
        "source": {"kind": "gdrive", "id": folder_id, "folder": True, "mirror": "the Baidu mirror",
                   **({"path": path} if path else {})}})


def fetch(team, tmp_path):
    return weights.fetch(team, tmp_path / "weights", tmp_path / "downloads", tmp_path)


def test_a_teams_sub_folder_of_a_shared_folder_is_fetched_and_pinned(drive, tmp_path):
    team = folder_team(tmp_path)
    DriveSite.cut_once = {"1TeamModel"}
    with pytest.raises(DownloadError):  # the first try is cut half way: nothing is placed
        fetch(team, tmp_path)
    assert not (tmp_path / "weights" / "demo" / "team07_Demo").exists()
    fetched = fetch(team, tmp_path)  # the second resumes the cut file
    assert len(DriveSite.ranges) == 1 and DriveSite.ranges[0] != "bytes=0-"  # gdown writes whole chunks
    target = tmp_path / "weights" / "demo" / "team07_Demo"
    assert fetched == [target]
    assert (target / "model.pth").read_bytes() == FILE_IDS["1TeamModel"]
    assert (target / "options.yml").read_bytes() == b"scale: 4\n"
    assert not (target / "other.pth").exists()  # the other team's folder is listed, never downloaded
    assert not any("1OtherModel" in path for path in DriveSite.seen)
    assert any(path.startswith("/drive/folders/" + ZOO_ID) for path in DriveSite.seen)
    assert set(drive.tunnels) == {"drive.google.com:443"}
    pins = json.loads((tmp_path / "weights" / "demo" / "sha256.json").read_text())
    assert pins["team07_Demo/model.pth"] == hashlib.sha256(FILE_IDS["1TeamModel"]).hexdigest()

    (target / "model.pth").write_bytes(b"changed")
    with pytest.raises(ChecksumMismatch, match="team07_Demo/model.pth"):
        fetch(team, tmp_path)


@pytest.mark.parametrize("folder_id, path, expected", [
    ("1NoAccess", None, "holds no folder listing"),
    ("1Missing", None, "did not answer with the folder"),
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
    from harness.outputs import fetch_source

    local = fetch_source(f"gdrive:{ROOT_ID}", tmp_path / "downloads", subfolder="team08_Other")
    files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    assert files == ["team08_Other/other.pth"]
    assert not any("1TeamModel" in path for path in DriveSite.seen)


def test_weights_import_checks_names_and_pins(tmp_path):
    team = folder_team(tmp_path)
    downloaded = tmp_path / "baidu" / "model_zoo"
    (downloaded / "team07_Demo").mkdir(parents=True)
    (downloaded / "team07_Demo" / "model.pth").write_bytes(b"weights")
    pins = weights.import_weights(team, downloaded, tmp_path / "weights", tmp_path / "downloads")  # the parent folder
    assert pins == {"team07_Demo/model.pth": hashlib.sha256(b"weights").hexdigest()}
    assert (tmp_path / "weights" / "demo" / "team07_Demo" / "model.pth").read_bytes() == b"weights"

    archive = tmp_path / "team07.tar.gz"  # the team's folder itself, as an archive
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(downloaded / "team07_Demo", arcname="team07_Demo")
    assert weights.import_weights(team, archive, tmp_path / "weights", tmp_path / "downloads") == pins
    itself = downloaded / "team07_Demo"
    assert weights.import_weights(team, itself, tmp_path / "weights", tmp_path / "downloads") == pins

    (downloaded / "team07_Demo" / "model.pth").write_bytes(b"other weights")
    with pytest.raises(ChecksumMismatch, match="team07_Demo/model.pth"):
        weights.import_weights(team, downloaded, tmp_path / "weights", tmp_path / "downloads")
    assert (tmp_path / "weights" / "demo" / "team07_Demo" / "model.pth").read_bytes() == b"weights"

    wrong = folder_team(tmp_path)
    wrong.data["weights"].append({"name": "extra.pth", "source": {"kind": "local", "path": "x"}})
    empty = tmp_path / "empty"
    (empty / "team07_Demo").mkdir(parents=True)
    with pytest.raises(WeightsUnavailable, match="team07_Demo/: missing") as caught:
        weights.import_weights(wrong, empty, tmp_path / "elsewhere", tmp_path / "downloads")
    assert "extra.pth: missing" in caught.value.message
    assert not (tmp_path / "elsewhere" / "demo").exists()
