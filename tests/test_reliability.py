"""Reliability and security of ``delfverify rerank`` (the table in docs/RELIABILITY.md): corrupt caches are
reported and recomputed, bad images and bad CSV rows never crash a run, ids never reach a file outside the image
folders, nothing is unpickled or evaluated, and two runs can share one cache; special files never hang a run, a
full disk or a locked journal stops it with one line and loses nothing, outputs never overwrite inputs, ids are
kept as given. (Resuming after SIGKILL is proved in tests/test_cli_rerank.py; workers and clusters in
tests/test_execution.py.)

Most runs call ``delfverify.cli.main`` in this process (``--workers 1``) on copies of ``data/`` and share the
features of one warm cache; the concurrency and no-traceback cases run real subprocesses.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import re
import shutil
import sqlite3
import stat
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import delfverify
import delfverify.journal as journal_module
from delfverify import cli, images
from delfverify.journal import PairJournal
from delfverify.store import FORMAT_VERSION, FeatureStore, content_hash

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
#: The query replaced by each bad image: an astronaut photo predicted as astronaut, boosted in a clean run.
QID = "da07d5ba65959f62"
NUM_PAIRS = 78  # 26 predictions x 3 gallery photos (default policy, sample data)
SUMMARY = re.compile(r"pairs verified (\d+), reused (\d+); features extracted (\d+)")

# --- every file this process opens, while a test records them (for "never reads outside the image dirs") ------

_OPENED: list[str] | None = None
_HOOKED = False


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _OPENED is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


@contextlib.contextmanager
def _recording_opened_files():
    """Collect the files this process opens inside the block (as resolved paths, in the yielded set)."""
    global _OPENED, _HOOKED
    if not _HOOKED:  # audit hooks cannot be removed: install it once, and only when needed
        sys.addaudithook(_audit)
        _HOOKED = True
    _OPENED = []
    opened: set[Path] = set()
    try:
        yield opened
    finally:
        opened.update(Path(p).resolve() for p in _OPENED)
        _OPENED = None


# --- running rerank ---------------------------------------------------------------------------------------------

def _argv(out: Path, cache: Path, *, predictions=DATA / "predictions.csv", gallery=DATA / "gallery.csv",
          gallery_images=DATA / "gallery", query_images=DATA / "queries", extra=()) -> list[str]:
    return ["rerank", str(predictions), "--gallery", str(gallery), "--gallery-images", str(gallery_images),
            "--query-images", str(query_images), "--cache-dir", str(cache), "-o", str(out / "out.csv"),
            "--details", str(out / "details.csv"), "--workers", "1", "-q", *extra]


def _main(argv: list[str], capsys) -> tuple[int, str, str]:
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def _details(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@dataclass(frozen=True)
class Baseline:
    cache: Path  # warm: every sample image's features and every pair of a clean run
    output: bytes
    details: bytes

    @property
    def table(self) -> pd.DataFrame:
        return _details_bytes(self.details)


def _details_bytes(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def baseline(sample_run, tmp_path_factory) -> Baseline:
    """The clean, uninterrupted run on the sample data (in this process), with a warm cache of this module's own."""
    cache = sample_run.warm_cache(tmp_path_factory.mktemp("baseline") / "cache")
    return Baseline(cache, sample_run.output, sample_run.details)


@pytest.fixture
def private_cache(baseline, tmp_path) -> Path:
    """A copy of the warm cache that the test may damage."""
    return Path(shutil.copytree(baseline.cache, tmp_path / "cache"))


def _copy_images(tmp_path: Path, which: str) -> Path:
    return Path(shutil.copytree(DATA / which, tmp_path / which))


def _assert_same_except(details: pd.DataFrame, baseline: Baseline, ids: set[str]) -> None:
    """Every other prediction's details are exactly those of the clean run."""
    expected = baseline.table
    expected = expected[~expected["id"].isin(ids)].reset_index(drop=True)
    got = details[~details["id"].isin(ids)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)


