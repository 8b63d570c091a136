"""delfverify.fileio: a file is replaced whole or not at all, no temporary file is left behind, written files get
the permissions a plain write gives; photos and cache entries are read only from regular files, never past a size
limit; inputs the user named are also read from FIFOs and devices, up to a limit; outputs that would overwrite an
input or each other, or cannot be written, are refused before anything is written (planned by
``delfverify.outputs``; the rest of the output layer is tested in tests/test_outputs.py)."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from delfverify.fileio import NotAFileError, atomic_write, open_input, read_input, read_regular_file
from delfverify.outputs import OutputError, OutputPlan


def test_atomic_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_write(target, "w", encoding="utf-8") as handle:
        handle.write("first\n")
    with atomic_write(target, "wb") as handle:
        handle.write(b"second\n")
    assert target.read_bytes() == b"second\n"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_a_failure_while_writing_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_write(target, "w") as handle:
            handle.write("new and incomplete")
            raise RuntimeError("half-way")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_refuses_other_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass


def test_only_durable_writes_wait_for_the_disk(tmp_path, monkeypatch):
    import os

    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    with atomic_write(tmp_path / "a", "w") as handle:
        handle.write("kept across a power cut")
    with atomic_write(tmp_path / "b", "w", durable=False) as handle:
        handle.write("a cache entry, recomputed if lost")
    assert len(synced) == 1
    assert (tmp_path / "b").read_text() == "a cache entry, recomputed if lost"


# --- permissions of written files -------------------------------------------------------------------------------

@contextlib.contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_mode_a_plain_write_gives(tmp_path, mask):
    with _umask(mask):
        with atomic_write(tmp_path / "new.csv", "w") as handle:
            handle.write("x\n")
        with open(tmp_path / "plain.csv", "w") as handle:
            handle.write("x\n")
    assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o666 & ~mask
    assert (tmp_path / "new.csv").stat().st_mode == (tmp_path / "plain.csv").stat().st_mode


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o600, 0o444])
def test_a_replaced_file_keeps_its_mode(tmp_path, mode):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    target.chmod(mode)
    with _umask(0o022), atomic_write(target, "w") as handle:
        handle.write("new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == mode


# --- reading only regular files ---------------------------------------------------------------------------------

def _read_in_thread(path, max_bytes=1 << 20):
    """``read_regular_file`` in a daemon thread: a read that blocked would leave the thread alive (asserted)."""
    outcome = {}

    def run():
        try:
            outcome["data"] = read_regular_file(path, max_bytes)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), f"reading {path} blocked"
    return outcome


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    error = _read_in_thread(fifo)["error"]
    assert isinstance(error, NotAFileError) and "FIFO" in str(error)


@pytest.mark.parametrize("path, kind", [("folder", "a directory"), ("/dev/zero", "a character device")])
def test_directories_and_devices_are_refused_unread(tmp_path, path, kind):
    target = tmp_path / path
    if path == "folder":
        target.mkdir()
    error = _read_in_thread(target)["error"]
    assert isinstance(error, NotAFileError) and str(error) == f"is {kind}, not a regular file"


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path):
    sparse = tmp_path / "huge.jpg"
    with open(sparse, "wb") as handle:
        handle.truncate(40 * 2**30)  # 40 GiB of holes: reading it whole would exhaust the memory
    error = _read_in_thread(sparse, max_bytes=2**20)["error"]
    assert isinstance(error, NotAFileError)
    assert str(error) == f"file too large ({40 * 2**30} bytes, limit {2**20})"
    small = tmp_path / "small.jpg"
    small.write_bytes(b"x" * 2**20)
    assert read_regular_file(small, 2**20) == b"x" * 2**20  # exactly at the limit: read


def test_missing_and_linked_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "absent.jpg", 100)
    (tmp_path / "real.jpg").write_bytes(b"data")
    (tmp_path / "link.jpg").symlink_to(tmp_path / "real.jpg")
    assert read_regular_file(tmp_path / "link.jpg", 100) == b"data"


# --- inputs the user named: regular files as they are, anything else up to a limit --------------------------------

def _write_fifo_in_thread(fifo: Path, data: bytes) -> threading.Thread:
    def write():
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as handle:
            handle.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_an_input_from_a_fifo_is_read_up_to_the_limit(tmp_path):
    fifo = tmp_path / "predictions.csv"
    os.mkfifo(fifo)
    writer = _write_fifo_in_thread(fifo, b"id,landmarks\n" * 1000)
    with open_input(fifo, max_stream_bytes=13_000) as handle:
        assert handle.read() == b"id,landmarks\n" * 1000
    writer.join(timeout=60)
    writer = _write_fifo_in_thread(fifo, b"x" * 13_001)
    with pytest.raises(NotAFileError, match=r"^is a FIFO \(named pipe\) that gives more than 13000 bytes, the most "
                                            r"read from anything but a regular file; save it to a regular file"):
        read_input(fifo, 13_000)
    writer.join(timeout=60)


def test_dev_zero_as_an_input_ends_quickly_in_an_error_naming_the_limit():
    started = time.perf_counter()
    with pytest.raises(NotAFileError, match=r"^is a character device that gives more than 268435456 bytes"):
        with open_input("/dev/zero"):
            pass
    assert time.perf_counter() - started < 20
    assert read_input("/dev/null", 10) == b""


def test_a_regular_input_is_given_as_it_is_and_other_kinds_refused(tmp_path):
    (tmp_path / "p.csv").write_bytes(b"x" * 100)
    with open_input(tmp_path / "p.csv", max_stream_bytes=10) as handle:  # no limit on regular files
        assert handle.read() == b"x" * 100 and handle.seekable()
    with pytest.raises(NotAFileError, match="file too large"):
        read_input(tmp_path / "p.csv", 99)
    assert read_input(tmp_path / "p.csv", 100) == b"x" * 100
    with pytest.raises(IsADirectoryError):
        read_input(tmp_path, 10)
    with pytest.raises(FileNotFoundError):
        read_input(tmp_path / "absent.csv", 10)


# --- outputs checked before any work ------------------------------------------------------------------------------

def _plan_files(outputs, inputs=()) -> None:
    """Plan file outputs, in order, against inputs (``delfverify.outputs.OutputPlan``): nothing is written."""
    plan = OutputPlan(inputs)
    for name, path in outputs:
        plan.file(name, path)


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


#: A child process whose memory is capped a little above what it holds, then reads a small file by every reader.
_CAPPED_READS = """
import os, resource, sys
from delfverify.fileio import read_input, read_regular_file
from delfverify.images import MAX_FILE_BYTES
held = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (held + 96 * 2**20, resource.RLIM_INFINITY))
path = sys.argv[1]
read, write = os.pipe()
os.write(write, b"p" * 403)
os.close(write)
sizes = [len(read_regular_file(path, MAX_FILE_BYTES)), len(read_input(path, MAX_FILE_BYTES)),
         len(read_input(f"/dev/fd/{read}", MAX_FILE_BYTES))]
