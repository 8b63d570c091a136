"""delfverify.store: write-then-read of feature entries (including empty ones), recovery from corrupt and
unreadable entries, atomic writes under concurrent writers, and a store that cannot be written."""

from __future__ import annotations

import errno
import io
import logging
import multiprocessing
import os
import threading
import time
import zipfile
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest

from delfverify import Features
from delfverify import store as store_module
from delfverify.errors import DelfverifyError
from delfverify.store import FORMAT_VERSION, FeatureStore, StoreError, content_hash

KEY = content_hash(b"some image bytes")
FINGERPRINT = "0123456789abcdef"


def _features(n: int, dim: int = 128, seed: int = 0, dtype=np.uint8) -> Features:
    rng = np.random.default_rng(seed)
    descriptors = rng.integers(0, 256, size=(n, dim)) if dtype == np.uint8 else rng.normal(size=(n, dim))
    return Features(
        locations=rng.uniform(0, 1000, size=(n, 2)).astype(np.float32),
        descriptors=descriptors.astype(dtype),
        scales=rng.uniform(1, 10, size=n).astype(np.float32),
        scores=rng.uniform(0, 1, size=n).astype(np.float32),
        extraction_scale=(0.5, 0.5),
        image_shape=(1000, 1200),
    )


def _store(root, dim: int = 128) -> FeatureStore:
    return FeatureStore(root, FINGERPRINT, dim)


def _assert_same(a: Features, b: Features) -> None:
    for name in ("locations", "descriptors", "scales", "scores"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)
    assert (a.extraction_scale, a.image_shape) == (b.extraction_scale, b.image_shape)