def _subprocess(argv: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _journal_rows(path: Path) -> dict[tuple[str, str, str], int]:
    """``(fingerprint, query, gallery) -> rowid`` of a journal (read-only; empty while it does not exist)."""
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return {tuple(row[1:]): row[0] for row in db.execute("SELECT rowid, fingerprint, query, gallery FROM pairs")}
    except sqlite3.OperationalError:  # created but no table yet
        return {}
    finally:
        db.close()


# --- two runs sharing one cache ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_concurrent_runs_sharing_a_cache_both_give_the_solo_output(baseline, tmp_path):
    """Two processes re-rank the first eight queries from one empty cache at the same time (the same photos
    extracted and stored by both, the same pairs journaled by both)."""
    cache = tmp_path / "shared-cache"
    predictions = tmp_path / "eight.csv"
    predictions.write_text("".join((DATA / "predictions.csv").read_text().splitlines(keepends=True)[:9]))
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        out.mkdir()
    runs = [_subprocess(["-m", "delfverify.cli", *_argv(out, cache, predictions=predictions)]) for out in outs]
    results = [run.communicate(timeout=300) for run in runs]
    for run, (_, stderr) in zip(runs, results):
        assert run.returncode == 0, stderr
        assert "Traceback" not in stderr
    for out in outs:  # each row as the solo run wrote it
        assert (out / "out.csv").read_bytes().splitlines() == baseline.output.splitlines()[:9]
        assert (out / "details.csv").read_bytes().splitlines() == baseline.details.splitlines()[:9]
    assert len(_journal_rows(cache / "journal.sqlite")) == 8 * 3
    assert not list(cache.rglob("*.tmp")) and not list(cache.glob("journal.sqlite.corrupt-*"))
    for entry in cache.rglob("*.npz"):  # every stored entry is whole
        store = FeatureStore(cache, entry.parent.parent.name, 128)
        assert store.get(entry.stem) is not None and store.stats.corrupt == 0


# --- corrupt cache entries -----------------------------------------------------------------------------------------

class _Marker:
    """Unpickling this object would create a file (it must never happen)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def _object_array_npz(path: Path, marker: Path) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, format_version=np.int64(FORMAT_VERSION), locations=np.zeros((1, 2), np.float32),
                 descriptors=np.array([_Marker(str(marker))], dtype=object), scales=np.zeros(1, np.float32),
                 scores=np.zeros(1, np.float32))


def test_store_never_unpickles_an_object_array(tmp_path):
    store = FeatureStore(tmp_path / "cache", "0123456789abcdef", 128)
    key = content_hash(b"photo")
    store.path(key).parent.mkdir(parents=True)
    marker = tmp_path / "unpickled"
    _object_array_npz(store.path(key), marker)
    assert store.get(key) is None
    assert store.stats.corrupt == 1 and not marker.exists() and not store.path(key).exists()
    assert store.path(key).with_name(f"{key}.npz.bad").is_file()  # set aside, not deleted


def test_corrupt_store_entries_are_reported_and_recomputed(baseline, private_cache, tmp_path, capsys, caplog):
    entries = sorted(private_cache.rglob("*.npz"))
    assert len(entries) == 41
    marker = tmp_path / "unpickled"
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # truncated
    entries[1].write_bytes(np.random.default_rng(0).bytes(3000))  # random bytes
    _object_array_npz(entries[2], marker)  # an object (pickled) array
    with open(entries[3], "wb") as handle:  # wrong dtype
        np.savez(handle, format_version=np.int64(FORMAT_VERSION), locations=np.zeros((2, 2)),
                 descriptors=np.zeros((2, 128)), scales=np.zeros(2), scores=np.zeros(2))
    entries[4].unlink()  # a directory in its place: every run used to exit 2
    entries[4].mkdir()
    (entries[4] / "file").write_bytes(b"x")
    entries[5].unlink()  # a FIFO in its place: reading it would wait for ever
    os.mkfifo(entries[5])
    (private_cache / "journal.sqlite").unlink()  # so that every pair needs the features again
    out = tmp_path / "out"
    status, _, _ = _main(_argv(out, private_cache), capsys)
    assert status == 0
    assert (out / "out.csv").read_bytes() == baseline.output
    assert (out / "details.csv").read_bytes() == baseline.details
    assert not marker.exists()
    messages = [r.getMessage() for r in caplog.records if r.name == "delfverify.store"]
    assert sorted(m.split(" (")[0] for m in messages) == sorted(f"corrupt feature store entry {e}" for e in entries[:6])
    for entry in entries[:6]:  # extracted again and stored whole
        store = FeatureStore(private_cache, entry.parent.parent.name, 128)
        assert store.get(entry.stem) is not None and store.stats.corrupt == 0


def _corrupt_journal(path: Path, how: str) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if how == "schema-version-99":
        db.execute("PRAGMA user_version=99")
        db.commit()
    elif how == "impossible-rows":
        db.execute("UPDATE pairs SET num_inliers = num_putative + 1 WHERE rowid % 2 = 0")
        db.execute("UPDATE pairs SET num_inliers = 'many' WHERE rowid % 2 = 1")
        db.commit()
    elif how == "current-version-without-table":  # SQLite opens it, but it is no journal this code can use
        db.execute("DROP TABLE pairs")  # issue #19: the same error on every run, though it said the next goes on
        db.close()
        return
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'pairs'").fetchone()[0]
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    data = bytearray(path.read_bytes())
    if how == "random-bytes":
        data[:] = np.random.default_rng(1).bytes(len(data))
    elif how == "truncated":
        del data[len(data) // 2 :]
    elif how == "damaged-page":  # the table's pages are damaged, the index is intact: seen only when read
        data[(root - 1) * page : root * page] = np.random.default_rng(2).bytes(page)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["random-bytes", "truncated", "schema-version-99", "impossible-rows",
                                 "damaged-page", "current-version-without-table"])
def test_corrupt_journal_is_reported_and_pairs_recomputed(baseline, private_cache, tmp_path, capsys, caplog, how):
    journal = private_cache / "journal.sqlite"
    _corrupt_journal(journal, how)
    out = tmp_path / "out"
    status, stdout, _ = _main(_argv(out, private_cache), capsys)
    assert status == 0
    assert (out / "out.csv").read_bytes() == baseline.output
    assert (out / "details.csv").read_bytes() == baseline.details
    warnings = [r.getMessage() for r in caplog.records if r.name == "delfverify.journal"]
    assert warnings and all(str(journal) in w for w in warnings)
    if how == "impossible-rows":
        assert len(warnings) == NUM_PAIRS and all("impossible" in w for w in warnings)
    else:
        assert len(list(private_cache.glob("journal.sqlite.corrupt-*"))) == 1  # kept aside for inspection
    summary = SUMMARY.search(stdout)
    if summary:
        assert (int(summary[1]), int(summary[2]), int(summary[3])) == (NUM_PAIRS, 0, 0)
    assert len(_journal_rows(journal)) == NUM_PAIRS  # the journal is whole again


# --- bad images --------------------------------------------------------------------------------------------------

def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _query_rgb() -> np.ndarray:
    with Image.open(DATA / "queries" / f"{QID}.jpg") as image:
        return np.asarray(image.convert("RGB"))


def _exif_rotated_jpeg() -> bytes:
    stored = Image.fromarray(_query_rgb()).transpose(Image.Transpose.ROTATE_90)  # pixels stored on their side
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return _encode(stored, "JPEG", quality=95, exif=exif)


def _animated_gif() -> bytes:
    frames = [Image.fromarray(_query_rgb()), Image.fromarray(np.roll(_query_rgb(), 40, axis=1))]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes whose header claims width x height pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(bytes(1000))  # far too few: it is refused before they are read
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _dds_of_unknown_format() -> bytes:
    """A DDS header with a compression code ("ZZZZ") that Pillow does not implement."""
    header = struct.pack("<6I", 0x1007, 64, 64, 0, 0, 0) + bytes(44)  # flags, height, width, pitch, depth, mips
    pixel_format = struct.pack("<4I", 32, 0x4, int.from_bytes(b"ZZZZ", "little"), 0) + bytes(16)
    return b"DDS " + struct.pack("<I", 124) + header + pixel_format + bytes(20) + bytes(256)


def _gray() -> np.ndarray:
    return np.asarray(Image.fromarray(_query_rgb()).convert("L"))


#: name -> (bytes of the replacement query photo, expected status, words the reason must contain).
#: "boosted" is the clean run's status of this query: the photo was read and verified like the original.
IMAGE_CASES = {
    "zero-bytes": (lambda: b"", "error", "not an image file"),
    "truncated-jpeg": (lambda: (DATA / "queries" / f"{QID}.jpg").read_bytes()[:20000], "error", "truncated"),
    "png-named-jpg": (lambda: _encode(Image.fromarray(_query_rgb()), "PNG"), "boosted", ""),
    "text-named-jpg": (lambda: b"<html>not a photo</html>\n" * 40, "error", "not an image file"),
    "png-16-bit": (lambda: _encode(Image.fromarray(_gray().astype(np.uint16) * 257), "PNG"), "boosted", ""),
    "cmyk-jpeg": (lambda: _encode(Image.fromarray(_query_rgb()).convert("CMYK"), "JPEG", quality=95), "boosted", ""),
    "grayscale-jpeg": (lambda: _encode(Image.fromarray(_gray()), "JPEG", quality=95), "boosted", ""),
    "rgba-png": (lambda: _encode(Image.fromarray(np.dstack([_query_rgb(), np.full(_gray().shape, 200, np.uint8)])),
                                 "PNG"), "boosted", ""),
    "palette-png": (lambda: _encode(Image.fromarray(_query_rgb()).convert("P", palette=Image.Palette.ADAPTIVE),
                                    "PNG"), "boosted", ""),
    "exif-rotated-jpeg": (_exif_rotated_jpeg, "boosted", ""),
    "one-pixel": (lambda: _encode(Image.new("RGB", (1, 1), (90, 120, 30)), "JPEG"), "unverifiable",
                  "query has 0 keypoints"),
    "animated-gif-named-jpg": (_animated_gif, "boosted", ""),
    "decompression-bomb": (lambda: _encode(Image.new("RGB", (1200, 1000)), "PNG"), "error", "decompression bomb"),
    "bomb-header-30000x30000": (lambda: _png_claiming(30000, 30000), "error", "decompression bomb"),
    # Pillow's DDS plugin raises NotImplementedError, not OSError, for a compression it does not know.
    "dds-named-jpg": (lambda: _dds_of_unknown_format(), "error",
                      "cannot decode image (Unimplemented pixel format 1515870810)"),
}


def _image_format(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return f"{image.format} {image.mode} {image.size[0]}x{image.size[1]} frames={getattr(image, 'n_frames', 1)}"
    except Exception:  # noqa: BLE001 - only describing the test input
        return None


def test_image_cases_are_what_they_claim():
    described = {name: _image_format(make()) for name, (make, _, _) in IMAGE_CASES.items()}
    assert described["zero-bytes"] is None and described["text-named-jpg"] is None
    assert described["png-named-jpg"].startswith("PNG RGB")
    assert described["png-16-bit"].startswith("PNG I;16")
    assert described["cmyk-jpeg"].startswith("JPEG CMYK")
    assert described["grayscale-jpeg"].startswith("JPEG L")
    assert described["rgba-png"].startswith("PNG RGBA")
    assert described["palette-png"].startswith("PNG P")
    assert described["one-pixel"] == "JPEG RGB 1x1 frames=1"
    assert described["animated-gif-named-jpg"].startswith("GIF P") and described["animated-gif-named-jpg"].endswith(
        "frames=2")
    with Image.open(io.BytesIO(IMAGE_CASES["exif-rotated-jpeg"][0]())) as image:
        assert image.getexif()[0x0112] == 6 and image.size == _query_rgb().shape[:2]  # stored on its side
    assert images.load_image(IMAGE_CASES["exif-rotated-jpeg"][0](), max_side=None).shape == _query_rgb().shape
    with pytest.raises(images.ImageError, match="truncated"):
        images.load_image(IMAGE_CASES["truncated-jpeg"][0]())
    with pytest.raises(NotImplementedError):  # what Pillow raises for the DDS file
        Image.open(io.BytesIO(IMAGE_CASES["dds-named-jpg"][0]()))


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_bad_query_image_is_reported_and_the_run_goes_on(baseline, tmp_path, capsys, monkeypatch, case):
    make, expected, words = IMAGE_CASES[case]
    queries = _copy_images(tmp_path, "queries")
    photo = queries / f"{QID}.jpg"
    photo.write_bytes(make())
    if case == "decompression-bomb":
        # Every sample photo (at most 640 x 568) is below the limit; the 1200 x 1000 replacement is above it.
        monkeypatch.setattr(images, "MAX_PIXELS", 1_000_000)
    out = tmp_path / "out"
    status, _, err = _main(_argv(out, baseline.cache, query_images=queries), capsys)
    assert status == 0, err
    details = _details(out / "details.csv")
    row = details[details["id"] == QID].iloc[0]
    assert row["status"] == expected, row["reason"]
    if expected == "error":
        assert row["reason"].startswith(f"query image: {photo}: ") and words in row["reason"]
        assert row["inliers"] == "- - -" and row["new_confidence"] == row["old_confidence"]  # --on-missing keep
    else:
        assert row["reason"].startswith(words) if words else row["reason"] == ""
        assert all(value.isdigit() for value in row["inliers"].split())
    _assert_same_except(details, baseline, {QID})


def test_bad_gallery_image_is_reported_and_its_label_still_verified(baseline, tmp_path, capsys):
    gallery_images = _copy_images(tmp_path, "gallery")
    broken = gallery_images / "fa2d74be0fd77106.jpg"  # one of the three astronaut photos
    broken.write_bytes(b"GIF89a but not really")
    out = tmp_path / "out"
    status, _, _ = _main(_argv(out, baseline.cache, gallery_images=gallery_images), capsys)
    assert status == 0
    details = _details(out / "details.csv")
    astronaut = details["label"] == "astronaut"
    for _, row in details[astronaut].iterrows():
        slot = row["gallery_ids"].split().index("fa2d74be0fd77106")
        counts = row["inliers"].split()
        assert counts[slot] == "-" and sum(c.isdigit() for c in counts) == 2
        assert row["reason"] == f"gallery image: {broken}: not an image file (unrecognised format)"
        assert row["status"] != "error"  # the other two photos were verified
    _assert_same_except(details, baseline, set(details.loc[astronaut, "id"]))


# --- CSV input -----------------------------------------------------------------------------------------------------

def _sample_rows(name: str) -> list[list[str]]:
    with open(DATA / name, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _write_rows(path: Path, rows: list[list[str]], *, bom=False, crlf=False, quote_all=False) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n" if crlf else "\n",
               quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL).writerows(rows)
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8", newline="")
    return path


#: name -> (which input, its text (None: absent), words the one-line error must contain besides the file name).
CSV_ERRORS = {
    "predictions-missing-column": ("predictions", "id\nq1\n", ["unrecognised predictions columns id;"]),
    "predictions-extra-column": ("predictions", "id,landmarks,url\nq1,astronaut 0.5,http://x\n",
                                 ["unrecognised predictions columns id,landmarks,url", "accepted formats"]),
    "predictions-empty-file": ("predictions", "", ["empty"]),
    "predictions-absent": ("predictions", None, ["not found"]),
    # Several rows of an id are its candidates; the same label twice cannot be.
    "predictions-same-label-twice": ("predictions",
                                     "id,landmarks\nq1,astronaut 0.5\nq2,camera 0.4\nq1,astronaut 0.3\n",
                                     ["row 4", "'astronaut' twice for id 'q1'", "row 2"]),
    # Once read as one label 'astronaut 0.9 camera' with confidence 0.2; a cell must be label-score pairs.
    "predictions-kaggle-cell-not-pairs": ("predictions", "id,landmarks\nq1,astronaut 0.9 camera\n",
                                          ["row 2", "'<label> <score>' pairs", "ends with 'camera'"]),
    "predictions-nan": ("predictions", "id,landmarks\nq1,astronaut 0.5\nq2,camera nan\n", ["row 3", "confidence"]),
    "predictions-inf": ("predictions", "id,landmarks\nq1,astronaut inf\n", ["row 2", "confidence"]),
    "predictions-minus-inf": ("predictions", "id,label,confidence\nq1,astronaut,-inf\n", ["row 2", "confidence"]),
    "predictions-negative": ("predictions", "id,label,confidence\nq1,astronaut,0.1\nq2,camera,-0.2\n",
                             ["row 3", "confidence '-0.2'", "[0, 1]"]),
    "predictions-above-one": ("predictions", "id,landmarks,confidence\nq1,astronaut,1.0001\n",
                              ["row 2", "confidence '1.0001'", "[0, 1]"]),
    "predictions-not-a-number": ("predictions", "id,landmarks\nq1,astronaut high\n", ["row 2", "'high'"]),
    "predictions-no-score": ("predictions", "id,landmarks\nq1,astronaut\n", ["row 2", "'<label> <score>'"]),
    # One field too many in the first row used to shift every value one column left without a word.
    "predictions-one-field-too-many": ("predictions", "id,label,confidence\nq1,astronaut,0.5,0.7\n",
                                       ["row 2", "more fields than the header"]),
    "predictions-ragged-row": ("predictions", "id,landmarks\nq1,astronaut 0.5\nq2,camera 0.5,extra\n",
                               ["cannot parse", "line 3"]),
    "predictions-not-utf8": ("predictions", b"id,landmarks\nq1,caf\xe9 0.5\n", ["cannot parse"]),
    "gallery-missing-column": ("gallery", "id,landmark\ng1,astronaut\n", ["missing column(s) landmark_id"]),
    "gallery-empty-file": ("gallery", "", ["empty"]),
    "gallery-duplicate-id": ("gallery", "id,landmark_id\ng1,astronaut\ng1,camera\n",
                             ["row 3", "duplicate id 'g1'", "row 2"]),
    "gallery-empty-label": ("gallery", "id,landmark_id\ng1,astronaut\ng2,\n", ["row 3", "empty landmark_id"]),
    "policy-invalid-field": ("policy", '{"bands": [{"lower": 0, "upper": 1, "k": 0}]}', ["policy.bands[0].k"]),
    "policy-invalid-json": ("policy", '{"bands": [}', ["invalid JSON at line 1"]),
    "policy-nested-100000-deep": ("policy", '{"bands": [{"lower": 0, "upper": 1}], "info": ' + "[" * 100_000
                                  + "]" * 100_000 + "}", ["JSON nested too deeply"]),
    "policy-k-10^12": ("policy", '{"bands": [{"lower": 0, "upper": 1, "k": 1000000000000}]}',
                       ["policy.bands[0].k: must be an integer in [1, 1000], got 1000000000000"]),
    "policy-integer-of-5000-digits": ("policy", '{"bands": [{"lower": 0, "upper": 1, "min_inliers": %s}]}'
                                      % ("7" * 5000), ["policy.bands[0].min_inliers: '7777",
                                                       "is an integer of 5000 digits"]),
    "policy-negative-seed": ("policy", '{"bands": [{"lower": 0, "upper": 1}], "selection": "random", "seed": -1}',
                             ["policy.seed: must be an integer in [0, "]),
}


@pytest.mark.parametrize("case", list(CSV_ERRORS))
def test_bad_input_file_is_one_line_exit_2_naming_file_and_row(baseline, tmp_path, capsys, case):
    which, text, words = CSV_ERRORS[case]
    path = tmp_path / f"bad-{which}.{'json' if which == 'policy' else 'csv'}"
    if text is not None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    out = tmp_path / "out"
    argv = _argv(out, baseline.cache, **({which: path} if which != "policy" else {}))
    if which == "policy":
        argv += ["--policy", str(path)]
    status, stdout, err = _main(argv, capsys)
    assert status == 2
    assert stdout == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("delfverify: error: "), err
    assert str(path) in lines[0]
    for word in words:
        assert word in lines[0]
    assert not out.exists()  # nothing written


def test_bad_csv_in_a_real_process_prints_one_line_and_no_traceback(baseline, tmp_path):
    bad = tmp_path / "p.csv"
    bad.write_text("id,landmarks\nq1,astronaut 0.5\nq2,camera NaN\n")
    run = _subprocess(["-m", "delfverify.cli", *_argv(tmp_path / "out", baseline.cache, predictions=bad)])
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 2
    assert stderr.splitlines() == [f"delfverify: error: {bad}: row 3: confidence 'NaN' is not a number written in "
                                   f"ASCII decimal (such as 0.75)"]
    assert stdout == ""


def test_bom_crlf_and_quoted_fields_give_the_same_output(baseline, tmp_path, capsys):
    predictions = _write_rows(tmp_path / "p.csv", _sample_rows("predictions.csv"), bom=True, crlf=True, quote_all=True)
    gallery_rows = _sample_rows("gallery.csv")
    gallery_rows = [gallery_rows[0] + ["url"]] + [row + [f"https://example.org/{row[0]}"] for row in gallery_rows[1:]]
    gallery = _write_rows(tmp_path / "g.csv", gallery_rows, bom=True, crlf=True, quote_all=True)  # extra column
    assert predictions.read_bytes().startswith(b'\xef\xbb\xbf"id","landmarks"\r\n')
    out = tmp_path / "out"
    status, _, _ = _main(_argv(out, baseline.cache, predictions=predictions, gallery=gallery), capsys)
    assert status == 0
    assert (out / "out.csv").read_bytes() == baseline.output
    assert (out / "details.csv").read_bytes() == baseline.details


def test_header_only_files(baseline, tmp_path, capsys):
    header_only = _write_rows(tmp_path / "p.csv", [["id", "label", "confidence"]], crlf=True)
    out = tmp_path / "out"
    status, _, _ = _main(_argv(out, baseline.cache, predictions=header_only), capsys)
    assert status == 0
    assert (out / "out.csv").read_text() == "id,label,confidence\n"
    assert len(_details(out / "details.csv")) == 0

    empty_gallery = _write_rows(tmp_path / "g.csv", [["id", "landmark_id"]])
    status, _, _ = _main(_argv(out, baseline.cache, gallery=empty_gallery), capsys)
    assert status == 0
    details = _details(out / "details.csv")
    assert len(details) == 26 and set(details["status"]) == {"no_gallery"}
    assert set(details["reason"]) == {"label has no gallery photo"}
    assert (details["new_confidence"] == details["old_confidence"]).all()


LABELS = {"astronaut": "Astronaut, Houston TX", "camera": "camera  man", "chelsea": "Chelsea the cat, 2005",
          "coffee": "'coffee' \"cup\"", "rocket": "Falcon 9, DSCOVR launch"}


def test_labels_with_spaces_commas_and_quotes_are_verified_like_plain_ones(baseline, tmp_path, capsys):
    rows = _sample_rows("predictions.csv")
    renamed = [rows[0]] + [[pid, f"{LABELS[label]} {score}"] for pid, (label, score) in
                           ((pid, cell.rsplit(" ", 1)) for pid, cell in rows[1:])]
    renamed.append(["q-unknown", "Big Ben, London 0.5"])  # a label the gallery lacks
    gallery = [_sample_rows("gallery.csv")[0]] + [[g, LABELS[label]] for g, label in _sample_rows("gallery.csv")[1:]]
    out = tmp_path / "out"
    status, _, _ = _main(_argv(out, baseline.cache, predictions=_write_rows(tmp_path / "p.csv", renamed),
                               gallery=_write_rows(tmp_path / "g.csv", gallery)), capsys)
    assert status == 0
    details = _details(out / "details.csv")
    unknown = details.iloc[-1]
    assert (unknown["id"], unknown["label"], unknown["status"]) == ("q-unknown", "Big Ben, London", "no_gallery")
    expected = baseline.table.assign(label=baseline.table["label"].map(LABELS))
    pd.testing.assert_frame_equal(details.iloc[:-1], expected)
    written = delfverify.tables.read_predictions(out / "out.csv").table
    assert list(written["label"].iloc[:-1]) == list(expected["label"])


def _place_decoy(path: Path) -> Path:
    """A valid photo (a copy of the query) where an escaping id would lead: it must never be read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DATA / "queries" / f"{QID}.jpg", path)
    return path.resolve()


