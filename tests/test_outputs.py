"""delfverify.outputs: outputs are planned before any work (inputs, image folders, other outputs, what stands at the
path), written all or nothing, streams written into and never replaced, and the tool's own folder is the only one
it writes pictures into or removes them from. The hostile cases of issue #19 end to end on the sample data.

Devices and FIFOs are made in the test's temporary folder only (``os.mknod`` of a null device, ``os.mkfifo``).
The matrix of every output against every kind of path is tests/test_output_matrix.py.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import socket
import stat
import threading
from pathlib import Path

import pytest
from conftest import SAMPLE, FifoReader, sample_argv

from delfverify import cli
from delfverify.outputs import (DESCRIPTOR, FILE, MANIFEST, STREAM, OutputError, OutputPlan, goes_to_stdout,
                                write_output, write_outputs)
from delfverify.outputs import write as write_module

QID = "da07d5ba65959f62"
PICTURE = re.compile(r"(?:boosted|suppressed)-\d+\.jpg")


def _main(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("delfverify: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0].removeprefix("delfverify: error: ")


def _null_device(path: Path) -> Path:
    """A character device like /dev/null (major 1, minor 3) in the test's folder; skips where one cannot be made."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("cannot make a device node here (not root)")
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


# --- planning -----------------------------------------------------------------------------------------------------

def test_each_kind_of_path_is_planned_as_what_it_is(tmp_path):
    plan = OutputPlan()
    assert plan.file("the output", tmp_path / "new.csv").kind == FILE
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    linked = plan.file("the details file", tmp_path / "link.csv")
    assert (linked.kind, linked.path) == (FILE, tmp_path / "real.csv")  # written where the link leads
    assert plan.file("the plot", _null_device(tmp_path / "null")).kind == STREAM
    os.mkfifo(tmp_path / "fifo")
    assert plan.file("the report", tmp_path / "fifo").kind == STREAM
    stdout = plan.file("the policy", "-")
    assert (stdout.kind, stdout.descriptor, stdout.to_stdout) == (DESCRIPTOR, 1, True) and plan.to_stdout
    read, write = os.pipe()
    try:
        for spelling in (f"/dev/fd/{write}", f"/proc/self/fd/{write}", f"/proc/{os.getpid()}/fd/{write}"):
            planned = OutputPlan().file("the output", spelling)
            assert (planned.kind, planned.descriptor) == (DESCRIPTOR, write)
    finally:
        os.close(read)
        os.close(write)
    assert OutputPlan().file("the output", "/dev/stdout").descriptor == 1
    assert goes_to_stdout("-") and goes_to_stdout("/proc/self/fd/1") and not goes_to_stdout(tmp_path / "new.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link.csv", "null", "real.csv"]  # nothing made


def test_two_outputs_to_standard_output_or_one_descriptor_are_refused():
    plan = OutputPlan()
    plan.file("the output", "-")
    with pytest.raises(OutputError, match=r"^/dev/stdout: the details file would go to /dev/stdout, as the output "):
        plan.file("the details file", "/dev/stdout")


def test_what_cannot_be_written_into_is_refused_unopened(tmp_path):
    try:
        os.mknod(tmp_path / "disk", stat.S_IFBLK | 0o600, os.makedev(7, 200))  # never opened
    except PermissionError:
        pytest.skip("cannot make a device node here (not root)")
    with pytest.raises(OutputError, match="the output is a block device; it must be a file, a character device"):
        OutputPlan().file("the output", tmp_path / "disk")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "socket"))
        with pytest.raises(OutputError, match="the output is a socket"):
            OutputPlan().file("the output", tmp_path / "socket")
    with pytest.raises(OutputError, match="the journal is a FIFO"):
        os.mkfifo(tmp_path / "fifo")
        OutputPlan().file("the journal", tmp_path / "fifo", streams=False)
    with pytest.raises(OutputError, match="file descriptor 987, which is not open"):
        OutputPlan().file("the output", "/dev/fd/987")


