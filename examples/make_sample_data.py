"""Build the small synthetic landmark data set shipped in ``data/``.

Every picture comes from scikit-image's *bundled* sample images (``skimage.data`` functions whose
files ship inside the wheel, so nothing is downloaded) or is a procedurally generated texture. Five
sample images play the part of "landmarks"; every gallery and query photo of a landmark is a
different synthetic view of it: a random crop, a rotation / scale / shear / perspective warp, a
brightness / contrast / gamma / colour change, mild blur and noise, and a JPEG re-encode. Other
sample images and two seeded textures are non-landmark distractor queries. A simulated global
classifier then "predicts" a label and confidence for every query.

The layout is that of the project's dev set::

    <out>/gallery/<id>.jpg     gallery photos of the landmarks
    <out>/gallery.csv          id,landmark_id
    <out>/queries/<id>.jpg     query photos (landmark views and distractors)
    <out>/truth.csv            id,landmarks   (empty for non-landmark queries)
    <out>/predictions.csv      id,landmarks   ("<label> <score>", Kaggle submission format)
    <out>/README.md            what the files are, where the pictures come from, licences

Ids are the first 16 hex digits of the SHA-1 of a fixed name, and every random draw comes from a
generator seeded with ``--seed`` and that name, so running the script twice writes byte-identical
files (given the same versions of numpy, scikit-image and Pillow / libjpeg).

Usage::

    python examples/make_sample_data.py [--out DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata
from skimage import filters, transform

#: Landmark label -> scikit-image sample function name.
LANDMARKS = {
    "astronaut": "astronaut",
    "camera": "camera",
    "chelsea": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
}

#: Bundled sample images used as non-landmark distractor queries (never as landmarks).
DISTRACTOR_IMAGES = (
    "brick",
    "clock",
    "coins",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "text",
)

#: Procedurally generated distractor textures.
DISTRACTOR_TEXTURES = ("texture_noise", "texture_blocks")

#: Licence / provenance of each sample image, as stated in its ``skimage.data`` docstring.
SOURCE_NOTES = {
    "astronaut": "Eileen Collins, NASA Great Images database; no known copyright restrictions, public domain",
    "brick": "CC0Textures Bricks25; CC0",
    "camera": "photographer Lav Varshney; CC0",
    "chelsea": "Chelsea the cat, photographer Stefan van der Walt; CC0",
    "clock": "motion-blurred wall clock, photographer Stefan van der Walt; public domain",
    "coffee": "coffee cup, Pikolo Espresso Bar, photographer Rachel Michetti; CC0",
    "coins": "Greek coins from Pompeii, Brooklyn Museum Collection; no known copyright restrictions",
    "gravel": "CC0Textures Gravel04; CC0",
    "horse": "horse silhouette by Andreas Preuss (marauder), openclipart; CC0",
    "hubble_deep_field": "Hubble eXtreme Deep Field, NASA / HubbleSite; public domain",
    "immunohistochemistry": "IHC staining, Center for Microscopy And Molecular Imaging (CMMI); "
    "no known copyright restrictions",
    "retina": "fundus photograph, Mikael Häggström, Wikimedia Commons; CC0",
    "rocket": "DSCOVR launch on Falcon 9, SpaceX Photos; public domain",
    "text": "corner-detection test image, Wikipedia File:Corner.png; no known copyright restrictions, "
    "public domain",
}

GALLERY_VIEWS = 3
QUERY_VIEWS = 3
MAX_SIDE = 640
JPEG_QUALITY = 90
P_CORRECT = 0.6


@dataclass(frozen=True)
class Item:
    """One picture of the data set."""

    id: str
    split: str  # "gallery" or "queries"
    landmark: str  # "" for non-landmark queries
    source: str  # skimage.data function name or texture name
    view: int


def make_id(name: str) -> str:
    """16 lowercase hex digits derived from ``name`` (SHA-1)."""
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:16]


def make_rng(seed: int, name: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and ``name``, independent of every other name's."""
    return np.random.default_rng([seed, int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:8], 16)])


def to_rgb_float(image: np.ndarray) -> np.ndarray:
    """Gray, RGB, RGBA, bool or uint8 array -> float64 RGB in [0, 1]."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.float64)
    elif image.dtype == np.uint8:
        image = image.astype(np.float64) / 255.0
    else:
        image = image.astype(np.float64)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.clip(image[..., :3], 0.0, 1.0)


def limit_size(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Downscale (anti-aliased) so that the longest side is at most ``max_side``."""
    h, w = image.shape[:2]
    factor = max_side / max(h, w)
    if factor >= 1.0:
        return image
    shape = (max(1, round(h * factor)), max(1, round(w * factor)), image.shape[2])
    return transform.resize(image, shape, order=1, anti_aliasing=True, mode="reflect")


def load_sample(name: str) -> np.ndarray:
    """A bundled scikit-image sample image as float RGB, longest side at most ``MAX_SIDE``."""
    return limit_size(to_rgb_float(getattr(skdata, name)()))


def texture_noise(rng: np.random.Generator, size: tuple[int, int] = (480, 560)) -> np.ndarray:
    """Coloured multi-octave value noise (cloud / stone-like)."""
    h, w = size
    out = np.zeros((h, w, 3))
    for octave in range(1, 7):
        cells = 2**octave
        coarse = rng.standard_normal((cells + 1, cells + 1, 3))
        out += transform.resize(coarse, (h, w, 3), order=3, mode="edge") / (1.6**octave)
    out -= out.min(axis=(0, 1))
    out /= out.max(axis=(0, 1))
    tint = rng.uniform(0.6, 1.0, size=3)
    return np.clip(out * tint, 0.0, 1.0)


def texture_blocks(rng: np.random.Generator, size: tuple[int, int] = (480, 560)) -> np.ndarray:
    """Random overlapping rectangles and discs on a noisy background (a busy, man-made-looking texture)."""
    h, w = size
    out = np.empty((h, w, 3))
    out[:] = rng.uniform(0.2, 0.8, size=3)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(60):
        color = rng.uniform(0.0, 1.0, size=3)
        if rng.random() < 0.6:
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            bh, bw = rng.integers(8, h // 4), rng.integers(8, w // 4)
            out[y0 : y0 + bh, x0 : x0 + bw] = color
        else:
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(6, min(h, w) / 8)
            out[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = color
    out += rng.normal(0.0, 0.03, size=out.shape)
    return np.clip(filters.gaussian(out, sigma=1.0, channel_axis=-1), 0.0, 1.0)


def load_source(name: str, seed: int) -> np.ndarray:
    """The base picture for ``name``: a bundled sample image or a seeded procedural texture."""
    if name == "texture_noise":
        return texture_noise(make_rng(seed, "source/" + name))
    if name == "texture_blocks":
        return texture_blocks(make_rng(seed, "source/" + name))
    return load_sample(name)


def random_view_quad(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, float, float]:
    """Corners (TL, TR, BR, BL; x, y) of the source region a synthetic camera sees, and the crop's size.

    A crop of 60-95 % of the area is rotated (up to 20 degrees), sheared and perspective-distorted
    about its centre, then shrunk towards the centre just enough to lie inside the image (a camera
    zooming in rather than seeing past the picture's edge).
    """
    area = rng.uniform(0.60, 0.95)
    aspect = np.exp(rng.uniform(-0.15, 0.15))
    crop_w = min(width, width * np.sqrt(area * aspect))
    crop_h = min(height, height * np.sqrt(area / aspect))
    cx = rng.uniform(crop_w / 2, width - crop_w / 2)
    cy = rng.uniform(crop_h / 2, height - crop_h / 2)

    theta = np.deg2rad(rng.uniform(-20.0, 20.0))
    shear = rng.uniform(-0.15, 0.15)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    linear = rot @ np.array([[1.0, shear], [0.0, 1.0]])

    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * [crop_w / 2, crop_h / 2]
    # Perspective: a keystone (one edge shorter than the opposite one) plus a little corner jitter.
    keystone_x, keystone_y = rng.uniform(-0.12, 0.12, size=2)
    corners[:, 0] *= 1.0 + keystone_x * np.sign(corners[:, 1])
    corners[:, 1] *= 1.0 + keystone_y * np.sign(corners[:, 0])
    corners += rng.uniform(-0.04, 0.04, size=(4, 2)) * [crop_w, crop_h]
    offsets = corners @ linear.T

    # Shrink about the centre until all corners are inside [0, width-1] x [0, height-1].
    limit = 1.0
    for dx, dy in offsets:
        for d, c, hi in ((dx, cx, width - 1.0), (dy, cy, height - 1.0)):
            if d > 0:
                limit = min(limit, (hi - c) / d)
            elif d < 0:
                limit = min(limit, (0.0 - c) / d)
    quad = np.array([cx, cy]) + offsets * limit
    return quad, crop_w, crop_h


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 homography mapping four ``src`` points (x, y) exactly onto four ``dst`` points."""
    a = np.zeros((8, 8))
    b = np.zeros(8)
    for k, ((x, y), (u, v)) in enumerate(zip(src, dst)):
        a[2 * k] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
        a[2 * k + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
        b[2 * k], b[2 * k + 1] = u, v
    return np.append(np.linalg.solve(a, b), 1.0).reshape(3, 3)


def warp_view(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random geometric view of ``image`` (float RGB): the crop's size times 0.7-1.3, at most MAX_SIDE."""
    height, width = image.shape[:2]
    quad, crop_w, crop_h = random_view_quad(rng, width, height)
    scale = rng.uniform(0.7, 1.3)
    out_w, out_h = crop_w * scale, crop_h * scale
    cap = min(1.0, MAX_SIDE / max(out_w, out_h))
    out_w, out_h = max(32, round(out_w * cap)), max(32, round(out_h * cap))

    dst = np.array([[0, 0], [out_w - 1, 0], [out_w - 1, out_h - 1], [0, out_h - 1]], dtype=np.float64)
    tform = transform.ProjectiveTransform(matrix=homography(dst, quad))  # output pixel -> source pixel
    edges = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)  # top, right, bottom, left
    shrink = max((edges[0] + edges[2]) / (2 * out_w), (edges[1] + edges[3]) / (2 * out_h))  # > 1: minified
    if shrink > 1.05:  # anti-alias before minifying
        image = filters.gaussian(image, sigma=0.5 * (shrink - 1.0) + 0.3, channel_axis=-1)
    return transform.warp(image, tform, output_shape=(out_h, out_w), order=1, mode="edge")


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, gamma, colour cast, mild blur and sensor noise."""
    gray_source = np.allclose(image[..., 0], image[..., 1]) and np.allclose(image[..., 1], image[..., 2])
    out = (image - 0.5) * rng.uniform(0.75, 1.25) + 0.5 + rng.uniform(-0.12, 0.12)
    out = np.clip(out, 0.0, 1.0) ** rng.uniform(0.75, 1.35)
    gains = rng.uniform(0.9, 1.1, size=3)
    if gray_source:
        gains[:] = gains[0]
    out = out * gains
    sigma = rng.uniform(0.0, 1.0)
    if sigma > 0.3:
        out = filters.gaussian(out, sigma=sigma, channel_axis=-1)
    noise = rng.uniform(0.0, 0.02)
    out = out + rng.normal(0.0, noise, size=out.shape[:2] + (1,) if gray_source else out.shape)
    return np.clip(out, 0.0, 1.0)


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """Encode float RGB as a baseline JPEG with fixed settings (no metadata, 4:2:0)."""
    pixels = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(
        buf, format="JPEG", quality=quality, subsampling="4:2:0", optimize=False, progressive=False
    )
    return buf.getvalue()


def make_view(source: np.ndarray, rng: np.random.Generator) -> bytes:
    """One synthetic photo of ``source``: warp, photometric change, JPEG round trip, final JPEG q90."""
    view = photometric(warp_view(source, rng), rng)
    first = jpeg_bytes(view, quality=int(rng.integers(60, 91)))
    decoded = np.asarray(Image.open(io.BytesIO(first)).convert("RGB"), dtype=np.float64) / 255.0
    return jpeg_bytes(decoded, JPEG_QUALITY)


def plan_items() -> list[Item]:
    """Every picture of the data set, in file order (gallery, landmark queries, distractor queries)."""
    items = []
    for label, source in LANDMARKS.items():
        for view in range(GALLERY_VIEWS):
            items.append(Item(make_id(f"gallery/{label}/{view}"), "gallery", label, source, view))
    for label, source in LANDMARKS.items():
        for view in range(QUERY_VIEWS):
            items.append(Item(make_id(f"queries/{label}/{view}"), "queries", label, source, view))
    for source in DISTRACTOR_IMAGES + DISTRACTOR_TEXTURES:
        items.append(Item(make_id(f"queries/distractor/{source}"), "queries", "", source, 0))
    if len({item.id for item in items}) != len(items):
        raise RuntimeError("id collision")
    return items


def simulate_predictions(queries: list[Item], labels: list[str], seed: int) -> list[tuple[str, str]]:
    """A seeded stand-in for a global classifier: (id, "<label> <score>") per query, in query order.

    A landmark query gets its true label with probability 0.6 and confidence ~ Beta(5, 3), else a
    random other landmark with ~ Beta(2, 4); a non-landmark query gets a random landmark with ~ Beta(2, 3).
    """
    rng = make_rng(seed, "predictions")
    rows = []
    for item in queries:
        if item.landmark:
            if rng.random() < P_CORRECT:
                label, score = item.landmark, rng.beta(5, 3)
            else:
                others = [x for x in labels if x != item.landmark]
                label, score = others[rng.integers(len(others))], rng.beta(2, 4)
        else:
            label, score = labels[rng.integers(len(labels))], rng.beta(2, 3)
        rows.append((item.id, f"{label} {score:.4f}"))
    return rows


def write_csv(path: Path, header: tuple[str, str], rows: list[tuple[str, str]]) -> None:
    """CSV written like the dev set (Python's csv module defaults: CRLF line ends)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def readme_text(items: list[Item], seed: int) -> str:
    """The ``README.md`` describing the generated files."""
    n_gallery = sum(item.split == "gallery" for item in items)
    n_landmark_queries = sum(item.split == "queries" and bool(item.landmark) for item in items)
    n_distractors = sum(item.split == "queries" and not item.landmark for item in items)
    used = sorted(set(LANDMARKS.values()) | set(DISTRACTOR_IMAGES))
    lines = [
        "# Sample data",
        "",
        "A small synthetic landmark data set for examples and tests, in the same layout as the dev set.",
        f"Generated by `python examples/make_sample_data.py` (seed {seed}); re-running it rewrites these",
        "files byte for byte (with the same numpy, scikit-image and Pillow/libjpeg versions).",
        "",
        "## Files",
        "",
        f"- `gallery/<id>.jpg`: {n_gallery} gallery photos, {GALLERY_VIEWS} views of each of "
        f"{len(LANDMARKS)} landmarks ({', '.join(LANDMARKS)}).",
        "- `gallery.csv`: `id,landmark_id`, one row per gallery photo.",
        f"- `queries/<id>.jpg`: {n_landmark_queries + n_distractors} query photos: {QUERY_VIEWS} further views "
        f"of each landmark ({n_landmark_queries}) and {n_distractors} non-landmark distractors.",
        "- `truth.csv`: `id,landmarks`, the true landmark of each query (empty for non-landmark queries).",
        "- `predictions.csv`: `id,landmarks`, a simulated global classifier's output in Kaggle submission "
        'format, one `"<label> <score>"` per query (same order as `truth.csv`). A landmark query gets its '
        f"true label with probability {P_CORRECT} and confidence ~ Beta(5, 3), otherwise a random other "
        "landmark with ~ Beta(2, 4); a non-landmark query gets a random landmark with ~ Beta(2, 3).",
        "",
        "Ids are the first 16 hex digits of the SHA-1 of a fixed name (e.g. `gallery/rocket/0`). "
        "CSV files have CRLF line ends, like the dev set.",
        "",
        "## How the photos were made",
        "",
        "Every landmark photo is a different synthetic view of one scikit-image sample image: a crop of "
        "60-95 % of the area, rotated by up to 20 degrees, sheared, perspective-distorted and scaled by "
        "0.7-1.3 (at most 640 px on the long side), with brightness, contrast, gamma and colour changes, "
        "mild Gaussian blur and noise, a JPEG round trip at quality 60-90 and a final JPEG at quality 90. "
        "Gallery and query views are drawn independently, so no query is a copy of a gallery photo. "
        "Distractor queries are single views, made the same way, of other sample images and of two "
        "procedurally generated textures (seeded value noise, random shapes).",
        "",
        "## Sources and licences",
        "",
        "All pictures come from the sample images bundled with scikit-image (`skimage.data`, no download) "
        "or are generated by the script. Licences as stated in each `skimage.data` function's docstring:",
        "",
    ]
    lines += [f"- `skimage.data.{name}()`: {SOURCE_NOTES[name]}" for name in used]
    lines += [
        "- `texture_noise`, `texture_blocks`: generated by `examples/make_sample_data.py`; no third-party content.",
        "",
        "| id | set | landmark | source |",
        "|---|---|---|---|",
    ]
    for item in items:
        source = item.source if item.source.startswith("texture_") else f"skimage.data.{item.source}"
        lines.append(f"| {item.id} | {item.split} | {item.landmark} | {source} |")
    return "\n".join(lines) + "\n"


def build(out: Path, seed: int) -> list[Item]:
    """Write the whole data set under ``out`` (its ``gallery/`` and ``queries/`` are replaced)."""
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("gallery", "queries"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
        (out / sub).mkdir()

    items = plan_items()
    sources: dict[str, np.ndarray] = {}
    for item in items:
        if item.source not in sources:
            sources[item.source] = load_source(item.source, seed)
        name = f"{item.split}/{item.landmark or 'distractor'}/{item.source}/{item.view}"
        (out / item.split / f"{item.id}.jpg").write_bytes(make_view(sources[item.source], make_rng(seed, name)))

    gallery = [item for item in items if item.split == "gallery"]
    queries = [item for item in items if item.split == "queries"]
    write_csv(out / "gallery.csv", ("id", "landmark_id"), [(i.id, i.landmark) for i in gallery])
    write_csv(out / "truth.csv", ("id", "landmarks"), [(i.id, i.landmark) for i in queries])
    write_csv(out / "predictions.csv", ("id", "landmarks"), simulate_predictions(queries, list(LANDMARKS), seed))
    (out / "README.md").write_text(readme_text(items, seed), encoding="utf-8", newline="\n")
    return items


def main(argv: list[str] | None = None) -> None:
    default_out = Path(__file__).resolve().parent.parent / "data"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=default_out, help=f"output folder (default: {default_out})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    items = build(args.out, args.seed)
    print(f"wrote {len(items)} images and the CSV files to {args.out}")


if __name__ == "__main__":
    main()