def test_query_ids_that_cannot_name_a_file_get_status_error(baseline, tmp_path, capsys):
    queries = _copy_images(tmp_path, "queries")
    decoys = {_place_decoy(tmp_path / "outside.jpg"), _place_decoy(tmp_path / "secret" / "photo.jpg")}
    bad_ids = {
        "../outside": "cannot name a file",
        "../../etc/passwd": "cannot name a file",
        str(tmp_path / "secret" / "photo"): "cannot name a file",  # absolute path (".jpg" is appended)
        "..": "cannot name a file",
        "sub\\..\\x": "cannot name a file",
        "x" * 10_000: "cannot name a file",
        "x" * 252: "cannot name a file",  # 256-byte file name: too long for the file system
        "\u00e9" * 130: "cannot name a file",  # 130 characters, 264 bytes
    }
    rows = _sample_rows("predictions.csv") + [[pid, "astronaut 0.75"] for pid in bad_ids]
    out = tmp_path / "out"
    argv = _argv(out, baseline.cache, predictions=_write_rows(tmp_path / "p.csv", rows), query_images=queries)
    with _recording_opened_files() as opened:
        status, _, _ = _main(argv, capsys)
    assert status == 0
    assert queries / f"{QID}.jpg" in opened  # the recording works
    assert not decoys & opened
    details = _details(out / "details.csv")
    bad = details[details["id"].isin(bad_ids)]
    assert len(bad) == len(bad_ids)
    for _, row in bad.iterrows():
        assert row["status"] == "error" and row["inliers"] == "- - -"
        assert row["reason"].startswith("query image: image id ") and bad_ids[row["id"]] in row["reason"]
        assert str(queries) in row["reason"] and len(row["reason"]) < 300  # names the folder, not 10,000 x's
    _assert_same_except(details, baseline, set(bad_ids))