print(sizes)
"""


def test_every_reader_takes_the_memory_of_what_it_reads_not_of_its_limit(tmp_path):
    """The kind: a reader whose limit is 256 MiB (photos; any input given as a stream) reserved that much for each
    file it read, so a 403-byte photo was a ``MemoryError`` in a process capped at 800 MB. Here a process capped
    at 96 MiB above what it holds reads a small file by each reader: a regular file by its size, a stream in
    pieces."""
    (tmp_path / "small.jpg").write_bytes(b"j" * 403)
    run = subprocess.run([sys.executable, "-c", _CAPPED_READS, str(tmp_path / "small.jpg")], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["[403,", "403,", "403]"]


def test_outputs_that_are_an_input_are_refused_through_any_path(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    predictions = data / "predictions.csv"
    predictions.write_text("id,landmarks\n")
    (tmp_path / "link.csv").symlink_to(predictions)
    os.link(predictions, tmp_path / "hard.csv")
    (data / "sub").mkdir()
    before = _listing(tmp_path)
    for spelling in [predictions, data / "sub" / ".." / "predictions.csv", tmp_path / "link.csv",
                     tmp_path / "hard.csv", Path(os.path.relpath(predictions))]:
        with pytest.raises(OutputError) as error:
            _plan_files([("the output", spelling)], [("the predictions file", predictions)])
        assert str(error.value) == (f"{spelling}: the output would overwrite the predictions file ({predictions}), "
                                    f"the same file; choose another path")
    assert _listing(tmp_path) == before


def test_outputs_that_collide_with_each_other_are_refused(tmp_path):
    with pytest.raises(OutputError, match="the details file would overwrite the output"):
        _plan_files([("the output", tmp_path / "out.csv"), ("the details file", tmp_path / "x" / ".." / "out.csv")])
    (tmp_path / "link.csv").symlink_to(tmp_path / "not-yet.csv")  # a link to a file not written yet
    with pytest.raises(OutputError, match="the details file would overwrite the output"):
        _plan_files([("the output", tmp_path / "not-yet.csv"), ("the details file", tmp_path / "link.csv")])
    _plan_files([("the output", tmp_path / "out.csv"), ("the details file", tmp_path / "details.csv"),
                   ("the plot", None)], [("the gallery file", None)])
    assert _listing(tmp_path) == ["link.csv"]  # nothing created, not even the missing folder "x"


def test_outputs_that_cannot_be_written_are_refused(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.csv").write_text("a file, not a folder\n")
    with pytest.raises(OutputError, match=r"folder: the output is a directory; give a file name"):
        _plan_files([("the output", tmp_path / "folder")])
    with pytest.raises(OutputError, match=r"cannot write the output: .*file.csv is not a directory"):
        _plan_files([("the output", tmp_path / "file.csv" / "deeper" / "out.csv")])
    _plan_files([("the output", tmp_path / "new" / "deeper" / "out.csv")])  # missing folders are created when written
    assert not (tmp_path / "new").exists()


def _in_unprivileged_child(function) -> str:
    """Run ``function()`` in a forked child; as root, the child first becomes user and group 65534 (nobody), so
    that file permissions apply. Returns the child's error message ("" when it raised nothing)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 0
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            try:
                function()
            except OutputError as exc:
                os.write(write, str(exc).encode())
        except BaseException:  # noqa: BLE001 - anything else fails the test through the exit status
            status = 1
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as handle:
        message = handle.read().decode()
    assert os.waitpid(pid, 0)[1] == 0
    return message


