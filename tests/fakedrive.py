"""A loopback Google Drive for gdown's real folder and file code.

gdown 6 lists a folder from drive.google.com/embeddedfolderview?id=<id> (a page of links: files as
/file/d/<id>/view, sub-folders as /drive/folders/<id>, any number of them) and downloads files from
drive.google.com/uc?id=<id>. Those addresses are written into gdown, so a loopback HTTPS proxy stands in
front of them (HTTPS_PROXY): it answers CONNECT, terminates TLS with a certificate for drive.google.com
signed by a CA made here (given to requests by REQUESTS_CA_BUNDLE) and serves the pages and files of a
`Drive` built by the test. What this proves: the harness drives gdown's code end to end over real HTTPS.
What it cannot: that Drive's real pages still look like this (gdown's maintainers track that).
"""

from __future__ import annotations

import datetime
import hashlib
import html
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse


def drive_id(name: str) -> str:
    """A Drive-shaped id (gdown only follows ids of 25 characters or more)."""
    return ("1" + "".join(c for c in name if c.isalnum() or c in "-_")).ljust(33, "x")[:60]


class Drive:
    """Folders {id: (title, [(child id, name)])}, files {id: bytes}, and what the clients asked for."""

    def __init__(self):
        self.folders: dict[str, tuple[str, list] | int] = {}
        self.files: dict[str, bytes] = {}
        self.seen: list[str] = []
        self.ranges: list[str] = []
        self.cut_once: set[str] = set()
        self.tunnels: list[str] = []

    def folder(self, folder_id: str, title: str, children: list[tuple[str, str]] | None = None) -> str:
        self.folders[folder_id] = (title, list(children or []))
        return folder_id

    def refuse(self, folder_id: str, status: int) -> None:
        """The folder's view answers with an HTTP error (not shared, gone)."""
        self.folders[folder_id] = status

    def add(self, parent: str, name: str, body: bytes | None = None, folder: bool = False) -> str:
        child = drive_id(f"{hashlib.sha256(parent.encode()).hexdigest()[:12]}{name}")  # unique per parent
        self.folders[parent][1].append((child, name))
        if folder:
            self.folders.setdefault(child, (name, []))
        else:
            self.files[child] = body or b""
        return child

    def downloads(self) -> list[str]:
        return [path for path in self.seen if path.startswith("/uc")]

    def page(self, folder_id: str) -> bytes:
        title, children = self.folders[folder_id]
        links = []
        for child, name in children:
            href = (f"https://drive.google.com/drive/folders/{child}" if child in self.folders
                    else f"https://drive.google.com/file/d/{child}/view?usp=drive_web")
            links.append(f'<div class="flip-entry"><a href="{href}" target="_blank">'
                         f'<div class="flip-entry-title">{html.escape(name)}</div></a></div>')
        return (f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head><body>"
                f"<div class=\"flip-entries\">{''.join(links)}</div></body></html>").encode()


class DriveSite(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    @property
    def drive(self) -> Drive:
        return self.server.drive

    def do_GET(self):
        url = urlparse(self.path)
        self.drive.seen.append(url.path + ("?" + url.query if url.query else ""))
        wanted = (parse_qs(url.query).get("id") or [""])[0]
        if url.path == "/embeddedfolderview":
            folder = self.drive.folders.get(wanted, 404)
            if isinstance(folder, int):
                return self.reply(folder, b"<html><body>no access</body></html>", "text/html")
            return self.reply(200, self.drive.page(wanted), "text/html; charset=utf-8")
        if url.path != "/uc" or wanted not in self.drive.files:
            return self.reply(404, b"<html><title>Not found</title></html>", "text/html")
        body, start = self.drive.files[wanted], 0
        if self.headers.get("Range"):
            self.drive.ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", f'attachment; filename="{wanted}.bin"')
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if wanted in self.drive.cut_once:  # the connection drops half way, once
            self.drive.cut_once.discard(wanted)
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
        self.server.drive.tunnels.append(request[1])
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


class Served:
    """The proxy in front of a Drive, running; `environment` holds what a client needs to reach it."""

    def __init__(self, drive: Drive, folder):
        ca_path, cert_path, key_path = make_certificates(folder)
        self.drive = drive
        self.proxy = InterceptingProxy(("127.0.0.1", 0), ProxyHandler)
        self.proxy.drive = drive
        self.proxy.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.proxy.context.load_cert_chain(cert_path, key_path)
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        self.environment = {"HTTPS_PROXY": f"http://127.0.0.1:{self.proxy.server_address[1]}",
                            "REQUESTS_CA_BUNDLE": str(ca_path), "HOME": str(folder)}  # gdown's cookies: ~/.cache

    def close(self) -> None:
        self.proxy.shutdown()
        self.proxy.server_close()
