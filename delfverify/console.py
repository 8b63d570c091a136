"""What the ``delfverify`` command lets reach the terminal: its own log, and what the libraries under it say.

Only the command configures anything here (``cli.main`` through ``command_output``); a program that imports
delfverify keeps its own logging, environment and warnings untouched. The command's verbosity sets, for the run:

- ``-q``: delfverify's warnings and errors; nothing from other libraries (their Python loggers off, Python
  warnings off, ``TF_CPP_MIN_LOG_LEVEL=3``, ``OPENCV_LOG_LEVEL=SILENT``);
- default: delfverify's info, warnings and errors; other libraries' warnings and errors (loggers at WARNING,
  ``TF_CPP_MIN_LOG_LEVEL=1``, ``OPENCV_LOG_LEVEL=WARNING``);
- ``-v``: everything (all loggers at DEBUG, ``TF_CPP_MIN_LOG_LEVEL=0``, ``OPENCV_LOG_LEVEL=DEBUG``).

Environment variables that TensorFlow and OpenCV read when they load are set before anything imports them. An
explicit ``-q`` or ``-v`` overrides them; at the default verbosity a value the user set is kept. Python warnings
(Pillow's decoder warnings among them) are logged by the ``py.warnings`` logger.

TensorFlow's shared libraries print notices while they load, before TF_CPP_MIN_LOG_LEVEL applies to them
(oneDNN, "could not find cuda drivers": once per library that carries TensorFlow's logging, hence twice), and an
error when they look for GPUs ("failed call to cuInit"). ``native_output_logged`` wraps those moments (import and
GPU set-up, model load: ``extractors.delf``): under the command, what is written to file descriptor 2 meanwhile is
collected, then logged by the ``tensorflow.native`` logger at each line's level (I, W, E, F), a notice repeated
word for word once; a line in no known format right after one of TensorFlow's continues its message (absl prints
multi-line messages so). Outside the command it does nothing. Other lines (Python's own log lines written
meanwhile, anything unknown) are written back unchanged, never swallowed; a process that crashes
meanwhile still shows Python's fatal-error report on the real standard error.

The cuInit failure is logged as information, not as an error, once TensorFlow has said that it found no CUDA
driver: that is a machine without a GPU, where running on the CPU is expected and the line only alarms. Where a
driver was found and cuInit still fails, a GPU that is there cannot be used and DELF falls back to the much slower
CPU: that stays an error, which the default verbosity shows.

Under the command, a character that standard output or standard error cannot encode is written as its escape
(``\\udcff``, ``\\u00e9``) instead of stopping the command with ``UnicodeEncodeError``: a byte of a file name that
is not UTF-8 (Python holds it as a lone surrogate), or any non-ASCII text on an ASCII terminal.

Worker processes the command starts inherit its environment, which names the verbosity; ``configure_worker``
(their initializer) sets the same routing there.
"""

from __future__ import annotations

import faulthandler
import functools
import io
import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass

QUIET, DEFAULT, VERBOSE = "quiet", "default", "verbose"
VERBOSITIES = (QUIET, DEFAULT, VERBOSE)

#: Python loggers of the libraries delfverify runs on; each gets the third-party level explicitly, because a
#: library may have set its own.
THIRD_PARTY_LOGGERS = ("tensorflow", "absl", "keras", "tf_keras", "h5py", "PIL", "py.warnings")
#: The logger of TensorFlow's C++ lines collected by ``native_output_logged``.
NATIVE_LOGGER = "tensorflow.native"
FORMAT = "%(levelname)s %(name)s: %(message)s"
_OFF = logging.CRITICAL + 1
#: Tells worker processes started by the command its verbosity (they inherit the environment).
_VERBOSITY_ENV = "_DELFVERIFY_COMMAND_VERBOSITY"


@dataclass(frozen=True)
class Levels:
    """What one verbosity lets through: delfverify's level, the other libraries' level, and the settings that
    TensorFlow's C++ log (``TF_CPP_MIN_LOG_LEVEL``) and OpenCV (``OPENCV_LOG_LEVEL`` and its number) read."""

    own: int
    third_party: int
    tf_cpp: str
    opencv: str
    opencv_number: int


LEVELS = {
    QUIET: Levels(logging.WARNING, _OFF, "3", "SILENT", 0),
    DEFAULT: Levels(logging.INFO, logging.WARNING, "1", "WARNING", 3),
    VERBOSE: Levels(logging.DEBUG, logging.DEBUG, "0", "DEBUG", 5),
}

_active: Levels | None = None  # set while the command's routing is in force in this process
_capture_lock = threading.RLock()
_capturing = False
_no_cuda_driver = False  # TensorFlow said it found no CUDA driver: its cuInit failure is then expected


@contextmanager
def command_output(verbosity: str) -> Iterator[None]:
    """The command's routing of messages for the duration of a run; everything it changed is put back after.

    Raises
    ------
    ValueError
        If ``verbosity`` is not one of ``VERBOSITIES``.
    """
    if verbosity not in LEVELS:
        raise ValueError(f"verbosity must be one of {', '.join(VERBOSITIES)}, got {verbosity!r}")
    with ExitStack() as undo:
        _apply(verbosity, undo.callback)
        yield