@pytest.mark.parametrize("column", ["id", "path"])
def test_gallery_ids_and_paths_never_leave_the_gallery_folder(baseline, tmp_path, capsys, column):
    gallery_images = _copy_images(tmp_path, "gallery")
    decoy = _place_decoy(tmp_path / "outside.jpg")
    # The three astronaut photos: one escapes upwards, one by an absolute path, one has a 10,000-character id.
    escaping = ["../outside", str(tmp_path / "outside"), "y" * 10_000]
    if column == "path":
        escaping = ["../outside.jpg", str(decoy), "sub/../../outside.jpg"]
    rows = [["id", "landmark_id", "path"]]
    for i, (gid, label) in enumerate(_sample_rows("gallery.csv")[1:]):
        if label != "astronaut":
            rows.append([gid, label, ""])
        elif column == "id":
            rows.append([escaping[i], label, ""])
        else:
            rows.append([gid, label, escaping[i]])
    out = tmp_path / "out"
    argv = _argv(out, baseline.cache, gallery=_write_rows(tmp_path / "g.csv", rows), gallery_images=gallery_images)
    with _recording_opened_files() as opened:
        status, _, _ = _main(argv, capsys)
    assert status == 0
    assert gallery_images / "46117ba9fc99dd17.jpg" in opened  # the recording works
    assert decoy not in opened
    details = _details(out / "details.csv")
    astronaut = details["label"] == "astronaut"
    for _, row in details[astronaut].iterrows():
        assert row["status"] == "error" and row["inliers"] == "- - -"
        reasons = row["reason"].split("; ")
        assert len(reasons) == 3 and all(r.startswith("gallery image: image ") for r in reasons)
        assert all(("escapes the image directory" if column == "path" else "cannot name a file") in r
                   for r in reasons)
        assert len(row["reason"]) < 1000  # the 10,000-character id is shortened
    _assert_same_except(details, baseline, set(details.loc[astronaut, "id"]))


