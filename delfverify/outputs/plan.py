"""Planning the outputs of a run (``OutputPlan``), before its work: what each output is, where it really leads, and
whether it may be written at all; see ``delfverify.outputs``."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Union

from ..errors import DelfverifyError
from ..fileio import NotAFileError, expand_home, names_a_folder, read_regular_file
from ..numbers import NumberError, RepeatedFieldError, load_json

logger = logging.getLogger(__name__)

PathArg = Union[str, os.PathLike]

FILE, STREAM, DESCRIPTOR = "file", "stream", "descriptor"
#: The file by which the tool knows a folder it made itself, and the files it wrote there.
MANIFEST = "delfverify-manifest.json"
MANIFEST_MAX_BYTES = 2**20
_WRITTEN_BY = "delfverify"
#: The SQLite files beside a journal (write-ahead log, shared memory, rollback journal).
JOURNAL_SIDECARS = ("-wal", "-shm", "-journal")
_DESCRIPTOR_PATH = re.compile(r"/(?:dev/fd|proc/self/fd|proc/(\d+)/fd)/(\d+)")
_STANDARD = {"/dev/stdout": 1, "/dev/stderr": 2}
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"),
          (stat.S_ISREG, "a file"))


class OutputError(DelfverifyError, ValueError):
    """An output would overwrite an input or another output, cannot be written, or failed to be written; the
    message names it, the reason and the remedy."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both resolved)."""
    return path == folder or folder in path.parents


def _same_file(a: PathArg, b: PathArg) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one does not exist (yet): compare where they lead
        return os.path.realpath(a) == os.path.realpath(b)


@dataclass(frozen=True)
class Output:
    """A planned output: what it is (``name``, for messages), the path as given, how it is written (``kind``) and
    where (``path``: the real path, symbolic links resolved; ``descriptor`` for ``DESCRIPTOR``). It is a path-like
    object (the path as given), so the library's writers take it where they take a path."""

    name: str
    given: str
    kind: str
    path: Path | None = None
    descriptor: int | None = None
    #: Standard output, or a stream that is this process's standard output: a command then says what it did on
    #: standard error, so that its lines never mix into the data.
    to_stdout: bool = False
    #: A member of an ``OwnedFolder``: written at ``path`` exactly (a link there is replaced, never followed).
    member: bool = False

    def __fspath__(self) -> str:
        return self.given

    def __str__(self) -> str:
        return self.given

    @property
    def shown(self) -> str:
        """The output as a message names it: its path, or ``standard output``."""
        return "standard output" if self.given == "-" else self.given


def busy(name: str, given: str, remedy: str) -> OutputError:
    """The refusal of a folder another run is writing."""
    return OutputError(f"{given}: another delfverify run is writing {name} now; wait for it to finish, or {remedy}")


class FolderLock:
    """An exclusive lock on a folder the tool fills, held from planning until its files are written, so that two
    runs writing one report never mix their pictures and manifests (one would leave files the other's manifest
    does not list). It is ``flock`` on the folder's own descriptor: no file is made for it, and it is released when
    the process ends, however it ends. Locks are per open descriptor, so two plans in one process exclude each
    other too."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def take(self, folder: Path, name: str, given: str, remedy: str) -> None:
        """Lock ``folder``, or raise ``OutputError`` when another run holds it. A folder that cannot be opened (the
        checks that follow name why) or a file system without locks is used unlocked, as before."""
        try:
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise busy(name, given, remedy) from None
        except OSError:  # no locks on this file system (ENOLCK, EOPNOTSUPP)
            os.close(fd)
            return
        self.release()
        self.fd = fd

    def release(self) -> None:
        """Release the lock (nothing when none is held)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self) -> None:  # a run that failed before writing: released when its plan is dropped
        self.release()


