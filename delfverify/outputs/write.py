"""Writing planned outputs (``write_outputs``), all or nothing; see ``delfverify.outputs``."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Iterable, Sequence

from ..fileio import create_temporary
from .plan import (_WRITTEN_BY, DESCRIPTOR, FILE, MANIFEST, Output, OutputError, OutputPlan, OwnedFolder, PathArg,
                   _kind, busy)

logger = logging.getLogger(__name__)


def _manifest(folder: OwnedFolder, names: Iterable[str]) -> bytes:
    doc = {"written_by": _WRITTEN_BY, "about": folder.purpose, "files": sorted(names)}
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


def as_output(target: Output | PathArg, name: str) -> Output:
    """A planned output: ``target`` itself, or a path planned alone (a library writer called with a path)."""
    if isinstance(target, Output):
        return target
    return OutputPlan().file(name, target)


def write_output(target: Output | PathArg, data: bytes | str, *, name: str = "the output") -> None:
    """``write_outputs`` of one output (``name`` says what it is when ``target`` is a path)."""
    write_outputs([(as_output(target, name), data)])


def write_outputs(items: Sequence[tuple[Output, bytes | str]],
                  folders: Sequence[tuple[OwnedFolder, Iterable[str]]] = ()) -> None:
    """Write planned outputs, all or nothing: regular files are replaced only once every one of them and every
    stream is written whole.

    Parameters
    ----------
    items : sequence of (Output, bytes or str)
        Each output and its whole content (``str`` is written as UTF-8).
    folders : sequence of (OwnedFolder, names)
        Folders the tool fills, with the names of the files it holds after this call (written among ``items``).
        The manifest is written first (listing the files of before and after, so that a run killed half-way
        leaves none unlisted); after the renames, files of before that are not listed now are removed, and the
        manifest lists the new ones. A folder left without files is removed with its manifest.

    Raises
    ------
    OutputError
        Naming the output that failed, the reason and the remedy; nothing was replaced, and no temporary file nor
        any folder made by this call is left.
    """
    folders = [(folder, set(names)) for folder, names in folders]
    job = _Job()
    try:
        _write(job, items, folders)
    finally:
        for folder, _ in folders:
            folder.lock.release()


def _write(job: _Job, items: Sequence[tuple[Output, bytes | str]],
           folders: Sequence[tuple[OwnedFolder, set[str]]]) -> None:
    """``write_outputs`` under the folders' locks."""
    try:
        for folder, names in folders:
            if names:
                if not folder.exists:
                    job.make(folder)
                job.stage(Output(f"the manifest of {folder.name}", str(folder.path / MANIFEST), FILE,
                                 folder.path / MANIFEST, member=True), _manifest(folder, folder.listed | names))
        for target, data in items:
            if target.kind == FILE:
                job.stage(target, data.encode("utf-8") if isinstance(data, str) else data)
        for target, data in items:
            if target.kind != FILE:
                job.stream(target, data.encode("utf-8") if isinstance(data, str) else data)
        job.commit()
    except OSError as exc:
        job.abandon()
        raise OutputError(_describe(job.current, exc, job.replaced)) from None
    except BaseException:
        job.abandon()
        raise
    for folder, names in folders:
        _tidy(folder, names)


