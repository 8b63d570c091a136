"""Files in and out, safely.

- ``atomic_write``: write to a temporary file beside the target, then rename it into place. A reader (or a run
  killed half-way) therefore sees either the old file or the complete new one, never a half-written file. A new
  file gets the permissions a plain ``open(path, "w")`` would give it (``0666`` less the umask); a file that is
  replaced keeps its permission bits.
- ``read_regular_file`` / ``open_regular_file``: read only regular files (photos and cache entries, which are found
  by name rather than named by the user). The file is opened without blocking and checked before a byte is read,
  so a FIFO, a device or a directory in place of a file is refused at once, never waited on or read without end,
  and a file over a size limit is refused before it is read.
- ``open_input`` / ``read_input``: read an input file the user named (a CSV or JSON file), which may also be a
  FIFO, ``/dev/stdin`` or a device. A regular file is read as it is; anything else is read up to a limit, then
  refused, so an endless input (``/dev/zero``, a pipe that never ends) ends in an error, never exhausts memory.
- ``create_temporary``: a new empty file beside a path, with the permissions a plain write gives, named as
  ``temporary_pattern`` recognises (``.<name, cut to 40 characters>.<8 hex digits>.tmp``).

The outputs a user names are planned and written by ``delfverify.outputs``; ``atomic_write`` serves the files the
tool keeps for itself (feature store entries).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import stat
from pathlib import Path
from typing import IO, Any, BinaryIO, Iterator

from .errors import InputTypeError, InputValueError, shorten


class NotAFileError(ValueError):
    """A path names something other than a regular file (a FIFO, a device, a directory) where only a regular file
    is read, or a file or stream too large to read; the message says which."""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


@contextlib.contextmanager
def open_regular_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a regular file for reading in binary mode, never blocking on what is not one.

    Raises
    ------
    NotAFileError
        If ``path`` is a FIFO, a device, a directory or a socket; nothing is read from it.
    OSError
        If it cannot be opened (``FileNotFoundError``, ``PermissionError``, ...).
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer for ever. It changes nothing for
    # regular files, whose reads never block.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotAFileError(f"is {_kind(mode)}, not a regular file")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_regular_file(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` bytes; its size is checked before it is read.

    Raises
    ------
    NotAFileError
        If ``path`` is not a regular file, or is larger than ``max_bytes``.
    OSError
        If it cannot be opened or read.
    """
    with open_regular_file(path) as handle:
        return _read_whole(handle, max_bytes, os.fstat(handle.fileno()).st_size)


def _read_whole(handle: BinaryIO, max_bytes: int, size: int | None) -> bytes:
    """All of ``handle``, refused (``NotAFileError``) where it is over ``max_bytes``: by its ``size`` before a byte
    is read, for a file whose size is known, else (or where it grew since) once it has given one byte more."""
    if size is not None and size > max_bytes:
        raise NotAFileError(f"file too large ({size} bytes, limit {max_bytes})")
    data = _read_at_most(handle, max_bytes, size)
    if len(data) > max_bytes:
        raise NotAFileError(f"file too large (more than {max_bytes} bytes)")
    return data


def _read_at_most(handle: BinaryIO, max_bytes: int, expected: int | None = None) -> bytes:
    """What ``handle`` gives to its end, or its first ``max_bytes + 1`` bytes where it gives more (the caller
    refuses those).

    Read in pieces whose memory is that of the bytes received: ``handle.read(n)`` reserves ``n`` bytes before it
    reads, so one read up to a limit of 256 MiB would take that much memory for a file of a few bytes (and fail
    in a process whose memory is capped).

    Parameters
    ----------
    handle : binary file
        Open for reading.
    max_bytes : int
        The most bytes the caller accepts.
    expected : int, optional
        The size the caller expects (a regular file's ``st_size``): read in one piece, then confirmed to be the
        end. Default: pieces of 1 MiB.
    """
    pieces, total, piece = [], 0, _CHUNK if expected is None else expected
    while total <= max_bytes:
        data = handle.read(max(1, min(piece, max_bytes + 1 - total)))
        if not data:
            break
        pieces.append(data)
        total += len(data)
        piece = 1 if total == expected else _CHUNK  # at the size expected: one byte tells whether it is the end
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


#: Bytes read at a time from what is not a regular file.
_CHUNK = 2**20
#: The most bytes ``open_input`` reads from an input that is not a regular file, unless its caller says otherwise.
MAX_STREAM_BYTES = 256 * 2**20