# --- nothing unpickled or evaluated -----------------------------------------------------------------------------

FORBIDDEN = {
    "pickle module": re.compile(r"\bimport\s+(c?pickle|dill|cloudpickle|shelve|marshal)\b|\bfrom\s+(c?pickle|dill|"
                                r"cloudpickle|shelve|marshal)\b|\b(pickle|dill|cloudpickle|marshal)\.loads?\("),
    "eval": re.compile(r"(?<![\w.])eval\("),
    "exec": re.compile(r"(?<![\w.])exec\("),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "yaml.load": re.compile(r"\byaml\.(unsafe_)?load\("),
    "torch/joblib load": re.compile(r"\b(torch|joblib)\.load\("),
    "pandas read_pickle": re.compile(r"read_pickle\("),
}


def test_package_source_never_unpickles_or_evaluates():
    sources = sorted(Path(delfverify.__file__).parent.rglob("*.py"))
    assert len(sources) > 10
    found = [f"{path.relative_to(REPO)}:{number}: {name}: {line.strip()}"
             for path in sources for number, line in enumerate(path.read_text().splitlines(), 1)
             for name, pattern in FORBIDDEN.items() if pattern.search(line)]
    assert found == []
    loads = [f"{path.name}: {line.strip()}" for path in sources for line in path.read_text().splitlines()
             if re.search(r"\bnp\.load\(", line) and "allow_pickle=False" not in line]
    assert loads == []  # every numpy load refuses pickles explicitly


