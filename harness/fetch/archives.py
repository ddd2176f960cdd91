"""Folders and archives of images: copied or extracted safely (no path may escape the target)."""

from __future__ import annotations

import fnmatch
import functools
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from harness.core.errors import DatasetError


def _safe_member(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise DatasetError(f"archive member '{name}' would be written outside the target: refused",
                           hint="the archive is malformed or malicious; nothing was extracted")
    return path


def _members(source: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(relative name, reader) of every file in a folder or archive. Every member is checked before the
    first is read: names that climb out, links (in a folder: links that leave it) and special files
    refuse the whole source. A damaged archive (truncated, bad checksum, encrypted, an unknown
    compression) is a DatasetError naming the archive and, where known, the member."""
    source = Path(source)
    if source.is_dir():
        inside = source.resolve()
        files = []
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source).as_posix()
            if path.is_symlink() and not path.resolve().is_relative_to(inside):
                raise DatasetError(f"{source}: {relative} is a link to {path.resolve()}, outside the folder: refused",
                                   hint="copy the file itself into the folder")
            if path.is_file():
                files.append((relative, path))
            elif not path.is_dir():
                raise DatasetError(f"{source}: {relative} is not a regular file: refused")
        for relative, path in files:
            yield relative, path.read_bytes
        return
    member: zipfile.ZipInfo | tarfile.TarInfo | None = None
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as zf:
                entries = [m for m in zf.infolist() if not m.is_dir()]
                for member in entries:
                    _safe_member(member.filename)
                    if member.flag_bits & 0x1:
                        raise DatasetError(f"{source}: member '{member.filename}' is encrypted: refused",
                                           hint="give an archive without a password")
                for member in entries:
                    yield member.filename, _guarded(source, member.filename, functools.partial(zf.read, member))
        elif source.is_file() and tarfile.is_tarfile(source):
            with tarfile.open(source) as tf:
                members = tf.getmembers()
                for member in members:
                    _safe_member(member.name)
                    if not (member.isfile() or member.isdir()):
                        raise DatasetError(f"archive member '{member.name}' is a link or a special file: refused")
                for member in members:
                    if member.isfile():
                        yield member.name, _guarded(source, member.name, functools.partial(_tar_bytes, tf, member))
        else:
            raise DatasetError(f"{source} is neither a folder nor a .zip/.tar archive")
    except ARCHIVE_ERRORS as exc:
        raise _damaged(source, getattr(member, "filename", None) or getattr(member, "name", None), exc) from None


ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
                  OSError)


def _damaged(source: Path, name: str | None, exc: Exception) -> DatasetError:
    return DatasetError(f"{source}: the archive is damaged" + (f" at member '{name}'" if name else "")
                        + f" ({type(exc).__name__}: {exc})",
                        hint="download it again (a cut download leaves a truncated archive); nothing was imported")


def _tar_bytes(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    extracted = archive.extractfile(member)
    if extracted is None:  # not a regular file: refused above, never read
        raise DatasetError(f"archive member '{member.name}' is not a regular file: refused")
    return extracted.read()


def _guarded(source: Path, name: str, read: Callable[[], bytes]) -> Callable[[], bytes]:
    def guarded() -> bytes:
        try:
            return read()
        except ARCHIVE_ERRORS as exc:
            raise _damaged(source, name, exc) from None
    return guarded


def materialise(source: Path, target: Path, pattern: str = "*.png", subfolder: str | None = None) -> list[Path]:
    """Copy the files matching pattern from a folder or archive into target (flat, by file name).

    With subfolder, only members under a folder of that name are taken (for archives holding
    several teams). Two members with the same file name are an error.
    """
    source = Path(source)
    target.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for name, read in _members(source):
        path = _safe_member(name)
        if not fnmatch.fnmatch(path.name, pattern):
            continue
        if subfolder is not None and subfolder not in path.parts[:-1]:
            continue
        twin = next((taken for taken in written if taken.casefold() == path.name.casefold()), None)
        if twin is not None:
            raise DatasetError(f"{source}: two files named {path.name} ({written[twin]} and {name})"
                               if twin == path.name else f"{source}: {written[twin]} and {name} differ only in case: "
                               "refused (rule: names must differ on a case-insensitive file system)")
        written[path.name] = name
        (target / path.name).write_bytes(read())
    if not written:
        raise DatasetError(f"{source}: no file matching {pattern}" + (f" under '{subfolder}'" if subfolder else ""))
    return [target / name for name in sorted(written)]


def materialise_tree(source: Path, target: Path) -> list[Path]:
    """Copy a folder, or extract a .zip/.tar archive, into target keeping relative paths."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, read in _members(Path(source)):
        out = target / _safe_member(name)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(read())
        written.append(out)
    return written
