"""Images: finding a photo by id in a folder (``ImageDirectory``) and decoding any photo-like input to RGB uint8.

What every entry point takes as an image (``decode_image``, ``load_image``, ``verify_pair``, ``Verifier.key``,
``Verifier.features_of``), checked by ``check_image``:

- a path (``str`` or ``os.PathLike``) of an image file;
- encoded image bytes (``bytes``, ``bytearray`` or ``memoryview``: the content of a file, never raw pixels);
- a PIL image;
- a numpy array of pixels, ``[H, W]`` (gray), ``[H, W, 1]``, ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA, alpha
  dropped), in any byte order.

Anything else (``None``, a number, a list, a tensor) is an ``InputTypeError`` (a ``TypeError``) naming these types;
an input of one of them that cannot be read as a photo is an ``ImageError`` (a ``ValueError``) naming it.

Levels (``to_uint8``, one rule for arrays and for the pixels of 16-bit, 32-bit and float image files), never
clipped: a value outside the range a type allows is refused, naming the range found.

- ``uint8``: as it is.
- ``uint16`` (16-bit PNG and TIFF files, Pillow's ``I;16`` modes): its full range 0..65535, divided by 257.
- any other integer type (signed or unsigned, 8 to 64 bits; 32-bit files, Pillow's mode ``I``): no negative
  value; read at the smallest depth that holds its values: 0..255 as 8-bit levels, up to 65535 as 16-bit levels
  (divided by 257), larger values scaled so that the largest is 255. Such types say nothing about the depth of
  their data (``astype(int)`` of 8-bit pixels gives int64), so the values tell it.
- floats (any width; float TIFF files, Pillow's mode ``F``): values in [0, 1], times 255 and rounded. Anything
  else, 0..255 floats included, is refused (``ImageError`` naming the range found): the tool cannot tell what
  such levels mean, and guessing would give a silently dark or white photo. NaN and infinity are refused.
- ``bool``, complex, object and other dtypes are refused.

An array's content hash (``Verifier.key``) is that of the pixels it reads as, so arrays of any dtype or byte order
that read as the same pixels are the same image (a big-endian and a native ``uint16`` array of equal values, a
float array and the ``uint8`` array it rounds to).

EXIF orientation is applied, so features are computed on the photo as a person sees it.

Limits, each checked before the work it bounds, each refusal an ``ImageError`` naming the image:

- only regular files are read (a FIFO or a device named like a photo is refused unread), and only files of at
  most ``MAX_FILE_BYTES``, checked before they are read (they are read whole into memory);
- decompression bombs (more pixels than ``MAX_PIXELS``) are refused before they are decoded;
- an image whose decoding needs more than ``MAX_DECODE_BYTES`` of memory (``decode_bytes``: its pixels as
  decoded plus two 4-byte-per-pixel working copies) is refused before it is decoded. So one image takes at most
  ``MAX_FILE_BYTES + MAX_DECODE_BYTES`` of memory in any process that reads it. Arrays are converted a block of
  rows at a time, so their conversion holds no full-size temporary copy.

Any exception Pillow raises while decoding (its plugins raise ``OSError``, ``SyntaxError``, ``ValueError``,
``NotImplementedError``, ``struct.error``, ...) makes an ``ImageError``: one bad file never ends a run.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Mapping, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DelfverifyError, InputTypeError, shorten
from .fileio import NotAFileError, check_path, read_regular_file

#: Refuse images with more pixels than this (about 16k x 11k); protects against decompression bombs.
MAX_PIXELS = 178_956_970

#: Refuse image files larger than this (256 MiB) before reading them: files are read whole into memory.
MAX_FILE_BYTES = 256 * 2**20

#: Refuse images whose decoding needs more memory than this (1 GiB, see ``decode_bytes``): an RGB photo of up
#: to about 89 million pixels (Pillow's own warning limit), e.g. 10,900 x 8,200.
MAX_DECODE_BYTES = 2**30

#: Bytes per pixel Pillow keeps for an image of each mode once decoded; every other mode takes 4.
_DECODED_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}

#: Pillow modes whose pixels are not 8-bit levels: converted by ``to_uint8`` (Pillow's own conversion would clip
#: them: a float image in [0, 1] would turn black).
_LEVEL_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")

#: Values copied or converted at a time from a PIL image or a 16-bit array (bounds the temporary memory).
_CONVERT_BLOCK = 2**20

#: Default longest side photos are resized to before feature extraction.
DEFAULT_MAX_SIDE = 1024

#: What is taken as an image (``check_image``).
ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]
_IMAGE_TYPES = (str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray)
_ENCODED = (bytes, bytearray, memoryview)
#: The accepted types, as messages name them.
ACCEPTED_IMAGE_TYPES = ("a path (str or os.PathLike), encoded image bytes (bytes, bytearray or memoryview), a PIL "
                        "image or a numpy array")


class ImageError(DelfverifyError, ValueError):
    """An input could not be read as an image; the message names the source and the reason."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class ImageLookupError(DelfverifyError, ValueError):
    """An image folder is missing, or an id or path cannot name a file inside it (it would escape the folder)."""