@dataclass(frozen=True)
class OwnedFolder:
    """A folder the tool fills itself (the report's pictures): made by the tool, with a manifest (``MANIFEST``)
    listing the files it wrote there. ``listed``: the files the manifest of an earlier run lists, which are the
    only ones ever replaced or removed."""

    name: str
    path: Path
    pattern: re.Pattern
    member_name: str
    purpose: str
    listed: frozenset = frozenset()
    exists: bool = False
    #: Held from planning (a folder that exists) or from its making (one that does not yet) until it is written.
    lock: FolderLock = field(default_factory=FolderLock, compare=False, repr=False)
    #: The folder as given, and the remedy of a refusal, for messages.
    given: str = ""
    remedy: str = "choose another path"

    def member(self, file_name: str) -> Output:
        """The planned output of one file of the folder (its name must match ``pattern``)."""
        if not self.pattern.fullmatch(file_name):
            raise ValueError(f"{file_name!r} is not a name {self.name} holds")
        path = self.path / file_name
        return Output(self.member_name, str(path), FILE, path, member=True)


class OutputPlan:
    """The outputs of one run, checked before its work against its inputs, its image folders and each other.

    Parameters
    ----------
    inputs : iterable of (str, path or None)
        The files the run reads, each with what it is (``"the predictions file"``); ``None`` is skipped.
    image_folders : iterable of (str, path, ImageDirectory or None)
        The photo folders: nothing is ever written in them.

    Each planning method raises ``OutputError`` (one line naming the output and the remedy) and creates nothing.
    """

    def __init__(self, inputs: Iterable[tuple[str, PathArg | None]] = (),
                 image_folders: Iterable[tuple[str, Any]] = ()):
        self.inputs = [(name, os.fspath(p)) for name, p in inputs if p is not None]
        self.image_folders = [(name, Path(os.path.realpath(f if isinstance(f, (str, os.PathLike)) else f.root)))
                              for name, f in image_folders if f is not None]  # a path, or an ImageDirectory
        self.outputs: list[Output] = []
        # (name, real path or None, descriptor or None, a folder whose inside is the tool's, the path as given)
        self._claims: list[tuple[str, Path | None, int | None, bool, str]] = []
        self._folders: set[Path] = set()  # claimed paths that are folders

    @property
    def to_stdout(self) -> bool:
        """Whether an output goes to standard output."""
        return any(o.to_stdout for o in self.outputs)

    # --- files -----------------------------------------------------------------------------------------------

    def file(self, name: str, path: PathArg | None, *, streams: bool = True,
             remedy: str = "choose another path") -> Output | None:
        """Plan a file output (``None`` for ``None``): a regular file, replaced atomically; with ``streams``, also
        a device, a FIFO or a descriptor (``-`` is standard output), written into."""
        if path is None:
            return None
        if isinstance(path, Output):
            path = path.given
        given = os.fspath(path)
        if not isinstance(given, str):
            given = os.fsdecode(given)
        given = expand_home(given, name)  # the rule of every path a user gives: every writer, public or not
        if names_a_folder(given):  # "rep.html/" would write rep.html
            raise OutputError(f"{given}: {name} ends in a path separator, so it names a folder; give a file name")
        descriptor = _descriptor(given)
        if descriptor is not None:
            return self._plan_descriptor(name, given, descriptor, streams, remedy)
        real = _real(given, name)
        for other, other_path in self.inputs:
            if _same_file(given, other_path):
                raise OutputError(f"{given}: {name} would overwrite {other} ({other_path}), the same file; {remedy}")
        self._check_claims(name, given, real, remedy)
        self._check_image_folders(name, given, real, remedy)
        st = _stat(given, name, remedy)
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{given}: {name} is a directory; give a file name")
        if st is not None and not stat.S_ISREG(st.st_mode):
            if not streams or not (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
                what = "a regular file" if not streams else "a file, a character device or a FIFO"
                raise OutputError(f"{given}: {name} is {_kind(st.st_mode)}; it must be {what}: {remedy}")
            if not os.access(real, os.W_OK):
                raise OutputError(f"{given}: no permission to write {name}")
            output = Output(name, given, STREAM, real, to_stdout=_is_stdout(st))
        else:
            _check_creatable(name, given, real, remedy)
            if st is not None and not os.access(real, os.W_OK):
                raise OutputError(f"{given}: no permission to write {name}")
            output = Output(name, given, FILE, real)
        self._claims.append((name, real, None, False, given))
        self.outputs.append(output)
        return output

    def _plan_descriptor(self, name: str, given: str, descriptor: int, streams: bool, remedy: str) -> Output:
        shown = "standard output" if given == "-" else given
        if not streams:
            raise OutputError(f"{given}: {name} must be a regular file, not {shown}; {remedy}")
        try:
            st = os.fstat(descriptor)
        except OSError:
            raise OutputError(f"{given}: {name} names file descriptor {descriptor}, which is not open; "
                              f"{remedy}") from None
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{given}: {name} names file descriptor {descriptor}, a directory; {remedy}")
        for other, _, fd, _, _ in self._claims:
            if fd == descriptor:
                raise OutputError(f"{given}: {name} would go to {shown}, as {other} does; {remedy}")
        output = Output(name, given, DESCRIPTOR, None, descriptor, to_stdout=descriptor == 1)
        self._claims.append((name, None, descriptor, False, given))
        self.outputs.append(output)
        return output

    # --- folders ---------------------------------------------------------------------------------------------

    def folder(self, name: str, path: PathArg, pattern: re.Pattern, *, member_name: str, purpose: str,
               create: bool = True, remedy: str = "choose another path") -> OwnedFolder | None:
        """Plan a folder the tool fills itself. It may be missing (it is then made, with its manifest, when a file
        is written in it) or a folder with the tool's manifest inside. A symbolic link, anything else in its place,
        a folder without the manifest or holding a file named like its members that the manifest does not list,
        are refused; with ``create`` false they are left alone instead (``None``: there is nothing to tidy)."""
        given = os.fspath(path)
        absolute = Path(os.path.abspath(given))
        real = Path(os.path.realpath(absolute.parent)) / absolute.name  # the folder itself is never followed
        for other, other_path in self.inputs:
            if _inside(Path(os.path.realpath(other_path)), real):
                raise OutputError(f"{given}: {name} holds {other} ({other_path}); {remedy}")
        for other, folder in self.image_folders:
            if _inside(folder, real):
                raise OutputError(f"{given}: {name} holds {other} ({folder}); {remedy}")
        self._check_image_folders(name, given, real, remedy)
        for other, claimed, _, _, other_given in self._claims:
            if claimed is not None and (_inside(claimed, real) or _inside(real, claimed)):
                raise OutputError(f"{given}: {name} would hold {other} ({other_given}); {remedy}")
        st = _stat(real, name, remedy, follow=False)
        listed: frozenset = frozenset()
        lock = FolderLock()
        if st is None:
            if not create:
                return None
            _check_creatable(name, given, real, remedy)
        elif stat.S_ISLNK(st.st_mode):
            if not create:
                return None
            raise OutputError(f"{given}: {name} is a symbolic link (to {os.readlink(real)}); delfverify writes only "
                              f"into a folder it made itself: remove the link, or {remedy}")
        elif not stat.S_ISDIR(st.st_mode):
            if not create:
                return None
            raise OutputError(f"{given}: {name} is {_kind(st.st_mode)}, where delfverify would make a folder; "
                              f"remove it, or {remedy}")
        else:
            lock.take(real, name, given, remedy)  # before the manifest is read: another run may be rewriting it
            try:
                listed = self._listed(name, given, real, pattern, create, remedy)
            except BaseException:
                lock.release()
                raise
            if listed is None:
                lock.release()
                return None
        self._claims.append((name, real, None, True, given))
        self._folders.add(real)
        return OwnedFolder(name, real, pattern, member_name, purpose, listed, st is not None, lock, given, remedy)

    @staticmethod
    def _listed(name: str, given: str, real: Path, pattern: re.Pattern, create: bool, remedy: str) -> frozenset | None:
        """The files the manifest of a folder that exists lists, checked as ``folder`` says (``None``: leave it
        alone)."""
        try:
            found = _read_manifest(real, pattern)
        except ValueError as exc:
            if not create:
                return None
            raise OutputError(f"{given}: {name} has a damaged manifest {real / MANIFEST} ({exc}); delfverify "
                              f"cannot tell which files it wrote there: remove the folder, or {remedy}") from None
        if found is None:
            if not create:
                return None
            raise OutputError(f"{given}: {name} exists, but delfverify did not make it (there is no {MANIFEST} "
                              f"in it), so it writes nothing there: move the folder away, or {remedy}")
        if create:
            stray = sorted(e.name for e in os.scandir(real) if pattern.fullmatch(e.name) and e.name not in found)
            if stray:
                raise OutputError(f"{given}: {name} holds {stray[0]}, which delfverify did not write there (its "
                                  f"manifest does not list it); move it away, or {remedy}")
        if not os.access(real, os.W_OK | os.X_OK):
            raise _unwritable(name, given, real, remedy)
        return found

    def cache(self, store: PathArg | None, journal: PathArg | None = None) -> None:
        """Plan the feature store's folder and the pair journal (``None``: not used). The store writes only its
        own entries in its folder, so other outputs may lie there; neither may be an input or another output, or
        lie in an image folder."""
        remedy = "choose another cache folder (--cache-dir) or none (--no-cache)"
        if store is not None:
            given = os.fspath(store)
            real = _real(given, "the cache folder")
            for other, other_path in self.inputs:
                if _same_file(given, other_path):
                    raise OutputError(f"{given}: the cache folder would overwrite {other} ({other_path}); {remedy}")
            st = _stat(given, "the cache folder", remedy)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise OutputError(f"{given}: the cache folder is {_kind(st.st_mode)}, not a folder; {remedy}")
            self._check_claims("the cache folder", given, real, remedy)
            self._check_image_folders("the cache folder", given, real, remedy)
            if st is None:
                _check_creatable("the cache folder", given, real, remedy)
            elif not os.access(real, os.W_OK | os.X_OK):
                raise _unwritable("the cache folder", given, real, remedy)
            self._claims.append(("the cache folder", real, None, False, given))
            self._folders.add(real)
        if journal is not None:
            remedy = "choose another journal (--journal) or cache folder (--cache-dir), or none (--no-cache)"
            planned = self.file("the journal", journal, streams=False, remedy=remedy)
            self.outputs.remove(planned)  # written by SQLite, not by write_outputs
            self._claims += [("the journal", planned.path.with_name(planned.path.name + suffix), None, False,
                              planned.given + suffix) for suffix in JOURNAL_SIDECARS]

    # --- checks ----------------------------------------------------------------------------------------------

    def _check_claims(self, name: str, given: str, real: Path, remedy: str) -> None:
        for other, claimed, _, owned, other_given in self._claims:
            if claimed is None:
                continue
            if claimed == real or _same_file(given, other_given):
                same = "path" if claimed in self._folders else "file"
                raise OutputError(f"{given}: {name} would overwrite {other} ({other_given}), the same {same}; {remedy}")
            if owned and _inside(real, claimed):
                raise OutputError(f"{given}: {name} would be written into {other} ({other_given}), which delfverify "
                                  f"fills itself; {remedy}")

    def _check_image_folders(self, name: str, given: str, real: Path, remedy: str) -> None:
        for other, folder in self.image_folders:
            if _inside(real, folder):
                raise OutputError(f"{given}: {name} would be written into {other} ({folder}), among the photos, "
                                  f"where nothing is ever written; {remedy}")


def _descriptor(given: str) -> int | None:
    """The descriptor of this process a path names (``-``, ``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``)."""
    if given == "-":
        return 1
    absolute = os.path.normpath(os.path.abspath(given))
    if absolute in _STANDARD:
        return _STANDARD[absolute]
    match = _DESCRIPTOR_PATH.fullmatch(absolute)
    if match and (match[1] is None or int(match[1]) == os.getpid()):
        return int(match[2])
    return None


def goes_to_stdout(path: PathArg | None) -> bool:
    """Whether an output path is this process's standard output: ``-``, ``/dev/stdout``, ``/dev/fd/1``,
    ``/proc/self/fd/1``, or a device or FIFO that standard output is. A command that writes an output there says
    what it did on standard error instead, so that its lines never mix into the data."""
    if path is None:
        return False
    given = os.fspath(path.given if isinstance(path, Output) else path)
    descriptor = _descriptor(given)
    if descriptor is not None:
        return descriptor == 1
    try:
        st = os.stat(given)
    except (OSError, ValueError):
        return False
    return not stat.S_ISREG(st.st_mode) and _is_stdout(st)


def _is_stdout(st: os.stat_result) -> bool:
    try:
        return os.path.samestat(st, os.fstat(1))
    except OSError:
        return False


def _stat(given: PathArg, name: str, remedy: str, follow: bool = True) -> os.stat_result | None:
    """What is at ``given`` (``None``: nothing, or a name too long to be there, which ``_check_creatable`` names)."""
    try:
        return os.stat(given) if follow else os.lstat(given)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
            return None
        raise OutputError(f"{given}: cannot reach {name} ({exc.strerror or exc}); {remedy}") from None


def _real(given: str, name: str) -> Path:
    if "\x00" in given:
        raise OutputError(f"{given!r}: {name} holds a NUL byte, which no file name may hold")
    return Path(os.path.realpath(given))


def _unwritable(name: str, given: str, folder: Path, remedy: str) -> OutputError:
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows)
        read_only = False
    if read_only:
        return OutputError(f"{given}: cannot write {name}: {folder} is on a read-only file system; {remedy}")
    return OutputError(f"{given}: no permission to write {name} in {folder}")


