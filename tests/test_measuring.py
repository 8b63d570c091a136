"""delfverify.measuring: ``measure`` reads each image file once in a cold run (the bytes read to hash a photo are
the ones decoded). The journal, extraction and verification paths are exercised end to end in test_pipeline.py,
test_execution.py and test_reliability.py."""

from __future__ import annotations

from pathlib import Path

from delfverify import rerank

DATA = Path(__file__).resolve().parents[1] / "data"


def _run(cache_dir, **options):
    return rerank(DATA / "predictions.csv", gallery=DATA / "gallery.csv", gallery_images=DATA / "gallery",
                  query_images=DATA / "queries", cache_dir=cache_dir, **options)


def test_a_cold_run_reads_each_image_file_once(tmp_path, monkeypatch):
    """Each photo is read once: the bytes read to hash it are the ones decoded."""
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
    result = _run(tmp_path)
    assert result.summary["features_extracted"] == 26 + 15
    assert len(reads) == 26 + 15 and set(reads.values()) == {1}