def test_store_round_trip_is_exact(tmp_path):
    store = _store(tmp_path)
    features = _features(300)
    assert store.get(KEY) is None
    store.put(KEY, features)
    _assert_same(store.get(KEY), features)
    assert (store.stats.hits, store.stats.misses, store.stats.writes, store.stats.corrupt) == (1, 1, 1, 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
def test_store_round_trip_in_a_new_store_object_for_every_descriptor_dtype(tmp_path, dtype):
    features = _features(50, dim=40, seed=3, dtype=dtype)
    _store(tmp_path, 40).put(KEY, features)
    _assert_same(_store(tmp_path, 40).get(KEY), features)


@pytest.mark.parametrize("dim", [40, 128])
def test_store_empty_features_round_trip_keeps_shapes(tmp_path, dim):
    store = _store(tmp_path, dim)
    store.put(KEY, replace(Features.empty(dim), image_shape=(10, 10)))
    back = store.get(KEY)
    assert len(back) == 0
    assert back.locations.shape == (0, 2)
    assert back.descriptors.shape == (0, dim)
    assert back.scales.shape == (0,) and back.scores.shape == (0,)


def test_store_entries_live_under_the_fingerprint_folder(tmp_path):
    store = _store(tmp_path)
    store.put(KEY, _features(5))
    path = store.path(KEY)
    assert path == tmp_path / FINGERPRINT / KEY[:2] / f"{KEY}.npz"
    assert path.is_file()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [path]


def test_store_other_fingerprint_does_not_see_entries(tmp_path):
    _store(tmp_path).put(KEY, _features(5))
    assert FeatureStore(tmp_path, "fedcba9876543210", 128).get(KEY) is None


def test_store_overwrite_replaces_entry(tmp_path):
    store = _store(tmp_path)
    store.put(KEY, _features(5, seed=1))
    store.put(KEY, _features(7, seed=2))
    _assert_same(store.get(KEY), _features(7, seed=2))
    assert not list(tmp_path.rglob("*.tmp"))


def _write_npz(path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _valid_arrays(**override):
    features = _features(10)
    arrays = {
        "format_version": np.int64(FORMAT_VERSION),
        "extraction_scale": np.array(features.extraction_scale, np.float64),
        "image_shape": np.array(features.image_shape, np.int64),
        "locations": features.locations,
        "descriptors": features.descriptors,
        "scales": features.scales,
        "scores": features.scores,
    }
    arrays.update(override)
    return {k: v for k, v in arrays.items() if v is not None}


def _corrupt_truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_random_bytes(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size=2000, dtype=np.uint8).tobytes())


def _corrupt_empty(path):
    path.write_bytes(b"")


CORRUPTIONS = {
    "truncated": _corrupt_truncated,
    "random-bytes": _corrupt_random_bytes,
    "zero-bytes": _corrupt_empty,
    "wrong-dtype": lambda p: _write_npz(p, **_valid_arrays(descriptors=np.zeros((10, 128), np.float64))),
    "wrong-shape": lambda p: _write_npz(p, **_valid_arrays(locations=np.zeros((10, 3), np.float32))),
    "mismatched-rows": lambda p: _write_npz(p, **_valid_arrays(scores=np.zeros(9, np.float32))),
    "missing-array": lambda p: _write_npz(p, **_valid_arrays(scales=None)),
    "wrong-version": lambda p: _write_npz(p, **_valid_arrays(format_version=np.int64(FORMAT_VERSION + 1))),
    "no-version": lambda p: _write_npz(p, **_valid_arrays(format_version=None)),
    "pickled-object": lambda p: _write_npz(p, **_valid_arrays(scores=np.array([{"a": 1}], dtype=object))),
    "nan-descriptors": lambda p: _write_npz(p, **_valid_arrays(descriptors=np.full((10, 128), np.nan, np.float32))),
    "five-column-descriptors": lambda p: _write_npz(p, **_valid_arrays(descriptors=np.zeros((10, 5), np.uint8))),
    "infinite-locations": lambda p: _write_npz(p, **_valid_arrays(locations=np.full((10, 2), np.inf, np.float32))),
    "locations-outside-the-photo": lambda p: _write_npz(p, **_valid_arrays(
        locations=np.full((10, 2), 5000, np.float32))),
    "no-photo-size": lambda p: _write_npz(p, **_valid_arrays(image_shape=np.zeros(2, np.int64))),
    "huge-header": lambda p: _write_npz_claiming(p, "descriptors", (10**12, 128)),
    "short-data": lambda p: _write_npz_claiming(p, "scores", (10,), data=b"\x00" * 8),
    "extra-member": lambda p: _write_npz(p, **_valid_arrays(), extra=np.zeros(3)),
}


def _write_npz_claiming(path, name: str, shape: tuple, data: bytes = b"") -> None:
    """A valid entry but for one member whose npy header claims ``shape`` and holds ``data``."""
    _write_npz(path, **_valid_arrays())
    arrays = dict(np.load(path))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": arrays[name].dtype.str, "fortran_order": False,
                                                  "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        for member, array in arrays.items():
            if member == name:
                archive.writestr(f"{member}.npy", np.lib.format.magic(1, 0) + header.getvalue() + data)
            else:
                with archive.open(f"{member}.npy", "w") as handle:
                    np.lib.format.write_array(handle, array)


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS), ids=list(CORRUPTIONS))
def test_store_corrupt_entry_is_reported_set_aside_and_missed(tmp_path, caplog, corrupt):
    store = _store(tmp_path)
    store.put(KEY, _features(10))
    path = store.path(KEY)
    CORRUPTIONS[corrupt](path)
    with caplog.at_level(logging.WARNING, logger="delfverify.store"):
        assert store.get(KEY) is None
    assert store.stats.corrupt == 1
    assert not path.exists() and path.with_name(f"{path.name}.bad").is_file()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "delfverify.store"]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()
    # The next read is a plain miss, not another corruption.
    assert store.get(KEY) is None and store.stats.corrupt == 1


def _writer(root: str, fingerprint: str, key: str, seed: int, repeats: int) -> None:
    store = FeatureStore(root, fingerprint, 128)
    for _ in range(repeats):
        store.put(key, _features(400, seed=seed))