@contextlib.contextmanager
def open_input(path: str | os.PathLike, max_stream_bytes: int = MAX_STREAM_BYTES) -> Iterator[BinaryIO]:
    """Open an input file the user named for reading, in binary mode.

    A regular file is given as it is, for the caller to read as it likes. Anything else that can be read (a FIFO,
    ``/dev/stdin``, a character device) is read to its end here, up to ``max_stream_bytes``, and given as an
    in-memory file; a longer one is refused. A FIFO is opened as ``cat`` opens it: waiting for its writer.

    Raises
    ------
    NotAFileError
        ``path`` is not a regular file and gives more than ``max_stream_bytes``; the message says so and the remedy.
    OSError
        It cannot be opened or read (``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError``; a socket
        cannot be opened).
    """
    with open(path, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if stat.S_ISREG(mode):
            yield handle
            return
        data = _read_at_most(handle, max_stream_bytes)
    if len(data) > max_stream_bytes:
        raise NotAFileError(f"is {_kind(mode)} that gives more than {max_stream_bytes} bytes, the most read from "
                            f"anything but a regular file; save it to a regular file and give that")
    yield io.BytesIO(data)


def read_input(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of an input file the user named, of any kind ``open_input`` reads, at most ``max_bytes`` of them;
    a regular file's size is checked before it is read.

    Raises
    ------
    NotAFileError
        As ``open_input``, or the file is larger than ``max_bytes``.
    OSError
        It cannot be opened or read.
    """
    with open_input(path, max_bytes) as handle:
        regular = isinstance(handle, io.BufferedReader)  # else the bytes of a stream, already read up to the limit
        return _read_whole(handle, max_bytes, os.fstat(handle.fileno()).st_size if regular else None)


def read_document(path: str | os.PathLike, what: str, error: type[Exception], max_bytes: int,
                  missing: str | None = None) -> bytes:
    """``read_input`` of a small document (a policy, a null table), its failures told by ``reading``."""
    with reading(path, what, error, missing):
        return read_input(path, max_bytes)


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str, error: type[Exception], missing: str | None = None) -> Iterator[None]:
    """Turn the failures to open or read an input file the user named into ``error``, naming the file.

    Parameters
    ----------
    path : path
    what : str
        The kind of file, as messages name it (``"policy"``, ``"gallery CSV"``).
    error : type
        The exception raised (``PolicyError``).
    missing : str, optional
        The message for a file that does not exist (default: ``"<path>: <what> file not found"``).
    """
    try:
        yield
    except FileNotFoundError:
        raise error(missing or f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what} file") from None
    except NotAFileError as exc:
        raise error(f"{path}: {exc}; expected a {what} file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} file ({exc.strerror or exc})") from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, durable: bool = True, **open_args) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path``, on error it is removed.

    The new file has the permissions a plain write would give it: those of the file it replaces, or ``0666``
    less the umask for a new file.

    Parameters
    ----------
    path : path
        The final file. Its folder is created if missing.
    mode : {"w", "wb"}
        Text or binary.
    durable : bool
        Flush the data to disk (``fsync``) before the rename, so that a power cut cannot leave an empty file.
        Cache entries that are recomputed when missing or damaged skip it: it costs a disk round trip each.
    **open_args
        Passed to ``open`` (e.g. ``newline=""``, ``encoding="utf-8"``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        keep = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:  # no file yet
        keep = None
    fd, tmp = create_temporary(path)
    try:
        if keep is not None:
            os.chmod(tmp, keep)
        with os.fdopen(fd, mode, **open_args) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: The most characters of the final file's name that a temporary file's name keeps.
_KEPT = 40


def temporary_pattern(name: str) -> re.Pattern:
    """The names ``create_temporary`` gives temporary files beside files whose names ``name`` matches.

    Parameters
    ----------
    name : str
        A regular expression of the final files' names, cut as ``create_temporary`` cuts them (to 40 characters).

    Returns
    -------
    re.Pattern
        To ``fullmatch`` a name: ``.`` + the cut name + ``.`` + 8 hex digits + ``.tmp``, and nothing else.

    Examples
    --------
    >>> bool(temporary_pattern("[0-9a-f]+").fullmatch(".6a3b.2f0006c3.tmp"))
    True
    >>> bool(temporary_pattern("[0-9a-f]+").fullmatch(".6a3b.2f0006c3.tmp.keep"))
    False
    """
    return re.compile(rf"\.(?=.{{1,{_KEPT}}}\.[0-9a-f]{{8}}\.tmp\Z)(?:{name})\.[0-9a-f]{{8}}\.tmp", re.DOTALL)


def create_temporary(path: Path) -> tuple[int, Path]:
    """A new empty file beside ``path``, created with mode 0666 so that the umask applies to it (``mkstemp``
    would make it 0600 whatever the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name[:_KEPT]}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # a name already taken: draw another
            continue


def blocking_path(folder: str | os.PathLike) -> Path | None:
    """The first of ``folder`` and its parents that exists but is not a folder (a file where a folder should be),
    or ``None``: what stops a file being created in ``folder``."""
    for candidate in (Path(os.path.abspath(folder)), *Path(os.path.abspath(folder)).parents):
        if os.path.lexists(candidate):
            return None if candidate.is_dir() else candidate
    return None


def path_or_none(value: object) -> str | os.PathLike | None:
    """A file argument given as a path, or None when it was given as an object (a table, a policy)."""
    return value if isinstance(value, (str, os.PathLike)) else None


def names_a_folder(path: object) -> bool:
    """Whether ``path`` is text ending in a path separator (``rep.html/``): it names a folder, never a file, though
    ``Path`` and ``os.path.realpath`` drop the separator. An output given so is refused, not written as ``rep.html``."""
    return isinstance(path, str) and path.endswith(tuple(filter(None, (os.sep, os.altsep))))


#: How a message names the paths ``check_path`` takes.
PATH_TYPES = "a path (str, bytes or os.PathLike)"


def check_path(value: object, name: str, others: tuple[type, ...] = (), *, optional: bool = False) -> Any:
    """A user's path argument as the text of its path: the one check of every path a public function takes.

    The text is the path as given, never normalised (a ``pathlib.Path`` would drop a trailing slash, which says "a
    folder"), but for a leading ``~`` or ``~user``, expanded as a shell would (``expand_home``): the command's path
    options expand it the same way, so that no folder named ``~`` is ever made in the current folder.

    Parameters
    ----------
    value
        What the user gave: ``str``, ``os.PathLike`` or ``bytes`` (a file name as the operating system gives it,
        decoded by ``os.fsdecode``); or an object of ``others``, or ``None`` where ``optional``, given back as it is.
    name : str
        The parameter, as messages name it (``"gallery_images"``).
    others : tuple of type
        Other types the parameter takes instead of a path (a table, an ``ImageDirectory``, a ``Policy``).
    optional : bool
        Whether ``None`` is taken (meaning "none").

    Returns
    -------
    str, or ``value`` itself where it is of ``others`` or ``None``

    Raises
    ------
    InputTypeError
        (a ``TypeError``) ``value`` of another type (a list, a ``pandas.Series``, a number, a ``dict``), naming
        ``name``, the type given and the types taken.
    InputValueError
        (a ``ValueError``) An empty path, one holding a NUL character (no file name can), or one whose ``~user``
        names no user, naming ``name``.
    """
    if (optional and value is None) or (others and isinstance(value, others)):
        return value
    text = None
    if isinstance(value, (str, bytes, os.PathLike)):
        with contextlib.suppress(TypeError):  # a PathLike whose __fspath__ gives neither str nor bytes
            text = os.fsdecode(value)
    if text is None:
        taken = [PATH_TYPES, *(kind.__name__ for kind in others), *(["None"] if optional else [])]
        taken = " or ".join([", ".join(taken[:-1]), taken[-1]] if len(taken) > 1 else taken)
        raise InputTypeError(f"{name} must be {taken}; got {type(value).__name__}")
    if not text:
        raise InputValueError(f"{name} is an empty path; give a file or folder name")
    if "\x00" in text:
        raise InputValueError(f"{name} {shorten(text)!r} holds a NUL character, which no file name can hold")
    return expand_home(text, name)


def expand_home(text: str, name: str) -> str:
    """``text`` with a leading ``~`` or ``~user`` replaced by that home folder (``os.path.expanduser``), as a shell
    would; any other path as it is. The one rule of every path a user gives (``check_path``, the command's path
    options), so that ``--cache-dir=~/c``, which the shell leaves as written, never makes a folder named ``~``.

    Parameters
    ----------
    text : str
        The path as the user wrote it.
    name : str
        The parameter or option, as messages name it.

    Returns
    -------
    str
        The path, its home folder expanded.

    Raises
    ------
    InputValueError
        (a ``ValueError``) ``~user`` names no user (or ``~`` no home folder), naming ``name``.

    Examples
    --------
    >>> expand_home("a/~/b", "output")
    'a/~/b'
    """
    if not text.startswith("~"):
        return text
    expanded = os.path.expanduser(text)
    if expanded.startswith("~"):
        head = re.split(r"[/\\]" if os.altsep else "/", text, maxsplit=1)[0]
        raise InputValueError(f"{name} {shorten(text)!r}: {shorten(head)!r} names no user's home folder; give the "
                              f"folder's full path")
    return expanded