def check_image(image: object, name: str = "image") -> ImageInput:
    """The one check of what an entry point takes as an image (the module docstring lists the types): ``image`` as
    it is to be read, or an error naming ``name``, raised before anything is read, copied or loaded.

    A path is checked as every path argument is (``fileio.check_path``). An array of an ``ndarray`` subclass
    (``numpy.matrix``, a masked array, a ``memmap``, a user's subclass) is given as the plain array of its data
    (``numpy.asarray``; a mask is not used): subclasses change what indexing and ``numpy.repeat`` return. An
    array is refused before it is copied when it has more than ``MAX_PIXELS`` pixels, the limit of a decoded
    file: a broadcast array of 100,000 x 100,000 pixels takes no memory until it is copied.

    Returns
    -------
    ImageInput
        ``image``, or the plain ``numpy.ndarray`` of an array's subclass.

    Raises
    ------
    InputTypeError
        (a ``TypeError``) naming ``name``, the type given and the types accepted.
    InputValueError
        (a ``ValueError``) A path holding a NUL character, or empty.
    ImageError
        (a ``ValueError``) An array of more than ``MAX_PIXELS`` pixels, naming ``name`` and the limit.
    """
    if not isinstance(image, _IMAGE_TYPES):
        raise InputTypeError(f"{name} must be {ACCEPTED_IMAGE_TYPES}, got {type(image).__name__}"
                             + ("; give pixels as numpy.asarray(...)" if not isinstance(image, (type(None), bool, int,
                                                                                            float)) else ""))
    if isinstance(image, (str, os.PathLike)):
        image = check_path(image, name)  # a leading ~ expanded
    if isinstance(image, np.ndarray):
        image = np.asarray(image)
        pixels = math.prod(image.shape[:2]) if image.ndim >= 2 else image.size
        if pixels > MAX_PIXELS:
            raise ImageError(describe_source(image), f"{name} has {pixels} pixels ({' x '.join(map(str, image.shape))}"
                                                     f"), more than the limit of {MAX_PIXELS} for any image")
    return image


