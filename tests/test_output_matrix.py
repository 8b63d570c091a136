"""The output matrix of issue #19: every output the tool writes, against every kind of path a hostile user may give
for it, through the command line on a tiny warm-cache run of the sample data.

Outputs: ``rerank -o``, ``--details``, ``--report`` and the report's pictures folder, ``verify --plot``, ``tune -o``
and ``--plot``, the cache folder and the journal. Kinds: an input, another output, a symbolic link to a folder of
the user's, a character device, a FIFO with a reader, a file where a folder goes, a folder where a file goes, a
read-only folder, a full disk, a path ending in a separator (``rep.html/``, which named the file ``rep.html``).

Each case checks the exit status and the one error line, and that nothing else changed: every file, link and node
under the test's folder (the user's, the old outputs, the device, a full disk's) is as it was when the command is
refused or fails, and the inputs always. Streams (a device, a FIFO) are written into and stay what they were.

The read-only folder and the full disk are real small tmpfs mounts where the tests may mount (root); elsewhere the
read-only folder is a folder without write permission (not as root: skipped), and the full disk an ``ENOSPC``
injected into the output layer's writes (the cache and journal rows, which SQLite and the store write, are then
skipped: tests/test_reliability.py injects those). Device nodes are made with ``os.mknod`` in the test's folder
only, as root; elsewhere those cases are skipped.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import SAMPLE, FifoReader

from delfverify import cli
from delfverify.outputs import MANIFEST
from delfverify.outputs import write as write_module

OUTPUTS = ("rerank -o", "rerank --details", "rerank --report", "pictures folder", "verify --plot", "tune -o",
           "tune --plot", "cache folder", "journal")
KINDS = ("input", "another output", "link to a user folder", "character device", "FIFO with a reader",
         "file where a folder goes", "folder where a file goes", "read-only folder", "full disk", "trailing slash")
#: Outputs written into a device or a FIFO (the others are refused there), and what such a stream receives.
STREAMED = {"rerank -o": b"id,landmarks\n", "rerank --details": b"id,label,band,", "verify --plot": b"\x89PNG",
            "tune -o": b"{\n", "tune --plot": b"\x89PNG"}
ROWS = 3  # predictions of the tiny run

#: (output, kind) -> words of the one error line; the other cases succeed.
REFUSED = {
    **{(o, "input"): "would overwrite" for o in OUTPUTS},
    ("pictures folder", "input"): "the report's pictures folder holds the query image folder",
    ("cache folder", "input"): "the cache folder would be written into the query image folder",
    **{(o, "another output"): "would overwrite" for o in OUTPUTS},
    ("rerank -o", "another output"): "the details file would overwrite the output",
    ("pictures folder", "another output"): "the report's pictures folder would hold the details file",
    ("verify --plot", "another output"): "the plot would overwrite the cache folder",
    ("cache folder", "another output"): "the output would overwrite the cache folder",
    ("journal", "another output"): "the output would overwrite the journal",
    **{(o, "link to a user folder"): "is a directory; give a file name" for o in OUTPUTS},
    ("pictures folder", "link to a user folder"): "the report's pictures folder is a symbolic link",
    **{(o, "file where a folder goes"): "is not a directory" for o in OUTPUTS},
    ("pictures folder", "file where a folder goes"): "the report's pictures folder is a file, where delfverify "
                                                     "would make a folder",
    ("cache folder", "file where a folder goes"): "the cache folder is a file, not a folder",
    **{(o, "folder where a file goes"): "is a directory; give a file name" for o in OUTPUTS},
    ("pictures folder", "folder where a file goes"): "but delfverify did not make it",
    ("cache folder", "folder where a file goes"): "the journal is a directory",
    **{(o, "read-only folder"): "read-only file system|no permission to write" for o in OUTPUTS},
    **{(o, "full disk"): "(No space left on device); free space on its disk" for o in OUTPUTS},
    ("cache folder", "full disk"): "database or disk is full|No space left on device",
    ("journal", "full disk"): "database or disk is full",
    **{(o, "trailing slash"): "ends in a path separator, so it names a folder; give a file name" for o in OUTPUTS},
    ("pictures folder", "trailing slash"): "r.html/: the report ends in a path separator",
    ("journal", "trailing slash"): "--journal must be a file name (one ending in a path separator names a folder)",
}
for _kind, _what in (("character device", "a character device"), ("FIFO with a reader", "a FIFO (named pipe)")):
    REFUSED.update({
        ("rerank --report", _kind): "the report goes to a stream, but its match pictures go in a folder beside it",
        ("pictures folder", _kind): f"the report's pictures folder is {_what}, where delfverify would make a folder",
        ("cache folder", _kind): f"the cache folder is {_what}, not a folder",
        ("journal", _kind): f"the journal is {_what}; it must be a regular file",
    })
del REFUSED[("cache folder", "link to a user folder")]  # the store goes where the link leads: the user named it
del REFUSED[("cache folder", "trailing slash")]  # a folder, named as one


@pytest.fixture(scope="module")
def env(sample_run, tmp_path_factory):
    """Copies of the inputs (a tiny predictions file, the truth, two photos, the query folder named like a report's
    pictures folder) and a warm cache, shared by the matrix."""
    root = tmp_path_factory.mktemp("matrix-inputs")
    rows = (SAMPLE / "predictions.csv").read_text().splitlines()[: ROWS + 1]
    (root / "predictions.csv").write_text("\n".join(rows) + "\n")
    queries = root / "queries_files"
    queries.mkdir()
    for row in rows[1:]:
        shutil.copy(SAMPLE / "queries" / f"{row.split(',')[0]}.jpg", queries)
    shutil.copy(SAMPLE / "truth.csv", root / "truth.csv")
    for name in ("a", "b"):
        shutil.copy(SAMPLE / "queries" / f"{rows[1].split(',')[0]}.jpg", root / f"{name}.jpg")
    cache = sample_run.warm_cache(root / "cache")
    return root, cache


def _snapshot(folder: Path) -> dict[str, object]:
    """Every node under ``folder``: a file's bytes, a link's target, another node's type and device number."""
    nodes = {}
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            key = os.path.relpath(path, folder)
            if stat.S_ISLNK(st.st_mode):
                nodes[key] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    nodes[key] = handle.read()
            else:
                nodes[key] = (stat.S_IFMT(st.st_mode), st.st_rdev if not stat.S_ISDIR(st.st_mode) else 0)
    return nodes


