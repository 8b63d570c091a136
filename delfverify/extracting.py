"""Step 0, ahead of a run: fill the feature store with the photos of a gallery (or of any CSV of ids), so that
``rerank`` only verifies pairs.

``extract`` hands the photo files to the session's runner (this process, local workers or a Dask cluster: see
``delfverify.execution``), where each is read, hashed and extracted unless its features are already stored
(``execution.extract_files``): the process that hands out the work never reads the photos, so on a cluster they
are read where they are extracted. A run killed half-way is resumed by running it again: what was stored is
skipped. An unreadable photo never stops the run; it is counted and named in the result.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from .errors import shorten
from .execution import StoredFile, batched, extract_files
from .fileio import check_path, path_or_none
from .images import ImageDirectory, ImageLookupError, as_directory
from .measuring import CHUNK_SIZE, open_session
from .outputs import OutputPlan
from .settings import RunSettings, SettingsError, VerifySettings, split_options
from .tables import as_ids

@dataclass(frozen=True)
class Extraction:
    """What ``extract`` did.

    Attributes
    ----------
    photos : int
        Distinct ids given.
    extracted : int
        Photos whose features were extracted now.
    stored : int
        Photos whose features were in the store already (skipped).
    failed : dict of str to str
        Ids whose photo could not be found or read, and why.
    bytes_written : int
        Bytes of the store entries written now.
    seconds : float
        The run's time.
    """

    photos: int
    extracted: int
    stored: int
    failed: Mapping[str, str]
    bytes_written: int
    seconds: float

    @property
    def photos_per_second(self) -> float:
        """Photos extracted a second (0 when none was)."""
        return self.extracted / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for the terminal."""
        failed = f", {len(self.failed)} failed (first: {shorten(next(iter(self.failed)))})" if self.failed else ""
        return (f"{self.photos} photos: {self.extracted} extracted, {self.stored} already stored{failed}; "
                f"{self.photos_per_second:.2f} photos/s, {self.bytes_written / 2**20:.1f} MiB written in "
                f"{self.seconds:.1f} s")


def extract(ids: str | os.PathLike | pd.DataFrame, *, images: str | os.PathLike | ImageDirectory,
            settings: VerifySettings | None = None, run: RunSettings | None = None, **options: Any) -> Extraction:
    """Store the features of the photos of ``ids`` in the feature store, extracting only what is missing.

    Parameters
    ----------
    ids : path or DataFrame
        A CSV with an ``id`` column (and optionally a gallery's relative ``path``), or such a table.
    images : path or ImageDirectory
        The photos' folder (``<id>.jpg`` flat or in the Kaggle nested layout).
    settings, run, **options
        As for ``delfverify.rerank``: the store is that of these settings (``cache_dir``, the extractor, its model
        and ``max_side``), and the work runs where ``workers`` or ``scheduler`` say. ``cache=False`` is refused:
        there would be nothing to fill.

    Returns
    -------
    Extraction

    Raises
    ------
    SettingsError
        ``cache=False`` (a ``ValueError``).
    OutputError
        The cache folder is the ids file, lies in the image folder or cannot be written; before any work.
    TableError, ImageLookupError
        A malformed CSV or a missing image folder; before any work.
    """
    started = time.perf_counter()
    settings, run = split_options(options, settings, run)
    if not run.cache:
        raise SettingsError("cache", "True: extract fills the feature store, so give a cache folder", run.cache)
    ids, images = check_path(ids, "ids", (pd.DataFrame,)), check_path(images, "images", (ImageDirectory,))
    OutputPlan([("the ids file", path_or_none(ids))], [("the image folder", images)]).cache(run.store_folder())
    table = as_ids(ids)
    directory = as_directory(images)
    failed: dict[str, str] = {}
    files: dict[str, str] = {}  # path -> id
    for image_id, relative in zip(table["id"], table["path"]):
        try:
            files.setdefault(str(directory.find(image_id, relative)), image_id)
        except ImageLookupError as exc:
            failed[image_id] = str(exc)
    results: list[StoredFile] = []
    from tqdm import tqdm

    with open_session(settings, run, journal=False) as session, \
            tqdm(total=len(files), unit="photo", disable=not run.progress, desc="extracting") as bar:
        runner = session.runner
        paths = list(files)
        for start in range(0, len(paths), CHUNK_SIZE):
            chunk = paths[start : start + CHUNK_SIZE]
            size = max(1, min(16, len(chunk) // (4 * runner.parallelism) + 1))
            for done in runner.map(extract_files, list(batched(chunk, size))):
                results += done
                bar.update(len(done))
    for result in results:
        if result.error:
            failed[files[result.path]] = result.error
    extracted = sum(r.extracted for r in results)
    return Extraction(len(table), extracted, sum(not r.extracted and not r.error for r in results), failed,
                      sum(r.bytes_written for r in results), time.perf_counter() - started)