def test_a_name_too_long_for_the_file_system_is_refused_before_any_work(tmp_path):
    with pytest.raises(OutputError, match=r"the name x{40}\.\.\. is 256 bytes, more than its file system allows "
                                          r"\(255\); choose a shorter name"):
        OutputPlan().file("the output", tmp_path / ("x" * 252 + ".csv"))
    OutputPlan().file("the output", tmp_path / ("x" * 251 + ".csv"))  # 255 bytes: fine
    assert not list(tmp_path.iterdir())


def test_outputs_in_an_image_folder_are_refused_through_any_link(tmp_path):
    photos = tmp_path / "queries"
    photos.mkdir()
    (photos / f"{QID}.jpg").write_bytes(b"a photo")
    (tmp_path / "into-photos").symlink_to(photos)
    plan = OutputPlan(image_folders=[("the query image folder", photos)])
    for path in (photos / f"{QID}.jpg", photos / "new.csv", tmp_path / "into-photos" / "x.csv",
                 photos / "sub" / ".." / "x.csv"):
        with pytest.raises(OutputError, match=r"would be written into the query image folder .*among the photos"):
            plan.file("the details file", path)
    with pytest.raises(OutputError, match="the cache folder would be written into the query image folder"):
        plan.cache(photos / "cache")
    assert (photos / f"{QID}.jpg").read_bytes() == b"a photo"


def test_the_cache_and_journal_are_planned_as_outputs(tmp_path):
    (tmp_path / "p.csv").write_text("id,landmarks\n")
    with pytest.raises(OutputError, match="the cache folder is a file, not a folder"):
        OutputPlan().cache(tmp_path / "p.csv")
    with pytest.raises(OutputError, match="the journal would overwrite the predictions file"):
        OutputPlan([("the predictions file", tmp_path / "p.csv")]).cache(tmp_path / "c", tmp_path / "p.csv")
    plan = OutputPlan()
    plan.cache(tmp_path / "c", tmp_path / "c" / "journal.sqlite")
    plan.file("the output", tmp_path / "c" / "out.csv")  # beside the store's entries: fine
    for name in ("journal.sqlite", "journal.sqlite-wal"):
        with pytest.raises(OutputError, match="the details file would overwrite the journal"):
            plan.file("the details file", tmp_path / "c" / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]


# --- writing ------------------------------------------------------------------------------------------------------

def test_streams_are_written_into_and_never_replaced(tmp_path, capsysbinary):
    null = _null_device(tmp_path / "null")
    write_output(null, b"into the null device\n")
    assert stat.S_ISCHR(null.stat().st_mode) and null.stat().st_rdev == os.makedev(1, 3)
    reader = FifoReader(tmp_path / "fifo")
    write_output(tmp_path / "fifo", b"x" * 300_000)  # more than a pipe holds: written as the reader reads
    assert reader.close() == b"x" * 300_000 and stat.S_ISFIFO((tmp_path / "fifo").stat().st_mode)
    write_output("-", b"to standard output\n")
    assert capsysbinary.readouterr().out == b"to standard output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "null"]


def test_a_fifo_without_a_reader_is_waited_for_with_a_warning(tmp_path, caplog):
    os.mkfifo(tmp_path / "fifo")
    writer = threading.Thread(target=write_output, args=(tmp_path / "fifo", b"late\n"), daemon=True)
    writer.start()
    writer.join(timeout=0.5)
    assert writer.is_alive()  # waiting, as a shell's > waits
    with open(tmp_path / "fifo", "rb") as handle:
        assert handle.read() == b"late\n"
    writer.join(timeout=30)
    assert "waiting for a reader of this FIFO" in caplog.text


def test_a_failure_replaces_no_output_and_leaves_no_temporary_file_or_folder(tmp_path, monkeypatch):
    first, second = tmp_path / "first.csv", tmp_path / "new" / "deeper" / "second.csv"
    first.write_text("old\n")
    plan = OutputPlan()
    outputs = [plan.file("the output", first), plan.file("the details file", second)]
    real_write = write_module._write_all
    calls = []

    def full_disk(fd, data):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(fd, data)

    monkeypatch.setattr(write_module, "_write_all", full_disk)
    with pytest.raises(OutputError) as error:
        write_outputs([(outputs[0], b"new\n"), (outputs[1], b"details\n")])
    assert str(error.value) == (f"{second}: cannot write the details file (No space left on device); free space on "
                                f"its disk, or choose another path; no file was replaced")
    assert first.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["first.csv"]


