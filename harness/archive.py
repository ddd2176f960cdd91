"""Folders and archives of images: copied or extracted safely (no path may escape the target)."""

from __future__ import annotations

import fnmatch
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from .errors import DatasetError


def _safe_member(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise DatasetError(f"archive member '{name}' would be written outside the target: refused",
                           hint="the archive is malformed or malicious; nothing was extracted")
    return path


def materialise(source: Path, target: Path, pattern: str = "*.png", subfolder: str | None = None) -> list[Path]:
    """Copy the files matching pattern from a folder or archive into target (flat, by file name).

    With subfolder, only members under a folder of that name are taken (for archives holding
    several teams). Two members with the same file name are an error.
    """
    source = Path(source)
    target.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}

    def take(name: str) -> Path | None:
        path = _safe_member(name)
        if not fnmatch.fnmatch(path.name, pattern):
            return None
        if subfolder is not None and subfolder not in path.parts[:-1]:
            return None
        if path.name in written:
            raise DatasetError(f"{source}: two files named {path.name} ({written[path.name]} and {name})")
        written[path.name] = name
        return target / path.name

    if source.is_dir():
        for file in sorted(source.rglob("*")):
            if file.is_file() and (out := take(file.relative_to(source).as_posix())):
                shutil.copy2(file, out)
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            for member in members:
                _safe_member(member.filename)  # refuse the whole archive before writing anything
            for member in members:
                if out := take(member.filename):
                    out.write_bytes(zf.read(member))
    elif source.is_file() and tarfile.is_tarfile(source):
        with tarfile.open(source) as tf:
            members = tf.getmembers()
            for member in members:
                _safe_member(member.name)
                if member.issym() or member.islnk():
                    raise DatasetError(f"archive member '{member.name}' is a link: refused")
            for member in members:
                if member.isfile() and (out := take(member.name)):
                    out.write_bytes(tf.extractfile(member).read())
    else:
        raise DatasetError(f"{source} is neither a folder nor a .zip/.tar archive")
    if not written:
        raise DatasetError(f"{source}: no file matching {pattern}" + (f" under '{subfolder}'" if subfolder else ""))
    return [target / name for name in sorted(written)]


def materialise_tree(source: Path, target: Path) -> list[Path]:
    """Copy a folder, or extract a .zip/.tar archive, into target keeping relative paths. Members that
    climb out, links and special files are refused before anything is written."""
    source = Path(source)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source)
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                raise DatasetError(f"{source}: {relative.as_posix()} is a link or a special file: refused")
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            out = target / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
            written.append(out)
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            for member in members:
                _safe_member(member.filename)
            for member in members:
                out = target / _safe_member(member.filename)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(zf.read(member))
                written.append(out)
    elif source.is_file() and tarfile.is_tarfile(source):
        with tarfile.open(source) as tf:
            members = tf.getmembers()
            for member in members:
                _safe_member(member.name)
                if not (member.isfile() or member.isdir()):
                    raise DatasetError(f"{source}: archive member '{member.name}' is a link or a special file: "
                                       "refused")
            for member in members:
                if member.isfile():
                    out = target / _safe_member(member.name)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(tf.extractfile(member).read())
                    written.append(out)
    else:
        raise DatasetError(f"{source} is neither a folder nor a .zip/.tar archive")
    return written