# --- round 2: special files, the cache and journal on a sick disk, outputs, ids, options ------------------------

def test_special_files_in_place_of_photos_are_refused_and_the_run_goes_on(baseline, tmp_path):
    """A FIFO named like a photo hung the run for ever, and a 40 GB sparse file was read whole into memory. Run in
    a real process, with a time limit, so that a hang fails the test instead of stopping it."""
    queries = _copy_images(tmp_path, "queries")
    fifo, folder, sparse = "da07d5ba65959f62", "084da3a0bc3ebf7d", "085f443e6f4b79fc"
    (queries / f"{fifo}.jpg").unlink()
    os.mkfifo(queries / f"{fifo}.jpg")
    (queries / f"{folder}.jpg").unlink()
    (queries / f"{folder}.jpg").mkdir()
    with open(queries / f"{sparse}.jpg", "wb") as handle:
        handle.truncate(40 * 2**30)
    cache = Path(shutil.copytree(baseline.cache, tmp_path / "cache"))
    (cache / "journal.sqlite").unlink()  # every photo is read again
    run = _subprocess(["-m", "delfverify.cli", *_argv(tmp_path / "out", cache, query_images=queries)])
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    details = _details(tmp_path / "out" / "details.csv")
    reasons = dict(zip(details["id"], details["reason"]))
    assert reasons[fifo] == f"query image: {queries / fifo}.jpg: is a FIFO (named pipe), not a regular file"
    assert reasons[folder] == f"query image: {queries / folder}.jpg: is a directory, not a regular file"
    assert reasons[sparse] == (f"query image: {queries / sparse}.jpg: file too large ({40 * 2**30} bytes, limit "
                               f"{images.MAX_FILE_BYTES})")
    assert set(details.loc[details["id"].isin([fifo, folder, sparse]), "status"]) == {"error"}
    _assert_same_except(details, baseline, {fifo, folder, sparse})


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("delfverify: error: "), err
    return lines[0][len("delfverify: error: "):]