def configure_worker() -> None:
    """In a worker process the command started, its routing for the life of the process; elsewhere nothing."""
    verbosity = os.environ.get(_VERBOSITY_ENV)
    if verbosity in LEVELS and _active is None:
        _apply(verbosity, lambda *_: None)


def _apply(verbosity: str, undo: Callable) -> None:
    """Route messages as ``verbosity`` says; ``undo(function, *args)`` is given what puts each change back."""
    levels = LEVELS[verbosity]
    explicit = verbosity != DEFAULT
    for name, value in (("TF_CPP_MIN_LOG_LEVEL", levels.tf_cpp), ("OPENCV_LOG_LEVEL", levels.opencv),
                        (_VERBOSITY_ENV, verbosity)):
        if explicit or name == _VERBOSITY_ENV or name not in os.environ:
            undo(_restore_env, name, os.environ.get(name))
            os.environ[name] = value
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
        undo(root.removeHandler, handler)
    for logger, level in ((root, levels.third_party), (logging.getLogger("delfverify"), levels.own),
                          *((logging.getLogger(name), levels.third_party) for name in THIRD_PARTY_LOGGERS)):
        undo(logger.setLevel, logger.level)
        logger.setLevel(level)
    undo(setattr, warnings, "showwarning", warnings.showwarning)
    warnings.showwarning = _log_warning
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 must not stop a message
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            undo(functools.partial(stream.reconfigure, errors="strict"))
            stream.reconfigure(errors="backslashreplace")
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and hasattr(cv2, "utils") and hasattr(cv2.utils, "logging"):  # loaded before the env
        undo(cv2.utils.logging.setLogLevel, cv2.utils.logging.getLogLevel())
        cv2.utils.logging.setLogLevel(levels.opencv_number)
    undo(_set_active, _active)
    _set_active(levels)


def _set_active(levels: Levels | None) -> None:
    global _active
    _active = levels


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


_original_showwarning = warnings.showwarning


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` under the command: a warning is one line of the ``py.warnings`` logger."""
    if file is not None:  # written to a file the caller chose
        _original_showwarning(message, category, filename, lineno, file, line)
        return
    logging.getLogger("py.warnings").warning("%s: %s (%s:%s)", category.__name__, message, filename, lineno)


@contextmanager
def native_output_logged() -> Iterator[None]:
    """Under the command, what is written to file descriptor 2 meanwhile is logged afterwards, line by line at
    its level (see the module's docstring); otherwise, or when already collecting, nothing is done."""
    global _capturing
    if _active is None:
        yield
        return
    with _capture_lock:
        if _capturing:
            yield
            return
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no standard error to redirect
            yield
            return
        guard_crashes = not faulthandler.is_enabled()  # one already set up (python -X faulthandler) is left as it is
        with tempfile.TemporaryFile() as sink:  # a file, not a pipe: nothing can block however much is written
            try:
                os.dup2(sink.fileno(), 2)
                if guard_crashes:
                    faulthandler.enable(saved)  # a crash meanwhile is still reported where the user sees it
                _capturing = True
                yield
            finally:
                _capturing = False
                with suppress(OSError, ValueError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                if guard_crashes:
                    faulthandler.disable()
                os.close(saved)
                sink.seek(0)
                log_native_output(sink.read().decode("utf-8", "replace"))


#: A line of TensorFlow's C++ log (absl's format): severity, date, time, thread, file:line, message.
_NATIVE_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([^\s\]]+)\] ?(.*)$")
#: absl's notice that logging is not set up yet: about absl, not about the run.
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
#: A line this module's own handler wrote (Python logging meanwhile): written back as it is.
_PYTHON_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
_SEVERITY = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}


def log_native_output(text: str) -> None:
    """Log collected standard-error ``text``: TensorFlow's lines by the ``tensorflow.native`` logger at their
    level (repeats of a line once; continuation lines with the line they continue; absl's "before
    absl::InitializeLog()" notice at debug; "failed call to cuInit" at info once TensorFlow has said it found no
    CUDA driver, as on a machine without a GPU); any other line written back to standard error unchanged."""
    global _no_cuda_driver
    records: list[list] = []  # [level, source, lines]
    current = None
    for line in text.splitlines():
        match = _NATIVE_LINE.match(line)
        if match:
            severity, source, message = match.groups()
            current = [_SEVERITY[severity], source, [message]]
            records.append(current)
        elif line == _ABSL_BANNER:
            current = None
            records.append([logging.DEBUG, "absl", [line]])
        elif current is not None and line and not _PYTHON_LINE.match(line):
            current[2].append(line)
        else:
            current = None
            records.append([None, None, [line]])
    logger = logging.getLogger(NATIVE_LOGGER)
    seen = set()
    for level, source, lines in records:
        message = "\n".join(lines)
        if level is None:
            sys.stderr.write(message + "\n")
            continue
        if (level, source, message) in seen:
            continue
        seen.add((level, source, message))
        if "Could not find cuda drivers" in message:
            _no_cuda_driver = True
        if "failed call to cuInit" in message and _no_cuda_driver and level == logging.ERROR:
            level = logging.INFO
        logger.log(level, "%s (%s)", message, source)