def describe_source(image: ImageInput) -> str:
    """A short human-readable name for an image input, used in messages and reports."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    if isinstance(image, _ENCODED):
        try:
            return f"<{memoryview(image).nbytes} bytes>"
        except ValueError:  # a released memoryview
            return "<released memoryview>"
    if isinstance(image, np.ndarray):
        return f"<array {image.dtype} {image.shape}>"
    if isinstance(image, Image.Image):
        return f"<PIL image {image.size[0]}x{image.size[1]}>"
    return f"<{type(image).__name__}>"


def read_bytes(image: ImageInput) -> bytes | None:
    """The encoded bytes of a path or bytes-like input (``None`` for decoded inputs: PIL images and arrays).

    Raises
    ------
    InputTypeError
        If ``image`` is of no accepted type (``check_image``).
    ImageError
        If a path does not exist, cannot be read, is not a regular file or is larger than ``MAX_FILE_BYTES``.
    """
    image = check_image(image)
    if isinstance(image, bytes):
        return image
    if isinstance(image, (bytearray, memoryview)):
        try:
            return memoryview(image).tobytes()
        except ValueError as exc:  # a released memoryview
            raise ImageError(describe_source(image), f"cannot read the bytes ({exc})") from None
    if isinstance(image, (str, os.PathLike)):
        try:
            return read_regular_file(image, MAX_FILE_BYTES)
        except FileNotFoundError:
            raise ImageError(str(image), "file not found") from None
        except NotAFileError as exc:
            raise ImageError(str(image), str(exc)) from None
        except OSError as exc:
            raise ImageError(str(image), f"cannot read file ({exc.strerror or exc})") from None
    return None


@dataclass(frozen=True)
class DecodedImage:
    """A photo ready for feature extraction.

    Attributes
    ----------
    pixels : uint8 [h, w, 3]
        RGB, shrunk to ``max_side``.
    original_shape : (int, int)
        Height and width of the photo as given (after EXIF orientation), before shrinking.
    """

    pixels: np.ndarray
    original_shape: tuple[int, int]

    @property
    def scale_yx(self) -> tuple[float, float]:
        """Pixels of ``pixels`` per original pixel, along y and x (1.0 when the photo was not shrunk)."""
        return (self.pixels.shape[0] / self.original_shape[0], self.pixels.shape[1] / self.original_shape[1])


def load_image(
    image: ImageInput, max_side: int | None = DEFAULT_MAX_SIDE, *, source: str | None = None
) -> np.ndarray:
    """Load an image as an RGB ``uint8`` array of shape ``[H, W, 3]`` (``decode_image(...).pixels``).

    Parameters
    ----------
    image : path, bytes, bytearray, memoryview, PIL.Image.Image or numpy.ndarray
        The photo (the module docstring says what each type may hold). Arrays may be ``[H, W]`` (gray),
        ``[H, W, 1]``, ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA, alpha dropped), in any byte order: uint8,
        uint16 (divided by 257), another integer type (at the depth its values need, ``to_uint8``) or float with
        values in [0, 1].
    max_side : int or None
        If given, shrink the image (keeping its aspect ratio) so its longest side is at most this many pixels.
        Images are never enlarged.
    source : str, optional
        Name used in error messages (default: the path, or a description of the object).

    Returns
    -------
    numpy.ndarray
        ``uint8`` array ``[H, W, 3]``.

    Raises
    ------
    InputTypeError
        (a ``TypeError``) If ``image`` is of no accepted type; the message names them.
    ImageError
        (a ``ValueError``) If the input is missing, not an image, truncated, too large (decompression bomb), of an
        unsupported array shape or dtype, or holds levels out of its type's range (float values outside [0, 1],
        negative integers, NaN). The message names the source.
    ValueError
        If ``max_side`` is not a positive integer.
    """
    return decode_image(image, max_side, source=source).pixels


def decode_image(
    image: ImageInput, max_side: int | None = DEFAULT_MAX_SIDE, *, source: str | None = None
) -> DecodedImage:
    """Decode an image and shrink it to ``max_side``, remembering its original size (see ``load_image``).

    Raises
    ------
    InputTypeError, ImageError, ValueError
        As ``load_image``.
    """
    image = check_image(image)
    if max_side is not None and (not isinstance(max_side, int) or isinstance(max_side, bool) or max_side < 1):
        raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
    source = source or describe_source(image)
    if isinstance(image, np.ndarray):
        pil = Image.fromarray(_array_to_uint8(image, source))
    else:
        pil = _open_pil(image, source)
    original = (pil.size[1], pil.size[0])
    if max_side is not None and max(pil.size) > max_side:
        scale = max_side / max(pil.size)
        size = (max(1, round(pil.size[0] * scale)), max(1, round(pil.size[1] * scale)))
        pil = pil.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return DecodedImage(_pixels(pil), original)


def _open_pil(image: ImageInput, source: str) -> Image.Image:
    data = read_bytes(image)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if data is None:
                pil = image  # already a PIL image
                _check_size(pil, source)
            else:
                pil = Image.open(io.BytesIO(data))
                _check_size(pil, source)
                pil.load()
            pil = ImageOps.exif_transpose(pil)
            return _pil_to_rgb(pil, source)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(source, f"image too large, refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(source, "not an image file (unrecognised format)") from None
    except MemoryError:
        raise ImageError(source, "not enough memory to decode the image") from None
    except Exception as exc:  # Pillow's plugins raise many kinds for a bad file; each means "cannot decode this one"
        raise ImageError(source, f"cannot decode image ({str(exc) or type(exc).__name__})") from None


def decode_bytes(size: tuple[int, int], mode: str) -> int:
    """The memory decoding an image of this size (width, height) and Pillow mode takes, at most: its pixels as
    decoded (1 to 4 bytes each, by mode) and two RGB(A) working copies of 4 bytes per pixel (EXIF rotation,
    conversion to RGB)."""
    return size[0] * size[1] * (_DECODED_BYTES_PER_PIXEL.get(mode, 4) + 8)


def _check_size(pil: Image.Image, source: str) -> None:
    """Refuse an image before decoding it: no pixels, too many pixels, or more memory than ``MAX_DECODE_BYTES``."""
    size = pil.size
    if size[0] * size[1] > MAX_PIXELS:
        raise ImageError(
            source,
            f"image too large ({size[0]}x{size[1]} pixels, limit {MAX_PIXELS}), refused as a possible "
            "decompression bomb",
        )
    if size[0] < 1 or size[1] < 1:
        raise ImageError(source, f"image has no pixels ({size[0]}x{size[1]})")
    needed = decode_bytes(size, pil.mode)
    if needed > MAX_DECODE_BYTES:
        raise ImageError(source, f"image too large to decode ({size[0]}x{size[1]} pixels, mode {pil.mode}: needs "
                                 f"{needed / 2**20:.0f} MiB, limit {MAX_DECODE_BYTES / 2**20:.0f} MiB)")


def _pil_to_rgb(pil: Image.Image, source: str) -> Image.Image:
    if pil.mode in _LEVEL_MODES:  # 16-bit, 32-bit and float pixels: to 8-bit levels by the one rule
        pil = Image.fromarray(to_uint8(_pixels(pil), source, "image"))
    if pil.mode in ("LA", "PA") or (pil.mode == "P" and "transparency" in pil.info):
        pil = pil.convert("RGBA")
    return pil.convert("RGB")


def _pixels(pil: Image.Image) -> np.ndarray:
    """A numpy copy of a PIL image's pixels, made a band of rows at a time: ``np.asarray(pil)`` would hold two
    more whole copies at once (Pillow's bytes, and their join)."""
    width, height = pil.size
    band = max(1, _CONVERT_BLOCK // width)
    out = None
    for top in range(0, height, band):
        rows = np.asarray(pil.crop((0, top, width, min(top + band, height))))
        if out is None:
            out = np.empty((height, *rows.shape[1:]), rows.dtype)
        out[top : top + len(rows)] = rows
    return out


def to_uint8(levels: np.ndarray, source: str, what: str = "array") -> np.ndarray:
    """Pixel levels of any integer or float dtype and byte order as uint8 levels of the same shape, by the rule of
    the module docstring: uint8 as it is, uint16 divided by 257, other integers at the depth their values need,
    floats in [0, 1] times 255; never a clip. Converted a block of rows at a time (no full-size temporary copy).

    Raises
    ------
    ImageError
        Naming ``source``: an unsupported dtype, a negative integer, a float outside [0, 1], NaN or infinity.
    """
    dtype = levels.dtype
    if dtype.kind == "u" and dtype.itemsize == 1:
        return levels
    if dtype.kind not in "uif":
        raise ImageError(source, f"unsupported dtype {dtype} (use uint8, uint16, another integer type or float in "
                                 f"[0, 1])")
    if not levels.size:
        return np.zeros(levels.shape, np.uint8)
    if dtype.kind == "f":
        low, high = float(levels.min()), float(levels.max())  # NaN anywhere makes both NaN
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ImageError(source, f"float {what} contains NaN or infinite values")
        if low < 0.0 or high > 1.0:
            raise ImageError(source, f"float {what} levels must be in [0, 1], found {low:.6g} to {high:.6g}; for "
                                     f"levels 0..255, divide by 255 or give uint8 pixels")
        return _blockwise(levels, lambda block: np.round(block.astype(np.float64) * 255.0))
    low, high = int(levels.min()), int(levels.max())
    if low < 0:
        raise ImageError(source, f"{what} of {dtype.name} holds negative levels (lowest {low}); integer levels must "
                                 f"be 0 or more")
    if (dtype.kind, dtype.itemsize) == ("u", 2) or 255 < high <= 65535:  # 16-bit levels: 65535 -> 255
        numerator, denominator = 1, 257
    elif high <= 255:  # 8-bit levels
        numerator, denominator = 1, 1
    else:  # wider than 16 bits: the largest level -> 255
        numerator, denominator = 255, high
    if high <= np.iinfo(np.int64).max // numerator:
        return _blockwise(levels, lambda block: block.astype(np.int64) * numerator // denominator)
    return _blockwise(levels, lambda block: np.minimum(np.floor(block.astype(np.float64) * (255 / high)), 255))


def _blockwise(levels: np.ndarray, convert: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``convert`` (whose values are in 0..255) applied to a block of rows of ``levels`` at a time, into one uint8
    array."""
    out = np.empty(levels.shape, np.uint8)
    rows = max(1, _CONVERT_BLOCK // max(1, levels[0].size))
    for start in range(0, len(levels), rows):
        out[start : start + rows] = convert(levels[start : start + rows])
    return out


def _array_to_uint8(array: np.ndarray, source: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ImageError(source, f"array must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got shape "
                                 f"{list(array.shape)}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageError(source, "array has no pixels")
    out = to_uint8(array, source)
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out)


class ImageDirectory:
    """Find images by id under a root folder, never outside it.

    Layouts: flat ``<root>/<id>.jpg`` or Kaggle nested ``<root>/<id[0]>/<id[1]>/<id[2]>/<id>.jpg`` (detected per
    image); or an explicit relative ``path`` (from a gallery's ``path`` column), resolved under the root.

    Parameters
    ----------
    root : path
        The image folder.
    extension : str
        File extension for id lookups.

    Raises
    ------
    ImageLookupError
        If ``root`` is not a folder.
    InputTypeError, InputValueError
        ``root`` of a type other than a path's, or a path that is empty or holds a NUL character
        (``fileio.check_path``).
    """

    def __init__(self, root: str | os.PathLike, extension: str = ".jpg"):
        self.root = Path(check_path(root, "root"))
        if not self.root.is_dir():
            raise ImageLookupError(f"{self.root}: image directory not found")
        self._resolved_root = self.root.resolve()
        self.extension = extension

    def find(self, image_id: str, path: str = "") -> Path:
        """The file of an image (it may not exist; reading it then fails with an error naming it).

        Raises
        ------
        ImageLookupError
            If the id or path would escape the root (absolute paths, ``..``, separators in ids, NUL bytes).
        """
        if path:
            candidate = self.root / path
            if Path(path).is_absolute() or "\x00" in path or not self._inside(candidate):
                raise ImageLookupError(f"image path {shorten(path)!r} for id {shorten(image_id)!r} escapes the image "
                                       f"directory {self.root}")
            return candidate
        if (
            not image_id
            or "\x00" in image_id
            or "/" in image_id
            or "\\" in image_id
            or image_id in (".", "..")
            or len(os.fsencode(f"{image_id}{self.extension}")) > 255  # longer file names fail with an OSError
        ):
            raise ImageLookupError(f"image id {shorten(image_id)!r} cannot name a file in {self.root}")
        flat = self.root / f"{image_id}{self.extension}"
        found = flat
        try:
            if not flat.is_file() and len(image_id) >= 3:
                nested = self.root / image_id[0] / image_id[1] / image_id[2] / f"{image_id}{self.extension}"
                found = nested if nested.is_file() else flat
        except OSError as exc:  # e.g. a folder that cannot be searched
            raise ImageLookupError(f"image id {shorten(image_id)!r}: cannot look it up in {self.root} "
                                   f"({exc.strerror or exc})") from None
        if found.exists() and not self._inside(found):
            raise ImageLookupError(f"image for id {shorten(image_id)!r} links outside the image directory {self.root}")
        return found

    def _inside(self, candidate: Path) -> bool:
        try:
            return candidate.resolve().is_relative_to(self._resolved_root)
        except (OSError, RuntimeError):
            return False


def as_directory(folder: str | os.PathLike | ImageDirectory, name: str = "folder") -> ImageDirectory:
    """``folder`` as an ``ImageDirectory`` (a path is checked to be a folder, ``fileio.check_path`` naming
    ``name``)."""
    folder = check_path(folder, name, (ImageDirectory,))
    return folder if isinstance(folder, ImageDirectory) else ImageDirectory(folder)


@dataclass(frozen=True)
class Photos:
    """Where a run's photos are: the query and gallery folders, and the gallery's optional relative paths (a
    gallery file's ``path`` column, ``Gallery.paths()``)."""

    queries: ImageDirectory
    gallery: ImageDirectory
    gallery_paths: Mapping[str, str] = field(default_factory=dict)