def test_permissions_of_written_files_are_those_a_plain_write_gives(tmp_path):
    old = os.umask(0o027)
    try:
        (tmp_path / "kept.csv").write_text("old\n")
        (tmp_path / "kept.csv").chmod(0o604)
        write_output(tmp_path / "kept.csv", "new\n")
        write_output(tmp_path / "new.csv", "new\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "kept.csv").stat().st_mode) == 0o604
    assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o640


# --- the tool's own folder ----------------------------------------------------------------------------------------

def _folder(plan, path, create=True):
    return plan.folder("the report's pictures folder", path, PICTURE, member_name="the match picture",
                       purpose="test", create=create, remedy="choose another report name")


def test_the_tool_makes_its_folder_with_a_manifest_and_removes_only_what_it_lists(tmp_path):
    folder = tmp_path / "r_files"
    owned = _folder(OutputPlan(), folder)
    write_outputs([(owned.member("boosted-01.jpg"), b"1"), (owned.member("boosted-02.jpg"), b"2")],
                  [(owned, ["boosted-01.jpg", "boosted-02.jpg"])])
    assert json.loads((folder / MANIFEST).read_text())["files"] == ["boosted-01.jpg", "boosted-02.jpg"]
    (folder / "notes.txt").write_text("the user's\n")  # not named like a picture: never touched
    owned = _folder(OutputPlan(), folder)
    assert owned.listed == {"boosted-01.jpg", "boosted-02.jpg"}
    write_outputs([(owned.member("suppressed-01.jpg"), b"3")], [(owned, ["suppressed-01.jpg"])])
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "notes.txt", "suppressed-01.jpg"]
    assert json.loads((folder / MANIFEST).read_text())["files"] == ["suppressed-01.jpg"]
    owned = _folder(OutputPlan(), folder, create=False)
    write_outputs([], [(owned, [])])  # a report without pictures: the earlier ones go, the user's file stays
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    (folder / "notes.txt").unlink()
    owned = _folder(OutputPlan(), folder, create=False)
    assert owned is None  # no manifest any more: not the tool's


_HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from test_outputs import _folder
from delfverify.outputs import OutputPlan
owned = _folder(OutputPlan(), sys.argv[1])
print("planned", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("create", [True, False], ids=["with pictures", "without pictures"])
@pytest.mark.parametrize("exists", [True, False], ids=["folder of an earlier run", "no folder yet"])
def test_two_runs_writing_one_pictures_folder_never_mix_their_files(tmp_path, exists, create):
    """The kind: two runs (or two plans in one process) writing one report. The folder is locked (``flock`` on its
    own descriptor, no file made) from planning until written; a folder made by another run since planning is
    refused when it is to be made. Whatever the order, the folder holds exactly the files its manifest lists, so
    no later run is refused for a file the tool wrote (``rep_files holds boosted-03.jpg, which delfverify did not
    write there``)."""
    folder = tmp_path / "r_files"
    if exists:
        first = _folder(OutputPlan(), folder)
        write_outputs([(first.member("boosted-01.jpg"), b"0")], [(first, ["boosted-01.jpg"])])
    one = _folder(OutputPlan(), folder)
    if exists:  # a folder there: the second plan is refused at once, before any work
        with pytest.raises(OutputError, match=r"r_files: another delfverify run is writing the report's pictures "
                                              r"folder now; wait for it to finish, or choose another report name$"):
            _folder(OutputPlan(), folder, create=create)
        two = None
    else:  # none yet: both plan it; the second to make it is refused, and nothing of it is left
        two = _folder(OutputPlan(), folder, create=create)
    write_outputs([(one.member("boosted-02.jpg"), b"1"), (one.member("boosted-03.jpg"), b"1")],
                  [(one, ["boosted-02.jpg", "boosted-03.jpg"])])
    if two is not None and create:
        with pytest.raises(OutputError, match="another delfverify run is writing"):
            write_outputs([(two.member("suppressed-01.jpg"), b"2")], [(two, ["suppressed-01.jpg"])])
    listed = json.loads((folder / MANIFEST).read_text())["files"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, *listed]) and listed == \
        ["boosted-02.jpg", "boosted-03.jpg"]
    again = _folder(OutputPlan(), folder)  # released once written: the next run goes on
    write_outputs([], [(again, [])])
    assert not folder.exists()