def test_outputs_without_write_permission_are_refused():
    # Under /tmp rather than tmp_path: the unprivileged child must be able to reach the folders.
    with tempfile.TemporaryDirectory(dir="/tmp") as root:
        root = Path(root)
        root.chmod(0o755)
        open_folder, closed_folder = root / "open", root / "closed"
        open_folder.mkdir(mode=0o777)
        open_folder.chmod(0o777)
        closed_folder.mkdir()
        closed_folder.chmod(0o555)
        read_only = open_folder / "read-only.csv"
        read_only.write_text("keep me\n")
        read_only.chmod(0o444)
        assert _in_unprivileged_child(lambda: _plan_files([("the output", open_folder / "out.csv")])) == ""
        assert _in_unprivileged_child(lambda: _plan_files([("the output", closed_folder / "out.csv")])) == (
            f"{closed_folder / 'out.csv'}: no permission to write the output in {closed_folder}")
        assert _in_unprivileged_child(lambda: _plan_files([("the output", closed_folder / "a" / "b.csv")])) == (
            f"{closed_folder / 'a' / 'b.csv'}: no permission to write the output in {closed_folder}")
        assert _in_unprivileged_child(lambda: _plan_files([("the output", read_only)])) == (
            f"{read_only}: no permission to write the output")
        assert read_only.read_text() == "keep me\n"