class _Job:
    """The temporary files and folders of one ``write_outputs`` call, to rename or to remove."""

    def __init__(self):
        self.staged: list[tuple[Path, Output]] = []  # (temporary, its output)
        self.folders: list[Path] = []  # made by this call, outermost first
        self.current: Output | None = None
        self.replaced = 0

    def make(self, folder: OwnedFolder) -> None:
        """Make a folder the tool fills that was missing when planned, and lock it (``FolderLock``). Made since by
        another run planned at the same time, it is refused, as that run's lock would have refused it."""
        self._make_missing(folder.path.parent)
        try:
            os.mkdir(folder.path)
        except FileExistsError:
            raise busy(folder.name, folder.given, folder.remedy) from None
        self.folders.append(folder.path)
        folder.lock.take(folder.path, folder.name, folder.given, folder.remedy)

    def _make_missing(self, folder: Path) -> None:
        """Make ``folder`` and those above it that are missing, remembering them."""
        missing = []
        while not os.path.lexists(folder):
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            os.mkdir(folder)
            self.folders.append(folder)

    def stage(self, target: Output, data: bytes) -> None:
        self.current = target
        final = target.path
        try:
            st = os.lstat(final)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is not None and not (stat.S_ISREG(st.st_mode) or (target.member and stat.S_ISLNK(st.st_mode))):
            raise OSError(errno.EEXIST, f"{_kind(st.st_mode)} stands in its place")
        self._make_missing(final.parent)
        fd, tmp = create_temporary(final)
        self.staged.append((tmp, target))
        try:
            if st is not None and stat.S_ISREG(st.st_mode):
                os.chmod(tmp, stat.S_IMODE(st.st_mode))
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def stream(self, target: Output, data: bytes) -> None:
        self.current = target
        if target.kind == DESCRIPTOR:
            _write_descriptor(target.descriptor, data)
            return
        flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
        try:  # a FIFO without a reader: say so, then wait for one as a shell would
            fd = os.open(target.path, flags | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            logger.warning("%s: waiting for a reader of this FIFO (%s)", target.given, target.name)
            fd = os.open(target.path, flags)
        try:
            os.set_blocking(fd, True)
            if stat.S_ISREG(os.fstat(fd).st_mode):  # it changed since planning: never write into a file in place
                raise OSError(errno.EEXIST, "a regular file took its place after the run was planned")
            _write_all(fd, data)
        finally:
            os.close(fd)

    def commit(self) -> None:
        for tmp, target in self.staged:
            self.current = target
            os.replace(tmp, target.path)
            self.replaced += 1

    def abandon(self) -> None:
        for tmp, _ in self.staged[self.replaced:]:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        for folder in reversed(self.folders):
            try:
                folder.rmdir()
            except OSError:
                pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_descriptor(descriptor: int, data: bytes) -> None:
    """Write into a descriptor; standard output and error through Python's streams, so that a redirection made in
    this process (``contextlib.redirect_stdout``, pytest's capture) applies."""
    if descriptor not in (1, 2):
        _write_all(descriptor, data)
        return
    stream = sys.stdout if descriptor == 1 else sys.stderr
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OSError(errno.EINVAL, "binary data, and this standard stream takes text only") from None
    stream.write(text)
    stream.flush()


_REMEDIES = {
    errno.ENOSPC: "free space on its disk, or choose another path",
    errno.EDQUOT: "free space (the disk quota is reached), or choose another path",
    errno.EACCES: "make its folder writable, or choose another path",
    errno.EPERM: "make its folder writable, or choose another path",
    errno.EROFS: "its file system is read-only: choose another path",
    errno.ENAMETOOLONG: "choose a shorter name",
    errno.EEXIST: "move what is there away, or choose another path",
    errno.EISDIR: "move what is there away, or choose another path",
    errno.ENOTDIR: "move the file that stands where a folder should be, or choose another path",
    errno.EPIPE: "the reader stopped reading before the end",
    errno.EIO: "check the disk, or choose another path",
}


def _describe(target: Output | None, exc: OSError, replaced: int) -> str:
    reason = exc.strerror or str(exc)
    remedy = _REMEDIES.get(exc.errno, "choose another path")
    done = "no file was replaced" if not replaced else f"{replaced} file(s) were replaced before it failed"
    if target is None:
        return f"cannot write the outputs ({reason}); {remedy}; {done}"
    return f"{target.shown}: cannot write {target.name} ({reason}); {remedy}; {done}"


def _tidy(folder: OwnedFolder, names: set[str]) -> None:
    """After the renames: remove the files of an earlier run the manifest listed and this one did not write (only
    regular files at those names), then list the files now there; a folder left empty is removed."""
    for stale in sorted(folder.listed - names):
        path = folder.path / stale
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("%s: cannot remove this file of an earlier run (%s)", path, exc.strerror or exc)
    manifest = folder.path / MANIFEST
    try:
        if names:
            if names != folder.listed | names:  # the manifest written first lists the removed files too
                write_outputs([(Output(f"the manifest of {folder.name}", str(manifest), FILE, manifest,
                                       member=True), _manifest(folder, names))])
        elif folder.exists:
            manifest.unlink(missing_ok=True)
            if not any(os.scandir(folder.path)):
                folder.path.rmdir()
    except (OSError, OutputError) as exc:
        logger.warning("%s: cannot update the manifest (%s); the files it lists that are gone are skipped next "
                       "time", manifest, exc)


def remedy(error: OSError) -> str | None:
    """What a user can do about a file system error, by its errno, in the words of this layer's messages (``None``
    where there is nothing particular to say); the command's other one-line errors reuse them."""
    return _REMEDIES.get(error.errno)
