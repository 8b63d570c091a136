"""delfverify.exits: how the command ends (issue #19). SIGTERM and SIGHUP stop it as SIGINT does, with every cleanup
run; a file system error no layer described is one line naming its file and a remedy chosen by its errno; a
current folder that no longer exists is named before any work."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE

from delfverify import cli, pipeline
from delfverify.exits import STOP_SIGNALS, Stopped, exit_status, orderly_stops
from delfverify.outputs.write import remedy

#: Runs the command, sending itself a signal right after the AT-th fsync: inside the output layer's write phase.
STOPPER = """
import os, signal, sys
from delfverify import cli
count, fsync = [0], os.fsync
def stopping_fsync(fd):
    fsync(fd)
    count[0] += 1
    if count[0] == {at}:
        os.kill(os.getpid(), signal.{signal})
os.fsync = stopping_fsync
sys.exit(cli.main(sys.argv[1:]))
"""


def _rerank_argv(root: Path, out: Path, policy: str) -> list[str]:
    return ["rerank", str(root / "p.csv"), "--gallery", str(SAMPLE / "gallery.csv"), "--gallery-images",
            str(SAMPLE / "gallery"), "--query-images", str(SAMPLE / "queries"), "--cache-dir", str(root / "cache"),
            "-o", str(out / "out.csv"), "--details", str(out / "det.csv"), "--report", str(out / "r.html"),
            "--workers", "1", "-q", "--policy", policy]


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, hidden ones included, with its bytes."""
    return {os.path.relpath(os.path.join(top, name), folder): Path(top, name).read_bytes()
            for top, _, names in os.walk(folder) for name in names}


@pytest.fixture(scope="module")
def earlier(sample_run, tmp_path_factory):
    """Three predictions, a warm cache, the outputs of a finished run (``earlier/``), and how many files the run
    the tests stop (another policy, so other outputs) flushes to disk in its write phase."""
    root = tmp_path_factory.mktemp("stops")
    rows = (SAMPLE / "predictions.csv").read_text().splitlines()[:4]
    (root / "p.csv").write_text("\n".join(rows) + "\n")
    sample_run.warm_cache(root / "cache")
    fsync, count = os.fsync, [0]

    def counting_fsync(fd):
        fsync(fd)
        count[0] += 1

    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(_rerank_argv(root, root / "earlier", "default")) == 0
        os.fsync = counting_fsync
        try:
            assert cli.main(_rerank_argv(root, root / "counted", "seed")) == 0
        finally:
            os.fsync = fsync
    assert count[0] >= 5 and any(name.endswith(".jpg") for name in _files(root / "counted"))
    return root, count[0]


@pytest.mark.parametrize("point", ["first", "middle", "last"])
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_stop_signal_in_the_write_phase_leaves_no_temporary_file_and_the_earlier_outputs(earlier, tmp_path,
                                                                                          signame, point):
    root, fsyncs = earlier
    at = {"first": 1, "middle": fsyncs // 2, "last": fsyncs}[point]
    out = Path(shutil.copytree(root / "earlier", tmp_path / "out"))
    before = _files(tmp_path)
    result = subprocess.run([sys.executable, "-c", STOPPER.format(at=at, signal=signame),
                             *_rerank_argv(root, out, "seed")], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    signum = getattr(signal, signame)
    assert result.returncode == 128 + signum, result.stderr
    assert result.stderr.splitlines()[-1] == f"delfverify: stopped by {signame}" and "Traceback" not in result.stderr
    assert _files(tmp_path) == before  # no temporary file, no half-written picture, every earlier output whole
    assert not [name for name in _files(root / "cache") if name.endswith(".tmp")]


def test_orderly_stops_raise_a_keyboard_interrupt_once_and_put_the_handlers_back():
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    with pytest.raises(Stopped) as stopped:
        with orderly_stops():
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0) if hasattr(signal, "sigtimedwait") else None
    assert isinstance(stopped.value, KeyboardInterrupt) and exit_status(stopped.value) == 128 + signal.SIGTERM
    assert exit_status(KeyboardInterrupt()) == 130
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before


ERRNOS = [errno.ENOENT, errno.EMFILE, errno.ENFILE, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM,
          errno.EROFS, errno.ENAMETOOLONG, errno.EIO, errno.EXDEV, errno.ENOTDIR]


@pytest.mark.parametrize("names", [(), ("/data/in.csv",), ("/data/.out.csv.x.tmp", "/data/out.csv")])
@pytest.mark.parametrize("code", ERRNOS, ids=errno.errorcode.get)
def test_an_os_error_names_its_files_and_a_remedy_by_errno(monkeypatch, tmp_path, capsys, code, names):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code), *names[:1], *((None, names[1]) if len(names) > 1 else ()))

    monkeypatch.setattr(pipeline, "rerank", fail)
    status = cli.main(["rerank", str(tmp_path / "p.csv"), "--gallery", str(tmp_path / "g.csv"), "--gallery-images",
                       str(tmp_path), "--query-images", str(tmp_path), "-o", str(tmp_path / "o.csv"), "-q"])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("delfverify: error: "), err
    assert all(name in lines[0] for name in names) and (names or "(the system named no file)" in lines[0])
    assert os.strerror(code) in lines[0]
    if code in (errno.EMFILE, errno.ENFILE):
        assert "ulimit -n" in lines[0] and "fewer --workers" in lines[0]
    else:
        assert lines[0].endswith(remedy(OSError(code, "")) or "check the path and its permissions"), lines[0]


