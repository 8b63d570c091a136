"""How the ``delfverify`` command ends: signals that stop it in order, and file system errors told in one line.

Only the command configures anything here (``cli.main``); a program that imports delfverify keeps its own signal
handlers.

**Signals.** SIGINT (Ctrl-C) raises ``KeyboardInterrupt`` in the main thread, so every cleanup runs: the output
layer removes its temporary files (``delfverify.outputs.write_outputs``), the pool of workers is shut down, the
journal is closed. ``orderly_stops`` gives SIGTERM (``kill``, a scheduler's time limit) and SIGHUP (a closed
terminal or SSH session) the same stop: ``Stopped``, a ``KeyboardInterrupt``, raised in the main thread; without
it they end the process at once and leave hidden temporary files behind. The first signal stops the command;
another one of these two while the cleanup runs is ignored (SIGINT and SIGKILL still end it). The command then
exits with ``128 + the signal's number``, as a shell reports a process the signal ended (130, 143, 129).

**File system errors.** An ``OSError`` that no layer described (an output's failure is an ``OutputError``, an
input's a ``TableError`` ...) is told by ``describe_os_error``: the file it names and a remedy chosen by its errno
(the output layer's wording, ``delfverify.outputs.write.remedy``; too many open files; a current folder that no
longer exists, which ``check_working_folder`` also checks before any work).
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from .errors import DelfverifyError

#: The signals that stop the command as SIGINT does (those the platform has).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_GONE = "the current folder no longer exists (it was removed or moved): cd to a folder that exists, or give "\
        "absolute paths"


class Stopped(KeyboardInterrupt):
    """The command was stopped by a signal (``signum``); a ``KeyboardInterrupt``, so that whatever cleans up after
    Ctrl-C cleans up after it."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def exit_status(stop: KeyboardInterrupt) -> int:
    """``128 + the signal's number`` for a stop (SIGINT's for a plain ``KeyboardInterrupt``)."""
    return 128 + getattr(stop, "signum", signal.SIGINT)


def describe_stop(stop: KeyboardInterrupt) -> str:
    """What stopped the command, for its last line: ``interrupted`` (SIGINT) or ``stopped by SIGTERM``."""
    return str(stop) if isinstance(stop, Stopped) else "interrupted"


@contextmanager
def orderly_stops() -> Iterator[None]:
    """For its duration, ``STOP_SIGNALS`` raise ``Stopped`` in the main thread (once); the handlers that were there
    are put back after. Outside the main thread (where Python cannot handle signals) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = []

    def stop(signum, frame):
        if not stopping:  # a second signal must not interrupt the cleanup the first one started
            stopping.append(signum)
            raise Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def working_folder_exists() -> bool:
    """Whether the current folder still exists (``os.getcwd`` fails once it was removed)."""
    try:
        os.getcwd()
    except FileNotFoundError:
        return False
    return True


def check_working_folder(paths: Iterable[str | os.PathLike | None]) -> None:
    """Refuse relative ``paths`` (``None`` and ``-`` are skipped) when the current folder no longer exists: they
    name nothing, and the command would fail later, naming no file.

    Raises
    ------
    DelfverifyError
        Naming the first relative path and the remedy.
    """
    relative = [p for p in paths if p is not None and os.fspath(p) != "-" and not os.path.isabs(p)]
    if relative and not working_folder_exists():
        raise DelfverifyError(f"{os.fspath(relative[0])}: a relative path, but {_GONE}")


def describe_os_error(exc: OSError) -> str:
    """One line for a file system error: the file(s) it names, what happened and what to do about it.

    Examples
    --------
    >>> describe_os_error(PermissionError(errno.EACCES, "Permission denied", "out.csv"))
    'out.csv: Permission denied; make its folder writable, or choose another path'
    """
    from .outputs.write import remedy

    names = [os.fsdecode(n) if isinstance(n, bytes) else str(n) for n in (exc.filename, exc.filename2)
             if n is not None]
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        limit = _open_file_limit()
        advice = (f"raise the limit of open files (ulimit -n{f', now {limit}' if limit else ''}), or use fewer "
                  f"--workers")
    elif exc.errno == errno.ENOENT and not working_folder_exists():
        advice = _GONE
    else:
        advice = remedy(exc) or "check the path and its permissions"
    if not names:  # the system named no file: the current folder, or none in particular
        return advice if advice == _GONE else f"{reason} (the system named no file); {advice}"
    return f"{' -> '.join(names)}: {reason}; {advice}"


def _open_file_limit() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft
