"""Runs whose output files are pinned byte for byte (``tests/data/golden_outputs.json``).

Each case is a ``delfverify`` command line run in-process from the repository root, with relative paths, so the
files it writes (and a tuned policy's record of its input files) do not depend on where the checkout lives. The
sample data cases cover the top-1 file, a candidates file (five Kaggle pairs per id), every candidate kept, the
``seed`` policy and ``tune``; the dev and hard cases re-rank the first ``SUBSET_QUERIES`` queries of file 00,
top-1 and top-5, of each labelled set.

``python tests/golden_cases.py`` rewrites the pinned hashes (run it only where outputs are meant to change, and
say why in the commit); ``python tests/golden_cases.py --check`` compares, and ``--full`` uses whole files of the
labelled sets instead of subsets (slow; the same check, for a change that touches every pair).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
PINNED = REPO / "tests" / "data" / "golden_outputs.json"
SUBSET_QUERIES = 4
SAMPLE_LABELS = ("astronaut", "camera", "chelsea", "coffee", "rocket")


def _sample_candidates(path: Path) -> str:
    """The sample predictions as Kaggle cells of five candidates (text only, so no delfverify code runs)."""
    lines = (REPO / "data" / "predictions.csv").read_text().splitlines()
    out = ["id,landmarks"]
    for line in lines[1:]:
        pid, cell = line.split(",")
        label, confidence = cell.split()
        others = [o for o in SAMPLE_LABELS if o != label]
        pairs = [f"{label} {confidence}"] + [f"{o} {round(float(confidence) * (0.8 - 0.15 * i), 4)}"
                                             for i, o in enumerate(others)]
        out.append(f"{pid},{' '.join(pairs)}")
    path.write_text("\n".join(out) + "\n")
    return str(path)


def _subset(source: Path, path: Path, queries: int | None) -> str:
    """The first ``queries`` ids of a predictions file, every row of each (the whole file with None)."""
    lines = source.read_text().splitlines(keepends=True)
    kept, ids = [lines[0]], []
    for line in lines[1:]:
        pid = line.split(",", 1)[0]
        if pid not in ids:
            if queries is not None and len(ids) == queries:
                break
            ids.append(pid)
        kept.append(line)
    path.write_text("".join(kept))
    return str(path)


def _sample(*extra: str) -> list[str]:
    return ["--gallery", "data/gallery.csv", "--gallery-images", "data/gallery", "--query-images", "data/queries",
            *extra]


def cases(work: Path, full: bool = False) -> dict[str, tuple[list[str], list[str]]]:
    """Case name -> (argv, files it writes, relative to ``work``); the labelled sets' cases only where they are."""
    out = {
        "sample-top1": (["rerank", "data/predictions.csv", *_sample(), "-o", f"{work}/out.csv",
                         "--details", f"{work}/details.csv"], ["out.csv", "details.csv"]),
        "sample-seed": (["rerank", "data/predictions.csv", *_sample(), "--policy", "seed", "-o", f"{work}/seed.csv",
                         "--details", f"{work}/seed-details.csv"], ["seed.csv", "seed-details.csv"]),
        "sample-candidates": (["rerank", _sample_candidates(work / "candidates.csv"), *_sample(),
                               "-o", f"{work}/cand.csv", "--details", f"{work}/cand-details.csv"],
                              ["cand.csv", "cand-details.csv"]),
        "sample-keep-candidates": (["rerank", str(work / "candidates.csv"), *_sample(), "--keep-candidates",
                                    "--candidates", "3", "-o", f"{work}/keep.csv"], ["keep.csv"]),
        "sample-tune": (["tune", "data/predictions.csv", "--truth", "data/truth.csv", *_sample(),
                         "--folds", "3", "--repeats", "2", "-o", f"{work}/policy.json"], ["policy.json"]),
    }
    for name in ("landmarks-dev", "landmarks-hard"):
        root = SHARED / name
        if not (root / "gallery.csv").is_file():
            continue
        for kind in ("predictions", "predictions-top5"):
            case = f"{name}-{kind}"
            preds = _subset(root / kind / "00.csv", work / f"{case}.csv", None if full else SUBSET_QUERIES)
            out[case] = (["rerank", preds, "--gallery", str(root / "gallery.csv"), "--gallery-images",
                          str(root / "gallery"), "--query-images", str(root / "queries"),
                          "-o", f"{work}/{case}-out.csv", "--details", f"{work}/{case}-details.csv"],
                         [f"{case}-out.csv", f"{case}-details.csv"])
    return out


def run(work: Path, full: bool = False, names=None) -> dict[str, dict[str, str]]:
    """Run the cases (all, or ``names``) with one cache in ``work``; case -> file -> SHA-256 of its bytes."""
    from delfverify import cli

    hashes = {}
    for name, (argv, files) in cases(work, full).items():
        if names is not None and name not in names:
            continue
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            status = cli.main([*argv, "--cache-dir", str(work / "cache"), "--workers", "1", "-q"])
        if status != 0:
            raise RuntimeError(f"{name}: exit status {status}: {err.getvalue()}")
        hashes[name] = {f: hashlib.sha256((work / f).read_bytes()).hexdigest() for f in files}
    return hashes


def main(argv: list[str]) -> int:
    full = "--full" in argv
    os.chdir(REPO)
    with tempfile.TemporaryDirectory() as tmp:
        hashes = run(Path(tmp), full)
    key = "full" if full else "pinned"
    pinned = json.loads(PINNED.read_text()) if PINNED.is_file() else {}
    if "--check" in argv:
        differ = [name for name, files in hashes.items() if pinned.get(key, {}).get(name) != files]
        print("identical" if not differ else f"differ: {', '.join(differ)}")
        return 1 if differ else 0
    pinned[key] = hashes
    PINNED.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
    print(f"wrote {PINNED} ({key}: {len(hashes)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
