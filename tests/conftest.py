"""Shared fixtures: a private user cache for every test, one cold run of the sample data, the dev photo set, a
seeded textured synthetic image, and a known-affine warp helper."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import settings

# Property tests draw the same examples on every run and machine (the brief: seeded randomness, results repeat).
settings.register_profile("repeatable", derandomize=True, database=None)
settings.load_profile("repeatable")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data"
DEV_DATA = REPO.parent / "shared" / "data" / "landmarks-dev"

#: The tiny DELF model (``delf_model.py``) finds at most DELF_GRID * DELF_GRID features.
DELF_GRID = 8
#: A mild, well-conditioned affine map (x, y) -> (x', y'): ~10 degree rotation, slight scale, translation.
KNOWN_AFFINE = np.array([[0.95, -0.17, 30.0], [0.15, 0.97, 12.0]], np.float64)


@pytest.fixture(autouse=True)
def _private_user_cache(tmp_path, monkeypatch):
    """Never write to the user's cache, even where a test does not name a cache folder."""
    monkeypatch.setenv("DELFVERIFY_CACHE_DIR", str(tmp_path / "user-cache"))


def sample_argv(out: Path, cache: Path, *extra) -> list[str]:
    """``delfverify rerank`` of the sample data in one process, writing ``out/out.csv`` and ``out/details.csv``."""
    return ["rerank", str(SAMPLE / "predictions.csv"), "--gallery", str(SAMPLE / "gallery.csv"), "--gallery-images",
            str(SAMPLE / "gallery"), "--query-images", str(SAMPLE / "queries"), "--cache-dir", str(cache),
            "-o", str(out / "out.csv"), "--details", str(out / "details.csv"), "--workers", "1", "-q",
            *map(str, extra)]


@dataclass(frozen=True)
class SampleRun:
    """One cold ``delfverify rerank`` of the sample data with the defaults: its output folder, stdout and cache."""

    folder: Path
    stdout: str
    cache: Path  # every sample photo's features and every pair: copy it with ``warm_cache``, never change it

    @property
    def output(self) -> bytes:
        return (self.folder / "out.csv").read_bytes()

    @property
    def details(self) -> bytes:
        return (self.folder / "details.csv").read_bytes()

    def warm_cache(self, destination: Path) -> Path:
        """A private copy of the cache, which the caller may damage or extend."""
        return Path(shutil.copytree(self.cache, destination))


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> SampleRun:
    """The sample data re-ranked once from an empty cache, shared by the tests that need a warm cache."""
    from delfverify import cli

    folder = tmp_path_factory.mktemp("sample-run")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(sample_argv(folder, folder / "cache"))
    assert status == 0, err.getvalue()
    return SampleRun(folder, out.getvalue(), folder / "cache")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A tiny SavedModel with DELF's signature (``tests/delf_model.py``), built once per session: what the DELF
    loading code and the command's handling of TensorFlow are tested on."""
    pytest.importorskip("tensorflow")
    from delf_model import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("delf") / "model", seed=0)


@pytest.fixture(scope="session")
def dev_data() -> Path:
    """The dev photo set beside the repository; skips the test when it is absent."""
    if not (DEV_DATA / "gallery.csv").is_file():
        pytest.skip(f"dev data not found at {DEV_DATA}")
    return DEV_DATA


def make_textured_image(seed: int = 0, height: int = 300, width: int = 400) -> np.ndarray:
    """A seeded RGB uint8 image full of corners and blobs (rectangles, circles, lines, noise patches)."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 127, np.uint8)
    image[:] = rng.integers(60, 200, size=3, dtype=np.uint8)
    for _ in range(60):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        kind = rng.integers(0, 3)
        if kind == 0:
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
            x1, y1 = x0 + int(rng.integers(8, 60)), y0 + int(rng.integers(8, 60))
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, thickness=-1)
        elif kind == 1:
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(image, centre, int(rng.integers(4, 30)), colour, thickness=-1)
        else:
            p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(image, p0, p1, colour, thickness=int(rng.integers(1, 4)))
    for _ in range(15):  # blurred noise patches give blob-like structure at several scales
        y, x = int(rng.integers(0, height - 40)), int(rng.integers(0, width - 40))
        size = int(rng.integers(16, 40))
        patch = rng.integers(0, 256, size=(size // 4, size // 4, 3), dtype=np.uint8)
        patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_CUBIC)
        image[y : y + size, x : x + size] = patch
    return image


def warp_affine(image: np.ndarray, matrix: np.ndarray = KNOWN_AFFINE, size: tuple[int, int] | None = None) -> np.ndarray:
    """``image`` warped by the 2x3 affine ``matrix`` mapping its (x, y) pixels to the output's."""
    height, width = image.shape[:2]
    out_w, out_h = size if size is not None else (width, height)
    return cv2.warpAffine(image, np.asarray(matrix, np.float64), (out_w, out_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


@pytest.fixture
def textured_image() -> np.ndarray:
    """Seeded synthetic RGB uint8 image, 300x400, with many SIFT keypoints."""
    return make_textured_image(seed=0)


@pytest.fixture
def warp():
    """The helper ``warp_affine(image, matrix=KNOWN_AFFINE, size=None)``."""
    return warp_affine


class FifoReader:
    """A FIFO in the test's folder with a thread reading it to the end (``data``); ``close`` releases a reader that
    no writer ever came to."""

    def __init__(self, path: Path):
        os.mkfifo(path)
        self.path, self.data = path, b""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        with open(self.path, "rb") as handle:
            self.data = handle.read()

    def close(self) -> bytes:
        deadline = time.monotonic() + 30
        while self.thread.is_alive() and time.monotonic() < deadline:
            try:  # the reader waits for a writer (or is about to): be one that writes nothing
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader yet
                time.sleep(0.01)
            self.thread.join(timeout=0.1)
        assert not self.thread.is_alive()
        return self.data
