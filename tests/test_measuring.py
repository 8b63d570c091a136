"""delfverify.measuring: ``measure`` reads each image file once in a cold run (the bytes read to hash a photo are
the ones decoded). The journal, extraction and verification paths are exercised end to end in test_pipeline.py,
test_execution.py and test_reliability.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from delfverify import rerank

DATA = Path(__file__).resolve().parents[1] / "data"
LABELS = ("astronaut", "camera", "chelsea", "coffee", "rocket")


def _run(cache_dir, predictions=DATA / "predictions.csv", **options):
    return rerank(predictions, gallery=DATA / "gallery.csv", gallery_images=DATA / "gallery",
                  query_images=DATA / "queries", cache_dir=cache_dir, **options)


def _two_candidates(path: Path) -> Path:
    """The sample predictions with a second candidate each: the next sample label, at half the score."""
    lines = ["id,landmarks"]
    for row in (DATA / "predictions.csv").read_text().splitlines()[1:]:
        pid, cell = row.split(",")
        label, score = cell.split()
        lines.append(f"{pid},{cell} {LABELS[(LABELS.index(label) + 1) % len(LABELS)]} {float(score) / 2}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_cold_run_reads_each_image_file_once(tmp_path, monkeypatch):
    """Each photo is read once: the bytes read to hash it are the ones decoded, and the rounds of candidates (here
    every one verified: the first candidates, as a top-1 run, then the second) share the photos read."""
    import collections

    from delfverify import images, measuring, verifier

    reads = collections.Counter()
    original = images.read_bytes

    def counting(image):
        if not isinstance(image, bytes):
            reads[str(image)] += 1
        return original(image)

    monkeypatch.setattr(measuring, "read_bytes", counting)
    monkeypatch.setattr(verifier, "read_bytes", counting)
    result = _run(tmp_path / "cache", _two_candidates(tmp_path / "candidates.csv"), keep_candidates=True)
    assert result.summary["features_extracted"] == 26 + 15
    assert len(reads) == 26 + 15 and set(reads.values()) == {1}