def test_store_concurrent_writers_never_expose_partial_entries(tmp_path):
    root = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(str(root), FINGERPRINT, KEY, 0, 50)) for _ in range(2)]
    for process in writers:
        process.start()
    reader = _store(root)
    expected = _features(400, seed=0)
    reads = 0
    try:
        while any(p.is_alive() for p in writers):
            got = reader.get(KEY)
            if got is not None:
                _assert_same(got, expected)
                reads += 1
    finally:
        for process in writers:
            process.join(timeout=60)
    assert all(p.exitcode == 0 for p in writers)
    assert reader.stats.corrupt == 0
    _assert_same(_store(root).get(KEY), expected)
    assert reads + reader.stats.misses > 0
    assert not list(root.rglob("*.tmp"))
    assert [p.name for p in root.rglob("*") if p.is_file()] == [f"{KEY}.npz"]


@pytest.mark.parametrize("key", ["", "abc", "ABCDEF0123456789", "../../etc/passwd", "0123456789abcdeg", "0123 56789"])
def test_store_invalid_key_raises_value_error(tmp_path, key):
    store = _store(tmp_path)
    with pytest.raises(ValueError, match="key"):
        store.path(key)
    with pytest.raises(ValueError, match="key"):
        store.get(key)
    with pytest.raises(ValueError, match="key"):
        store.put(key, _features(1))


@pytest.mark.parametrize("fingerprint", ["", "a/b", "..", "a\\b", "x.y"])
def test_store_invalid_fingerprint_raises_value_error(tmp_path, fingerprint):
    with pytest.raises(ValueError, match="fingerprint"):
        FeatureStore(tmp_path, fingerprint, 128)


def test_content_hash_distinguishes_bytes_and_arrays():
    array = np.zeros((2, 3), np.uint8)
    assert content_hash(array) == content_hash(array.copy())
    assert content_hash(array) != content_hash(array.astype(np.uint16))
    assert content_hash(array) != content_hash(array.reshape(3, 2))
    assert content_hash(b"abc") != content_hash(b"abd")
    assert len(content_hash(b"")) == 64


def test_store_entry_is_a_plain_npz_without_pickles(tmp_path):
    store = _store(tmp_path)
    store.put(KEY, _features(3))
    with zipfile.ZipFile(store.path(KEY)) as archive:
        names = sorted(archive.namelist())
    assert names == sorted(f"{n}.npy" for n in ("format_version", "extraction_scale", "image_shape", "locations", "descriptors",
                                                "scales", "scores"))
    with np.load(store.path(KEY), allow_pickle=False) as npz:
        assert int(npz["format_version"]) == FORMAT_VERSION


def _fifo(path):
    os.mkfifo(path)


def _folder(path):
    path.mkdir()
    (path / "something").write_bytes(b"inside")