@pytest.fixture
def mounts():
    """``mount(path, read_only=False)``: a small tmpfs at ``path`` (True), or False where this process may not
    mount; every mount is undone after the test."""
    mounted: list[Path] = []

    def mount(path: Path, size: str = "1m") -> bool:
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                                                str(path)], capture_output=True).returncode != 0:
            return False
        mounted.append(path)
        return True

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def _fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (2**16, 2**12, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


def _remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


def _null(path: Path) -> None:
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("cannot make a device node here (not root)")


def _argv(output: str, target: Path, tmp: Path, env, extra=()) -> list:
    """The command line that gives ``target`` as ``output``; the other outputs go to ``tmp/outs``."""
    inputs, cache = env
    outs = tmp / "outs"
    if output.startswith("verify"):
        return ["verify", inputs / "a.jpg", inputs / "b.jpg", "--cache-dir", cache, "--plot", target, *extra]
    if output.startswith("tune"):
        return ["tune", SAMPLE / "predictions.csv", "--truth", inputs / "truth.csv", "--gallery",
                SAMPLE / "gallery.csv", "--gallery-images", SAMPLE / "gallery", "--query-images", SAMPLE / "queries",
                "--cache-dir", cache, "--workers", 1, "-q", "-o", target if output == "tune -o" else outs / "p.json",
                *(["--plot", target] if output == "tune --plot" else []), *extra]
    argv = ["rerank", inputs / "predictions.csv", "--gallery", SAMPLE / "gallery.csv", "--gallery-images",
            SAMPLE / "gallery", "--query-images", inputs / "queries_files", "--workers", 1, "-q",
            "--cache-dir", target if output == "cache folder" else cache,
            "-o", target if output == "rerank -o" else outs / "o.csv"]
    if output in ("rerank --details", "journal"):
        argv += [f"--{output.split('-')[-1]}", target]
    elif output == "rerank --report":
        argv += ["--report", target]
    elif output == "pictures folder":
        argv += ["--report", target.with_name(target.name.removesuffix("_files") + ".html")]
    return argv + list(extra)


def _prepare(output: str, kind: str, tmp: Path, env, mount, monkeypatch):
    """Make the kind of path ``kind`` for ``output``: its command line and, for a FIFO, its reader."""
    inputs, _ = env
    folder_output = output in ("pictures folder", "cache folder")
    name = "r_files" if output == "pictures folder" else "target"
    user = tmp / "user"  # a folder of the user's, with a file named like a picture
    user.mkdir()
    (user / "keep.txt").write_text("the user's\n")
    (user / "boosted-01.jpg").write_bytes(b"the user's photo")
    extra, reader = [], None
    if kind == "input":
        target = {"pictures folder": inputs / "queries_files", "cache folder": inputs / "queries_files",
                  "verify --plot": inputs / "a.jpg", "tune -o": inputs / "truth.csv",
                  "tune --plot": inputs / "truth.csv"}.get(output, inputs / "predictions.csv")
    elif kind == "another output":
        outs = tmp / "outs"
        target = {"rerank -o": outs / "x.csv", "pictures folder": outs / "r_files", "verify --plot": env[1],
                  "tune -o": outs / "x.json", "tune --plot": outs / "p.json"}.get(output, outs / "o.csv")
        extra = {"rerank -o": ["--details", target], "pictures folder": ["--details", target],
                 "tune -o": ["--plot", target]}.get(output, [])
    elif kind == "link to a user folder":
        target = tmp / name
        if output == "cache folder":  # the user's own cache, reached through a link
            shutil.copytree(env[1], user, dirs_exist_ok=True)
        target.symlink_to(user)
    elif kind == "character device":
        target = tmp / name
        _null(target)
    elif kind == "FIFO with a reader":
        target = tmp / name
        reader = FifoReader(target)
    elif kind == "file where a folder goes":
        (tmp / "blocker").write_text("a file of the user's\n")
        target = tmp / "blocker" if output == "cache folder" else tmp / name if folder_output else \
            tmp / "blocker" / "out"
        if output == "pictures folder":
            target.write_text("a file of the user's\n")
    elif kind == "folder where a file goes":
        target = tmp / name
        if output == "cache folder":
            (target / "journal.sqlite").mkdir(parents=True)
        else:
            shutil.copytree(user, target)
    elif kind == "read-only folder":
        ro = tmp / ("r_files" if output == "pictures folder" else "ro")
        mounted = mount(ro)
        if not mounted and os.geteuid() == 0:
            pytest.skip("cannot mount a read-only tmpfs, and root writes in any folder")
        if output == "pictures folder":  # an earlier report's folder
            (ro / MANIFEST).write_text(json.dumps({"written_by": "delfverify", "files": ["boosted-01.jpg"]}))
        if mounted:
            _remount_read_only(ro)
        else:
            ro.chmod(0o555)
        target = ro if folder_output else ro / "out"
    elif kind == "trailing slash":  # the separator is kept in the argument (a Path drops it)
        target = tmp / ("r.html" if output == "pictures folder" else name)
        argv = _argv(output, tmp / "r_files" if output == "pictures folder" else target, tmp, env)
        return [f"{a}{os.sep}" if a == target else a for a in argv], target, None
    else:  # full disk
        disk = tmp / ("r_files" if output == "pictures folder" else "disk")
        mounted = mount(disk)
        if not mounted:
            if output in ("cache folder", "journal"):
                pytest.skip("cannot mount a small tmpfs; the store and journal on a full disk are injected in "
                            "tests/test_reliability.py")
            _inject_full_disk(disk, monkeypatch)
        target = disk if folder_output else disk / ("r.html" if output == "rerank --report" else "out")
        if output in ("pictures folder", "rerank --report"):  # an earlier report of the tool's, to be kept whole
            pictures = disk if output == "pictures folder" else disk / "r_files"
            pictures.mkdir(exist_ok=True)
            (pictures / "boosted-01.jpg").write_bytes(b"an earlier picture")
            (pictures / MANIFEST).write_text(json.dumps({"written_by": "delfverify", "files": ["boosted-01.jpg"]}))
            (pictures.parent / "r.html").write_text("an earlier report\n")
        elif output not in ("cache folder", "journal"):
            target.write_bytes(b"an earlier output\n")
        (tmp / "outs").mkdir()
        for other in ("o.csv", "p.json"):  # the command's other outputs exist: all or nothing
            (tmp / "outs" / other).write_text("an earlier output\n")
        if mounted:
            _fill(disk)
    return _argv(output, target, tmp, env, extra), target, reader


def _inject_full_disk(disk: Path, monkeypatch) -> None:
    """Where no tmpfs can be mounted: writes of the output layer into ``disk`` fail with ENOSPC."""
    disk.mkdir(exist_ok=True)
    real = write_module._write_all

    def write_all(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(disk)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(write_module, "_write_all", write_all)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("output", OUTPUTS)
def test_every_output_against_every_kind_of_path(output, kind, env, tmp_path, mounts, monkeypatch):
    argv, target, reader = _prepare(output, kind, tmp_path, env, mounts, monkeypatch)
    inputs_before, before = _snapshot(env[0] / "queries_files"), _snapshot(tmp_path)
    inputs_files = {p: p.read_bytes() for p in env[0].iterdir() if p.is_file()}
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cli.main([str(a) for a in argv])
    finally:
        streamed = reader.close() if reader is not None else None
    assert _snapshot(env[0] / "queries_files") == inputs_before
    assert {p: p.read_bytes() for p in env[0].iterdir() if p.is_file()} == inputs_files
    words = REFUSED.get((output, kind))
    if words is None:  # written: into the stream, or (the cache) where the link leads
        assert status == 0, err.getvalue()
        if output in STREAMED:
            node = os.lstat(target)
            assert stat.S_ISCHR(node.st_mode) if kind == "character device" else stat.S_ISFIFO(node.st_mode)
        if kind == "FIFO with a reader":
            assert streamed.startswith(STREAMED[output])
            if output.startswith("rerank"):
                assert streamed.count(b"\n") == ROWS + 1
            elif output == "tune -o":
                assert json.loads(streamed)["bands"]
            else:
                assert streamed.endswith(b"IEND\xaeB`\x82")  # a whole PNG
        after = _snapshot(tmp_path)
        kept = ["target", "user/keep.txt", "user/boosted-01.jpg"] if output == "cache folder" else before
        assert all(after.get(k) == before[k] for k in kept if k in before)  # as it was (the user's, the stream)
        return
    assert status == 2 and out.getvalue() == "", err.getvalue()
    lines = [line for line in err.getvalue().splitlines() if line.startswith("delfverify: error: ")]
    assert len(lines) == 1 and "Traceback" not in err.getvalue(), err.getvalue()
    assert any(w in lines[0] for w in words.split("|")), lines[0]
    if (output, kind) not in (("cache folder", "full disk"), ("journal", "full disk")):  # SQLite's and the store's
        assert _snapshot(tmp_path) == before  # nothing written, nothing left, nothing replaced or removed