@pytest.mark.parametrize("relative", [True, False])
def test_a_removed_current_folder_is_named(monkeypatch, tmp_path, capsys, relative):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    if not relative:  # every path absolute: a file system error that names no file is the current folder's
        monkeypatch.setattr(pipeline, "rerank", lambda *a, **k: os.getcwd())
    output = "rel.csv" if relative else str(tmp_path / "o.csv")
    status = cli.main(["rerank", str(SAMPLE / "predictions.csv"), "--gallery", str(SAMPLE / "gallery.csv"),
                       "--gallery-images", str(SAMPLE / "gallery"), "--query-images", str(SAMPLE / "queries"),
                       "-o", output, "-q"])
    lines = capsys.readouterr().err.splitlines()
    assert status == 2 and len(lines) == 1
    assert lines[0].startswith("delfverify: error: rel.csv: a relative path, but " if relative else
                               "delfverify: error: the current folder no longer exists")
    assert "cd to a folder that exists, or give absolute paths" in lines[0]
    assert os.listdir(tmp_path) == []  # checked before any work: not even the cache folder


#: Runs ``gap``, sending itself a signal at POINT, early in parsing the options (issue: a stop while parsing was a
#: traceback). SIGINT is given Python's own handler, as in a terminal (a background job may inherit it ignored).
PARSING_STOPPER = """
import argparse, os, signal, sys, time
from delfverify import cli
signal.signal(signal.SIGINT, signal.default_int_handler)
def stopping(function):
    def stop_first(*args, **kwargs):
        os.kill(os.getpid(), signal.{signal})
        time.sleep(30)  # the signal interrupts the sleep
        return function(*args, **kwargs)
    return stop_first
if "{point}" == "build_parser":
    cli.build_parser = stopping(cli.build_parser)
else:
    argparse.ArgumentParser.parse_known_args = stopping(argparse.ArgumentParser.parse_known_args)
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("point", ["build_parser", "parse_args"])
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_signal_while_parsing_the_options_is_one_line_and_its_exit_status(signame, point):
    result = subprocess.run([sys.executable, "-c", PARSING_STOPPER.format(point=point, signal=signame), "gap",
                             str(SAMPLE / "predictions.csv"), "--truth", str(SAMPLE / "truth.csv")],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    said = "interrupted" if signame == "SIGINT" else f"stopped by {signame}"
    assert (result.returncode, result.stderr) == (128 + getattr(signal, signame), f"delfverify: {said}\n")
    assert result.stdout == ""


#: Imports the command as the ``delfverify`` script does, sending itself a signal when Python looks for
#: ``delfverify.cli`` (the import the command starts with).
IMPORT_STOPPER = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
class Stopper:
    def find_spec(self, name, path=None, target=None):
        if name == "delfverify.cli":
            os.kill(os.getpid(), signal.{signal})
            time.sleep(30)  # the signal interrupts the sleep
        return None
sys.meta_path.insert(0, Stopper())
from delfverify.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_signal_while_the_command_is_imported_is_one_line_or_silent(signame):
    """Ctrl-C: one line, 130; SIGTERM and SIGHUP: their default, silent, 128 + the signal (nothing written yet)."""
    result = subprocess.run([sys.executable, "-c", IMPORT_STOPPER.format(signal=signame), "--version"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    number = getattr(signal, signame)
    expected = (130, "delfverify: interrupted\n") if signame == "SIGINT" else (-number, "")
    assert (result.returncode, result.stderr, result.stdout) == (*expected, "")