def _check_creatable(name: str, given: str, real: Path, remedy: str) -> None:
    """Whether ``real`` (which may not exist) can be created or replaced: its first existing folder is a folder that
    can be written, and each name to create fits the file system. Nothing is created."""
    folder = real.parent
    while not os.path.lexists(folder):
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{given}: cannot write {name}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _unwritable(name, given, folder, remedy)
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
        path_max = os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for part in real.relative_to(folder).parts:
        if len(os.fsencode(part)) > name_max:
            raise OutputError(f"{given}: cannot write {name}: the name {part[:40]}... is {len(os.fsencode(part))} "
                              f"bytes, more than its file system allows ({name_max}); choose a shorter name")
    if len(os.fsencode(str(real))) >= path_max:
        raise OutputError(f"{given}: cannot write {name}: its path is {len(os.fsencode(str(real)))} bytes, more "
                          f"than the system allows ({path_max - 1}); choose a shorter path")


def _read_manifest(folder: Path, pattern: re.Pattern) -> frozenset | None:
    """The files the tool's manifest in ``folder`` lists; ``None`` when there is none. ``ValueError``: it is
    damaged (not a regular file, not the tool's JSON, a name the folder never holds)."""
    path = folder / MANIFEST
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"it is {_kind(st.st_mode)}")
    try:
        doc = load_json(read_regular_file(path, MANIFEST_MAX_BYTES).decode("utf-8"), "manifest")
    except (OSError, NotAFileError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, NumberError,
            RepeatedFieldError) as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(doc, dict) or doc.get("written_by") != _WRITTEN_BY or not isinstance(doc.get("files"), list):
        raise ValueError("not a manifest written by delfverify")
    files = doc["files"]
    bad = [f for f in files if not isinstance(f, str) or not pattern.fullmatch(f)]
    if bad:
        raise ValueError(f"it lists {str(bad[0])[:80]!r}, a name delfverify never writes there")
    return frozenset(files)