@pytest.mark.parametrize("make", [_folder, _fifo], ids=["directory", "fifo"])
def test_store_entry_that_cannot_be_read_is_reported_set_aside_and_recomputed(tmp_path, caplog, make):
    store = _store(tmp_path)
    store.put(KEY, _features(10))
    path = store.path(KEY)
    path.unlink()
    make(path)
    found = {}
    reader = threading.Thread(target=lambda: found.update(entry=store.get(KEY)), daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert not reader.is_alive(), "reading the entry blocked"
    assert found["entry"] is None and store.stats.corrupt == 1
    assert any(str(path) in r.getMessage() and "not a regular file" in r.getMessage() for r in caplog.records)
    assert not os.path.lexists(path)
    store.put(KEY, _features(10))  # written again, and found by the next run
    _assert_same(_store(tmp_path).get(KEY), _features(10))


def test_store_that_cannot_be_written_names_the_entry_and_the_remedy(tmp_path, monkeypatch):
    store = _store(tmp_path / "cache")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(StoreError) as info:
        store.put(KEY, _features(10))
    assert str(info.value) == (f"{store.path(KEY)}: cannot write to the feature store (No space left on device); "
                               f"free space or fix permissions in {tmp_path / 'cache'}, or choose another cache "
                               f"folder (--cache-dir) or none (--no-cache)")
    assert isinstance(info.value, DelfverifyError)
    assert list(store.path(KEY).parent.iterdir()) == []  # no temporary file left


def test_a_file_where_a_store_folder_should_be_is_named_with_the_remedy(tmp_path):
    store = _store(tmp_path / "cache")
    shard = store.path(KEY).parent
    shard.parent.mkdir(parents=True)
    shard.write_bytes(b"not a folder")
    with pytest.raises(StoreError) as info:
        store.put(KEY, _features(3))
    assert str(info.value) == (f"{shard}: is not a folder, where the feature store keeps {KEY}.npz; remove it, or "
                               f"choose another cache folder (--cache-dir)")
    assert shard.read_bytes() == b"not a folder"


def test_compact_rootsift_entries_take_at_most_180_bytes_a_keypoint(tmp_path, textured_image):
    from delfverify import Verifier

    verifier = Verifier(cache_dir=tmp_path)
    features = verifier.features_of(textured_image)
    entry = next(tmp_path.rglob("*.npz"))
    assert features.descriptors.dtype == np.uint8 and len(features) > 500
    assert entry.stat().st_size / len(features) <= 180


_CACHE_VARIABLES = {"DELFVERIFY_CACHE_DIR": [None, "", "~/dv", "~", "{tmp}/abs", "relative"],
                    "XDG_CACHE_HOME": [None, "~/xdg", "{tmp}/xdg", "relative-xdg"]}


@pytest.mark.parametrize("home", ["exists", "missing"])
@pytest.mark.parametrize("xdg", _CACHE_VARIABLES["XDG_CACHE_HOME"])
@pytest.mark.parametrize("own", _CACHE_VARIABLES["DELFVERIFY_CACHE_DIR"])
def test_the_user_cache_folder_of_every_environment_is_expanded_or_refused(tmp_path, monkeypatch, own, xdg, home):
    """The kind: the cache folder comes from the environment. ``~`` is expanded as a shell would (a folder named
    ``~`` in the current folder was made, which ``rm -rf ~`` then deletes with the user's home); a relative
    XDG_CACHE_HOME is ignored, as the XDG specification asks; a folder in a home folder that does not exist is
    refused in one line naming the variable and the remedy (HOME=/nonexistent made /nonexistent/.cache as root).
    Nothing is created either way."""
    from delfverify.store import default_cache_dir

    home_dir = tmp_path / ("home" if home == "exists" else "no-home")
    if home == "exists":
        home_dir.mkdir()
    monkeypatch.setenv("HOME", str(home_dir))
    monkeypatch.chdir(tmp_path)
    for name, value in (("DELFVERIFY_CACHE_DIR", own), ("XDG_CACHE_HOME", xdg)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value.format(tmp=tmp_path))
    before = sorted(tmp_path.rglob("*"))
    if own:
        given, variable, suffix = own, "DELFVERIFY_CACHE_DIR", ""
    elif xdg and not xdg.startswith("relative"):
        given, variable, suffix = xdg, "XDG_CACHE_HOME", "delfverify"
    else:
        given, variable, suffix = "~/.cache", None, "delfverify"
    given = given.format(tmp=tmp_path)
    if given.startswith("~") and home == "missing":
        with pytest.raises(StoreError) as info:
            default_cache_dir()
        message = str(info.value)
        assert len(message.splitlines()) == 1 and f"{home_dir} (HOME) does not exist" in message
        assert "--cache-dir" in message and "DELFVERIFY_CACHE_DIR" in message
        assert (variable or "the user cache folder") in message
    else:
        expected = (home_dir / given[2:] if given.startswith("~") else Path(given)) / suffix
        assert default_cache_dir() == expected
        assert "~" not in default_cache_dir().parts
    assert default_cache_dir(check=False).parts[0] != "~"
    assert sorted(tmp_path.rglob("*")) == before


def test_a_run_whose_home_folder_is_missing_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    from delfverify import cli

    monkeypatch.delenv("DELFVERIFY_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "nonexistent"))
    data = Path(__file__).resolve().parents[1] / "data"
    status = cli.main(["rerank", str(data / "predictions.csv"), "--gallery", str(data / "gallery.csv"),
                       "--gallery-images", str(data / "gallery"), "--query-images", str(data / "queries"),
                       "-o", str(tmp_path / "out.csv"), "--workers", "1"])
    err = capsys.readouterr().err
    assert status == 2 and len(err.splitlines()) == 1 and "(HOME) does not exist" in err
    assert list(tmp_path.iterdir()) == []


#: Names of the store's own temporary files (``fileio.create_temporary``'s of an entry), which a killed writer leaves.
OWN_TEMPORARIES = [f".{KEY[:40]}.2f0006c3.tmp", ".deadbeef.12345678.tmp", ".deadbeef.npz.12345678.tmp"]
#: Names a user's files may have in a shard folder, near those but of no temporary file the store makes.
OTHER_NAMES = [".notes.12345678.tmp", "notes.txt", ".deadbeef.1234567.tmp", ".deadbeef.12345678.tmp.keep",
               f"{KEY[:40]}.2f0006c3.tmp", ".DEADBEEF.12345678.tmp", f".{KEY}.2f0006c3.tmp", f"{KEY[:8]}.npz.bad",
               ".deadbeef.1234567g.tmp", ".deadbeef.12345678.TMP", ".deadbeef\n.12345678.tmp"]


def _plant(path: Path, kind: str, age_s: float, outside: Path) -> None:
    """A file, folder or symbolic link (to a user's file outside the store) at ``path``, last changed ``age_s``
    seconds ago."""
    if kind == "file":
        path.write_bytes(b"x" * 100)
    elif kind == "folder":
        path.mkdir()
    else:
        outside.write_bytes(b"precious")
        os.utime(outside, (0, 0))
        path.symlink_to(outside)
    then = time.time() - age_s
    os.utime(path, (then, then), follow_symlinks=False)


@pytest.mark.parametrize("kind", ["file", "folder", "symlink"])
@pytest.mark.parametrize("age_s", [2 * 86400, 3600 + 60, 3600 - 60, 0])
@pytest.mark.parametrize("name", OWN_TEMPORARIES + OTHER_NAMES)
def test_a_write_removes_only_the_stale_temporary_files_of_the_store_s_own_naming(tmp_path, monkeypatch, name,
                                                                                  age_s, kind):
    """The kind: whatever a shard folder holds beside a killed writer's leftovers, the store's first write there in
    a process removes exactly the regular files named as its own temporaries and older than an hour."""
    monkeypatch.setattr(store_module, "_swept", set())
    shard = tmp_path / "c" / FINGERPRINT / KEY[:2]
    shard.mkdir(parents=True)
    _plant(shard / name, kind, age_s, tmp_path / "user.txt")
    _store(tmp_path / "c").put(KEY, _features(5))
    removed = name in OWN_TEMPORARIES and kind == "file" and age_s > store_module.STALE_TEMPORARY_S
    assert os.path.lexists(shard / name) is not removed
    assert sorted(os.listdir(shard)) == sorted([f"{KEY}.npz"] + ([] if removed else [name]))
    assert kind != "symlink" or (tmp_path / "user.txt").read_bytes() == b"precious"


def test_a_shard_folder_is_swept_once_a_process_and_only_the_one_written(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "_swept", set())
    store, other = _store(tmp_path / "c"), content_hash(b"other bytes")
    assert other[:2] != KEY[:2]
    store.put(KEY, _features(5))
    old = time.time() - 2 * 86400
    leftovers = [tmp_path / "c" / FINGERPRINT / key[:2] / OWN_TEMPORARIES[1] for key in (KEY, other)]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (old, old))
    store.put(KEY, _features(6))  # swept already: this leftover stays until another process writes here
    assert [path.exists() for path in leftovers] == [True, True]
    store.put(other, _features(5))
    assert [path.exists() for path in leftovers] == [True, False]