def test_a_cache_on_a_full_disk_stops_the_run_naming_the_path(tmp_path, capsys, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", disk_full)
    cache, out = tmp_path / "cache", tmp_path / "out"
    status, stdout, err = _main(_argv(out, cache), capsys)
    assert status == 2 and stdout == ""
    message = _one_error_line(err)
    assert re.fullmatch(rf"{re.escape(str(cache))}/\w+/\w\w/\w+\.npz: cannot write to the feature store \(No space "
                        rf"left on device\); free space or fix permissions in {re.escape(str(cache))}, or choose "
                        rf"another cache folder \(--cache-dir\) or none \(--no-cache\)", message), message
    assert not out.exists()


def _rows_in(journal: Path) -> int:
    return len(_journal_rows(journal))


def test_a_journal_on_a_full_disk_is_kept_and_reused_by_the_next_run(baseline, private_cache, tmp_path, capsys,
                                                                       monkeypatch):
    journal = private_cache / "journal.sqlite"
    journal.unlink()  # every pair is verified again, and journaled until the disk is full
    opened = PairJournal._open

    def full_disk(self):
        db = opened(self)
        db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")  # SQLITE_FULL soon
        return db

    monkeypatch.setattr(PairJournal, "_open", full_disk)
    out = tmp_path / "out"
    status, stdout, err = _main(_argv(out, private_cache), capsys)
    assert status == 2 and stdout == ""
    assert _one_error_line(err) == (f"{journal}: cannot use the journal (database or disk is full): free space on "
                                    f"its disk, or choose another cache folder (--cache-dir). The journal is left as "
                                    f"it is: the next run reuses the pairs it holds")
    assert not out.exists() and list(private_cache.glob("journal.sqlite.corrupt-*")) == []
    kept = _rows_in(journal)
    assert 0 < kept < NUM_PAIRS
    monkeypatch.undo()  # space freed
    status, stdout, _ = _main(_argv(out, private_cache), capsys)
    assert status == 0
    assert SUMMARY.search(stdout).groups() == (str(NUM_PAIRS - kept), str(kept), "0")
    assert (out / "out.csv").read_bytes() == baseline.output
    assert (out / "details.csv").read_bytes() == baseline.details


_HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_journal_locked_by_another_process_is_waited_for_then_named(baseline, private_cache, tmp_path, capsys,
                                                                       monkeypatch, caplog):
    monkeypatch.setattr(journal_module, "LOCK_TIMEOUT", 1.0)  # 60 s in real runs
    monkeypatch.setattr(journal_module, "_BUSY_STEP", 0.05)
    journal = private_cache / "journal.sqlite"
    db = sqlite3.connect(journal)
    db.execute("DELETE FROM pairs")  # the run has pairs to write
    db.commit()
    db.close()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(journal)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        status, stdout, err = _main(_argv(tmp_path / "out", private_cache), capsys)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert status == 2 and stdout == ""
    assert _one_error_line(err) == (f"{journal}: journal locked by another process for more than 1 s (another "
                                    f"delfverify run sharing this cache?); let it finish, or choose another cache "
                                    f"folder (--cache-dir)")
    assert any(r.getMessage().startswith(f"journal {journal} is locked by another process") for r in caplog.records)
    assert list(private_cache.glob("journal.sqlite.corrupt-*")) == []


# --- outputs -------------------------------------------------------------------------------------------------------

def _inputs(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "inputs"
    folder.mkdir()
    paths = {name: Path(shutil.copyfile(DATA / f"{name}.csv", folder / f"{name}.csv"))
             for name in ("predictions", "gallery")}
    paths["policy"] = folder / "policy.json"
    paths["policy"].write_text('{"bands": [{"lower": 0, "upper": 1, "k": 3, "min_inliers": 5}]}')
    (tmp_path / "link.csv").symlink_to(paths["predictions"])
    os.link(paths["predictions"], tmp_path / "hard.csv")
    return paths


#: name -> (-o, --details, words of the one-line error), paths relative to the test's folder.
OUTPUT_COLLISIONS = {
    "output-is-the-predictions": ("inputs/predictions.csv", "d.csv",
                                  "the output would overwrite the predictions file"),
    "output-is-the-predictions-by-another-path": ("inputs/../inputs/predictions.csv", "d.csv",
                                                  "the output would overwrite the predictions file"),
    "output-is-a-symlink-to-the-predictions": ("link.csv", "d.csv", "the output would overwrite the predictions file"),
    "output-is-a-hard-link-to-the-predictions": ("hard.csv", "d.csv",
                                                 "the output would overwrite the predictions file"),
    "output-is-the-gallery": ("inputs/gallery.csv", "d.csv", "the output would overwrite the gallery file"),
    "output-is-the-policy": ("inputs/policy.json", "d.csv", "the output would overwrite the policy file"),
    "details-is-the-output": ("o.csv", "o.csv", "the details file would overwrite the output"),
    "details-is-the-predictions": ("o.csv", "link.csv", "the details file would overwrite the predictions file"),
    "output-is-a-directory": ("inputs", "d.csv", "the output is a directory; give a file name"),
    "output-below-a-file": ("inputs/gallery.csv/o.csv", "d.csv", "is not a directory"),
}


@pytest.mark.parametrize("case", list(OUTPUT_COLLISIONS))
def test_outputs_that_collide_or_cannot_be_written_are_refused_before_any_work(tmp_path, capsys, case):
    output, details, words = OUTPUT_COLLISIONS[case]
    paths = _inputs(tmp_path)
    before = {name: path.read_bytes() for name, path in paths.items()}
    cache = tmp_path / "cache"
    argv = ["rerank", str(paths["predictions"]), "--gallery", str(paths["gallery"]), "--gallery-images",
            str(DATA / "gallery"), "--query-images", str(DATA / "queries"), "--cache-dir", str(cache),
            "--policy", str(paths["policy"]), "-o", str(tmp_path / output), "--details", str(tmp_path / details),
            "--workers", "1", "-q"]
    status, stdout, err = _main(argv, capsys)
    assert status == 2 and stdout == ""
    message = _one_error_line(err)
    assert message.startswith(f"{tmp_path / (details if case.startswith('details') else output)}: ")
    assert words in message
    assert not cache.exists()  # no work was done
    assert {name: path.read_bytes() for name, path in paths.items()} == before
    assert not (tmp_path / "d.csv").exists() and not (tmp_path / "o.csv").exists()


def test_tune_and_verify_outputs_are_checked_before_any_work(tmp_path, capsys):
    paths = _inputs(tmp_path)
    truth = Path(shutil.copyfile(DATA / "truth.csv", tmp_path / "truth.csv"))
    tune = ["tune", str(paths["predictions"]), "--truth", str(truth), "--gallery", str(paths["gallery"]),
            "--gallery-images", str(DATA / "gallery"), "--query-images", str(DATA / "queries"), "--cache-dir",
            str(tmp_path / "cache"), "--workers", "1", "-q"]
    for extra, words in [(["-o", str(truth)], "the policy would overwrite the truth file"),
                         (["-o", str(tmp_path / "p.json"), "--plot", str(tmp_path / "p.json")],
                          "the plot would overwrite the policy"),
                         (["-o", str(tmp_path / "link.csv")], "the policy would overwrite the predictions file")]:
        status, _, err = _main(tune + extra, capsys)
        assert status == 2 and words in _one_error_line(err)
    photo = DATA / "queries" / f"{QID}.jpg"
    status, _, err = _main(["verify", str(photo), str(photo), "--plot", str(photo), "--cache-dir",
                            str(tmp_path / "cache")], capsys)
    assert status == 2 and _one_error_line(err) == (f"{photo}: the plot would overwrite photo A ({photo}), the same "
                                                    f"file; choose another path")
    assert not (tmp_path / "cache").exists() and truth.read_bytes() == (DATA / "truth.csv").read_bytes()


def test_written_files_get_the_mode_a_plain_write_gives(baseline, tmp_path, capsys):
    umask = 0o027  # neither mkstemp's 0o600 nor an ignored umask's 0o666 passes
    out = tmp_path / "out"
    out.mkdir()
    (out / "out.csv").write_text("old\n")
    (out / "out.csv").chmod(0o640)  # an existing output keeps its mode
    old = os.umask(umask)
    try:
        status, _, _ = _main(_argv(out, tmp_path / "cache"), capsys)
    finally:
        os.umask(old)
    assert status == 0
    assert stat.S_IMODE((out / "out.csv").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "details.csv").stat().st_mode) == 0o666 & ~umask
    entries = list((tmp_path / "cache").rglob("*.npz"))
    assert len(entries) == 41 and {stat.S_IMODE(e.stat().st_mode) for e in entries} == {0o666 & ~umask}


# --- ids are data ------------------------------------------------------------------------------------------------

def test_ids_with_spaces_are_kept_and_their_files_found(baseline, tmp_path, capsys):
    queries = _copy_images(tmp_path, "queries")
    renamed = {QID: f" {QID}", "084da3a0bc3ebf7d": "084da3a0bc3ebf7d  "}  # leading and trailing spaces
    for old, new in renamed.items():
        (queries / f"{old}.jpg").rename(queries / f"{new}.jpg")
    rows = [[renamed.get(row[0], row[0]), *row[1:]] for row in _sample_rows("predictions.csv")]
    out = tmp_path / "out"
    status, _, _ = _main(_argv(out, baseline.cache, predictions=_write_rows(tmp_path / "p.csv", rows),
                               query_images=queries), capsys)
    assert status == 0
    details = _details(out / "details.csv")
    expected = baseline.table.assign(id=baseline.table["id"].map(lambda i: renamed.get(i, i)))
    pd.testing.assert_frame_equal(details, expected)  # found, verified as in the clean run, ids kept
    written = delfverify.tables.read_predictions(out / "out.csv").table
    assert set(renamed.values()) <= set(written["id"])
    assert (out / "out.csv").read_text().count(f"\n {QID},") == 1


# --- option values and truth files --------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, words", [
    (["--seed", "-1"], "--seed must be an integer in [0, 9223372036854775807], got -1"),
])
def test_bad_rerank_option_values_are_one_line_naming_the_option(tmp_path, capsys, extra, words):
    status, _, err = _main(_argv(tmp_path / "out", tmp_path / "cache", extra=extra), capsys)
    assert status == 2 and _one_error_line(err) == words
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("command", ["gap", "tune"])
def test_predictions_whose_ids_are_missing_from_the_truth_name_the_file_and_ids(tmp_path, capsys, command):
    truth_rows = _sample_rows("truth.csv")
    truth = _write_rows(tmp_path / "truth.csv", [truth_rows[0]] + truth_rows[3:])  # the first two ids dropped
    missing = [row[0] for row in truth_rows[1:3]]
    argv = [command, str(DATA / "predictions.csv"), "--truth", str(truth)]
    if command == "tune":
        argv += ["--gallery", str(DATA / "gallery.csv"), "--gallery-images", str(DATA / "gallery"),
                 "--query-images", str(DATA / "queries"), "--cache-dir", str(tmp_path / "cache"), "-o",
                 str(tmp_path / "policy.json"), "--workers", "1"]
    status, stdout, err = _main(argv, capsys)
    assert status == 2 and stdout == ""
    assert _one_error_line(err) == (f"{DATA / 'predictions.csv'} against {truth}: predictions has 2 id(s) that are "
                                    f"not in truth, e.g. {missing[0]!r}, {missing[1]!r}")
    assert not (tmp_path / "cache").exists()  # tune stopped before any work