def test_a_run_is_refused_while_another_process_writes_its_pictures_folder(tmp_path):
    """Two processes: one holds the plan of ``out/r_files``; ``rerank --report out/r.html`` in this one is refused
    before any work, one line and exit 2 (before the fix both wrote, and their pictures mixed)."""
    import subprocess
    import sys

    out = tmp_path / "out"
    owned = _folder(OutputPlan(), out / "r_files")
    write_outputs([(owned.member("boosted-01.jpg"), b"0")], [(owned, ["boosted-01.jpg"])])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    tests = Path(__file__).resolve().parent
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out / "r_files"), str(tests)],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(tests.parent)})
    try:
        assert holder.stdout.readline().strip() == "planned"
        status, stdout, err = _main(sample_argv(tmp_path / "o", tmp_path / "cache", "--report", out / "r.html"))
    finally:
        holder.kill()
        holder.wait()
    assert status == 2 and _one_line(err).endswith("r_files: another delfverify run is writing the report's "
                                                   "pictures folder now; wait for it to finish, or choose another "
                                                   "report name")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "cache").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("case", ["symlink", "file", "foreign-folder", "stray-picture", "damaged-manifest",
                                  "manifest-naming-another-file"])
def test_a_folder_the_tool_did_not_make_is_refused_and_left_alone(tmp_path, case):
    user = tmp_path / "user"
    user.mkdir()
    (user / "boosted-01.jpg").write_bytes(b"the user's photo")
    folder = tmp_path / "r_files"
    if case == "symlink":
        folder.symlink_to(user)
    elif case == "file":
        folder.write_text("a file\n")
    elif case == "foreign-folder":
        shutil.copytree(user, folder)
    else:
        shutil.copytree(user, folder)
        files = {"stray-picture": ["boosted-02.jpg"], "damaged-manifest": "x",
                 "manifest-naming-another-file": ["../user/boosted-01.jpg"]}[case]
        text = json.dumps({"written_by": "delfverify", "files": files})
        (folder / MANIFEST).write_text(text if case != "damaged-manifest" else text[:10])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    words = {"symlink": "is a symbolic link", "file": "is a file, where delfverify would make a folder",
             "foreign-folder": f"delfverify did not make it (there is no {MANIFEST} in it)",
             "stray-picture": "holds boosted-01.jpg, which delfverify did not write there",
             "damaged-manifest": "has a damaged manifest",
             "manifest-naming-another-file": "it lists '../user/boosted-01.jpg', a name delfverify never writes"}[case]
    with pytest.raises(OutputError, match=re.escape(words)):
        _folder(OutputPlan(), folder)
    owned = _folder(OutputPlan(), folder, create=False)  # a report without pictures: tidy what the manifest lists
    assert (owned is not None) == (case == "stray-picture")
    if owned is not None:
        write_outputs([], [(owned, [])])
        del before[folder / MANIFEST]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


# --- the hostile cases of issue #19, end to end ------------------------------------------------------------------

def test_details_naming_a_query_photo_is_refused_and_the_photo_kept(sample_run, tmp_path):
    queries = Path(shutil.copytree(SAMPLE / "queries", tmp_path / "queries"))
    photo = queries / f"{QID}.jpg"
    argv = sample_argv(tmp_path / "out", sample_run.warm_cache(tmp_path / "cache"))
    argv[argv.index("--query-images") + 1] = str(queries)
    argv[argv.index("--details") + 1] = str(photo)
    status, out, err = _main(argv)
    assert status == 2 and out == ""
    assert _one_line(err).startswith(f"{photo}: the details file would be written into the query image folder")
    assert photo.read_bytes() == (SAMPLE / "queries" / f"{QID}.jpg").read_bytes()
    assert not (tmp_path / "out").exists()


def test_a_pictures_folder_linked_to_the_gallery_is_refused_before_any_work(sample_run, tmp_path):
    gallery = Path(shutil.copytree(SAMPLE / "gallery", tmp_path / "gallery"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "r_files").symlink_to(gallery)
    before = {p.name: p.read_bytes() for p in gallery.iterdir()}
    for images in (gallery, SAMPLE / "gallery"):  # the link's folder given as the gallery or not
        argv = sample_argv(out, sample_run.warm_cache(tmp_path / f"cache-{len(str(images))}"), "--report",
                           out / "r.html", "--truth", SAMPLE / "truth.csv")
        argv[argv.index("--gallery-images") + 1] = str(images)
        status, _, err = _main(argv)
        assert status == 2 and "the report's pictures folder" in _one_line(err)
    assert {p.name: p.read_bytes() for p in gallery.iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == ["r_files"]


def test_rerank_and_tune_write_to_standard_output_and_say_what_they_did_on_standard_error(sample_run, tmp_path):
    cache = sample_run.warm_cache(tmp_path / "cache")
    argv = sample_argv(tmp_path, cache)
    argv[argv.index("-o") + 1] = "-"
    status, out, err = _main(argv)
    assert status == 0 and out.encode() == sample_run.output  # the data alone
    assert err.startswith("wrote standard output (26 predictions, policy default)")
    argv[argv.index("-o") + 1] = "/proc/self/fd/1"  # the same descriptor by another name
    status, out, err = _main(argv)
    assert status == 0 and out.encode() == sample_run.output and err.startswith("wrote /proc/self/fd/1 (")
    status, out, err = _main(["tune", SAMPLE / "predictions.csv", "--truth", SAMPLE / "truth.csv", "--gallery",
                              SAMPLE / "gallery.csv", "--gallery-images", SAMPLE / "gallery", "--query-images",
                              SAMPLE / "queries", "--cache-dir", cache, "--workers", 1, "-q", "-o", "-"])
    assert status == 0 and json.loads(out)["bands"] and "wrote the policy to standard output" in err
    status, out, err = _main(["report", sample_run.folder / "details.csv", "-o", "-"])  # a page without pictures
    assert status == 0 and out.startswith("<!DOCTYPE html>") and err.startswith("wrote standard output (no match")
    status, out, err = _main(["report", sample_run.folder / "details.csv", "-o", "-", "--gallery-images",
                              SAMPLE / "gallery", "--query-images", SAMPLE / "queries"])
    assert status == 2 and "its match pictures go in a folder beside it" in _one_line(err) and out == ""


def test_a_report_name_too_long_for_the_file_system_is_refused_before_any_work(sample_run, tmp_path):
    page = tmp_path / ("r" * 245 + ".html")  # 250 bytes: the page fits, its folder r..r_files (251) too
    cache = sample_run.warm_cache(tmp_path / "cache")
    assert OutputPlan().file("the report", page)
    page = tmp_path / ("r" * 250 + ".html")  # the page fits (255 bytes), its folder (256) does not
    status, out, err = _main(sample_argv(tmp_path / "out", cache, "--report", page))
    assert status == 2 and "the name rrrr" in _one_line(err) and "choose a shorter name" in _one_line(err)
    assert not (tmp_path / "out").exists() and not page.exists()


def test_extract_and_verify_plan_their_cache_folder_before_any_work(tmp_path):
    queries = Path(shutil.copytree(SAMPLE / "queries", tmp_path / "queries"))
    (tmp_path / "ids.csv").write_text(f"id\n{QID}\n")
    status, out, err = _main(["extract", tmp_path / "ids.csv", "--images", queries, "--cache-dir",
                              queries / "cache", "--workers", 1])
    assert status == 2 and out == "" and "the cache folder would be written into the image folder" in _one_line(err)
    photo = queries / f"{QID}.jpg"
    status, out, err = _main(["verify", photo, photo, "--cache-dir", photo])
    assert status == 2 and out == "" and "the cache folder would overwrite photo A" in _one_line(err)
    assert sorted(p.name for p in queries.iterdir()) == sorted(p.name for p in (SAMPLE / "queries").iterdir())
