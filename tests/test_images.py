"""delfverify.images: every photo-like input becomes an RGB uint8 array; bad inputs raise ImageError naming them;
images are found by id in flat or nested folders and never outside them."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import delfverify.images as images
from delfverify.errors import DelfverifyError, InputTypeError
from delfverify.images import (
    DEFAULT_MAX_SIDE,
    ImageDirectory,
    ImageError,
    ImageLookupError,
    check_image,
    decode_image,
    load_image,
    read_bytes,
)
from delfverify.verifier import verify_pair

REPO = Path(__file__).resolve().parents[1]


def _rgb(height=30, width=40, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _encode(pil: Image.Image, fmt: str, **save_args) -> bytes:
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def _check_rgb(out: np.ndarray, height: int, width: int) -> None:
    assert out.dtype == np.uint8
    assert out.shape == (height, width, 3)


def test_load_image_from_path_bytes_and_pil_agree(tmp_path):
    pixels = _rgb()
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    from_path = load_image(path)
    from_str = load_image(str(path))
    from_bytes = load_image(path.read_bytes())
    from_pil = load_image(Image.fromarray(pixels))
    for out in (from_path, from_str, from_bytes, from_pil):
        _check_rgb(out, 30, 40)
        np.testing.assert_array_equal(out, pixels)  # PNG is lossless


def test_load_image_rgb_uint8_array_is_unchanged():
    pixels = _rgb()
    np.testing.assert_array_equal(load_image(pixels), pixels)


def test_load_image_gray_array_is_replicated_to_three_channels():
    gray = _rgb()[:, :, 0]
    out = load_image(gray)
    _check_rgb(out, 30, 40)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], gray)


def test_load_image_single_channel_array():
    gray = _rgb()[:, :, :1]
    out = load_image(gray)
    _check_rgb(out, 30, 40)
    np.testing.assert_array_equal(out[:, :, 2], gray[:, :, 0])


def test_load_image_rgba_array_drops_alpha():
    rgba = np.concatenate([_rgb(), np.zeros((30, 40, 1), np.uint8)], axis=2)
    np.testing.assert_array_equal(load_image(rgba), rgba[:, :, :3])


def test_load_image_uint16_array_is_scaled_to_uint8():
    pixels = _rgb()
    wide = pixels.astype(np.uint16) * 257
    np.testing.assert_array_equal(load_image(wide), pixels)
    np.testing.assert_array_equal(load_image(np.full((2, 2), 65535, np.uint16))[0, 0], [255, 255, 255])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_load_image_float_array_in_unit_range(dtype):
    pixels = _rgb()
    out = load_image(pixels.astype(dtype) / 255.0)
    np.testing.assert_array_equal(out, pixels)


def test_load_image_float_array_is_rounded_never_clipped():
    out = load_image(np.array([[0.0, 0.5, 1.0]], np.float32))
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255])
    with pytest.raises(ImageError) as info:  # it was clipped to [0, 128, 255]
        load_image(np.array([[-0.5, 0.5, 2.0]], np.float32))
    assert str(info.value).endswith("float array levels must be in [0, 1], found -0.5 to 2; for levels 0..255, "
                                    "divide by 255 or give uint8 pixels")


def test_load_image_float_array_with_nan_is_refused():
    array = np.zeros((4, 4, 3), np.float32)
    array[1, 1, 1] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        load_image(array)


@pytest.mark.parametrize(
    "array",
    [np.zeros((4, 4, 2), np.uint8), np.zeros((4,), np.uint8), np.zeros((2, 4, 4, 3), np.uint8),
     np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4, 3), np.complex64), np.zeros((4, 4, 3), bool),
     np.zeros((4, 4, 3), object), np.zeros((4, 4, 3), "datetime64[s]"), np.zeros((4, 4, 3), "U1")],
    ids=["two-channels", "1d", "4d", "no-pixels", "complex", "bool", "object", "datetime", "str"],
)
def test_load_image_unsupported_array_raises_image_error(array):
    with pytest.raises(ImageError, match="array"):
        load_image(array)


def test_load_image_applies_exif_orientation(tmp_path):
    pixels = _rgb(height=20, width=50)
    pil = Image.fromarray(pixels)
    exif = pil.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    pil.save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    with Image.open(path) as check:
        assert check.getexif()[0x0112] == 6 and check.size == (50, 20)
    out = load_image(path, max_side=None)
    _check_rgb(out, 50, 20)  # transposed: the photo as a person sees it
    # Orientation 6 is a clockwise quarter turn: the stored top row becomes the displayed right column.
    upright = np.rot90(np.asarray(Image.open(path).convert("RGB")), k=-1)
    assert np.abs(out.astype(int) - upright.astype(int)).mean() < 1.0


def test_load_image_without_exif_keeps_orientation(tmp_path):
    path = tmp_path / "plain.jpg"
    Image.fromarray(_rgb(height=20, width=50)).save(path, quality=95)
    _check_rgb(load_image(path), 20, 50)


@pytest.mark.parametrize("height, width", [(600, 2000), (2000, 600), (1000, 1000)])
def test_load_image_max_side_keeps_aspect_ratio(height, width):
    out = load_image(np.zeros((height, width, 3), np.uint8), max_side=500)
    assert max(out.shape[:2]) == 500
    assert out.shape[0] / out.shape[1] == pytest.approx(height / width, rel=0.01)


def test_load_image_never_enlarges():
    out = load_image(_rgb(height=30, width=40), max_side=DEFAULT_MAX_SIDE)
    _check_rgb(out, 30, 40)


def test_load_image_max_side_none_keeps_size():
    _check_rgb(load_image(np.zeros((1200, 1500, 3), np.uint8), max_side=None), 1200, 1500)


def test_load_image_default_max_side_applies():
    out = load_image(np.zeros((100, DEFAULT_MAX_SIDE * 2, 3), np.uint8))
    assert out.shape[1] == DEFAULT_MAX_SIDE


def test_load_image_thin_image_resize_keeps_one_pixel():
    out = load_image(np.zeros((1, 3000, 3), np.uint8), max_side=100)
    _check_rgb(out, 1, 100)


@pytest.mark.parametrize("max_side", [0, -5, 2.5, "100"])
def test_load_image_invalid_max_side_raises_value_error(max_side):
    with pytest.raises(ValueError, match="max_side"):
        load_image(_rgb(), max_side=max_side)


def test_load_image_refuses_decompression_bomb(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.fromarray(_rgb(height=60, width=60)).save(path)
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression bomb") as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert info.value.source == str(path)


def test_load_image_refuses_decompression_bomb_pil_input(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(ImageError, match="too large"):
        load_image(Image.fromarray(_rgb(height=60, width=60)))


def test_load_image_missing_file_names_it(tmp_path):
    path = tmp_path / "missing.jpg"
    with pytest.raises(ImageError, match="not found") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_load_image_directory_names_it(tmp_path):
    with pytest.raises(ImageError) as info:
        load_image(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_load_image_zero_byte_file_names_it(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_load_image_text_file_named_jpg_names_it(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n")
    with pytest.raises(ImageError, match="not an image") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_load_image_truncated_jpeg_names_it(tmp_path):
    data = _encode(Image.fromarray(_rgb(height=200, width=200)), "JPEG", quality=90)
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_load_image_bad_bytes_name_the_source_given():
    with pytest.raises(ImageError, match="upload-7"):
        load_image(b"\x00\x01garbage", source="upload-7")


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError)


def test_load_image_16bit_png(tmp_path):
    values = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 100).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    out = load_image(path)
    _check_rgb(out, 20, 30)
    np.testing.assert_allclose(out[:, :, 0].astype(int), values.astype(int) // 257, atol=1)


def test_load_image_16bit_levels_use_the_integer_rule_exactly():
    values = np.array([[0, 256, 257, 514, 65534, 65535]], np.uint16)
    expected = [0, 0, 1, 2, 254, 255]  # value // 257
    assert load_image(Image.fromarray(values), None)[0, :, 0].tolist() == expected
    assert load_image(values, None)[0, :, 0].tolist() == expected  # arrays follow the same rule
    wide = Image.fromarray(np.array([[5, 0, 100_000, 200_000]], np.int32), mode="I")  # 32-bit: max -> 255
    assert load_image(wide, None)[0, :, 0].tolist() == [0, 0, 127, 255]
    negative = Image.fromarray(np.array([[-5, 0, 100_000, 200_000]], np.int32), mode="I")  # was clipped to 0
    with pytest.raises(ImageError, match=r"image of int32 holds negative levels \(lowest -5\)"):
        load_image(negative, None)


def _dds_of_unknown_format() -> bytes:
    """A DDS header with a compression code Pillow does not implement: its plugin raises NotImplementedError."""
    header = struct.pack("<6I", 0x1007, 64, 64, 0, 0, 0) + bytes(44)  # flags, height, width, pitch, depth, mips
    pixel_format = struct.pack("<4I", 32, 0x4, int.from_bytes(b"ZZZZ", "little"), 0) + bytes(16)  # FOURCC "ZZZZ"
    return b"DDS " + struct.pack("<I", 124) + header + pixel_format + bytes(20) + bytes(256)


def test_load_image_dds_pillow_cannot_decode_is_an_image_error(tmp_path):
    path = tmp_path / "texture.jpg"  # named like a photo
    path.write_bytes(_dds_of_unknown_format())
    with pytest.raises(NotImplementedError):  # what Pillow itself raises
        Image.open(path)
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(info.value) == f"{path}: cannot decode image (Unimplemented pixel format 1515870810)"


@pytest.mark.parametrize("error, reason", [
    (NotImplementedError("no codec"), "cannot decode image (no codec)"),
    (struct.error("unpack requires a buffer of 4 bytes"), "cannot decode image (unpack requires a buffer of 4 bytes)"),
    (IndexError(), "cannot decode image (IndexError)"),
    (KeyError("tag"), "cannot decode image ('tag')"),
    (RuntimeError("plugin failed"), "cannot decode image (plugin failed)"),
    (ZeroDivisionError("division by zero"), "cannot decode image (division by zero)"),
    (MemoryError(), "not enough memory to decode the image"),
])
def test_load_image_any_exception_while_decoding_is_an_image_error(tmp_path, monkeypatch, error, reason):
    path = tmp_path / "photo.jpg"
    Image.fromarray(_rgb(height=20, width=20)).save(path)

    def failing_open(*args, **kwargs):
        raise error

    monkeypatch.setattr(Image, "open", failing_open)
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(info.value) == f"{path}: {reason}"


def _png_header(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no pixel data (refused before decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(100)))
            + chunk(b"IEND", b""))


def test_load_image_refuses_an_image_whose_decoding_needs_more_than_max_decode_bytes(monkeypatch):
    # Pillow itself refuses files over 89,478,485 pixels (a decompression bomb): at 12 bytes per pixel at most,
    # no file it opens needs more than 1 GiB, so the limit is lowered here to show the check.
    assert images.decode_bytes((9459, 9459), "RGBA") <= images.MAX_DECODE_BYTES  # 89.47 M pixels
    monkeypatch.setattr(images, "MAX_DECODE_BYTES", 512 * 2**20)
    with pytest.raises(ImageError) as info:  # 48 M RGBA pixels, 12 bytes each
        load_image(_png_header(8000, 6000, 8, 6), source="wide.png")
    assert str(info.value) == ("wide.png: image too large to decode (8000x6000 pixels, mode RGBA: needs 549 MiB, "
                               "limit 512 MiB)")
    with pytest.raises(ImageError, match="cannot decode image"):  # 8-bit gray, 9 bytes each: decoded (and broken)
        load_image(_png_header(8000, 6000, 8, 0), source="gray.png")


def test_load_image_memory_bound_applies_to_pil_input(monkeypatch):
    monkeypatch.setattr(images, "MAX_DECODE_BYTES", images.decode_bytes((60, 60), "RGB") - 1)
    with pytest.raises(ImageError, match=r"too large to decode \(60x60 pixels, mode RGB"):
        load_image(Image.fromarray(_rgb(height=60, width=60)))
    assert load_image(Image.fromarray(_rgb(height=59, width=60))).shape == (59, 60, 3)


@pytest.mark.slow
@pytest.mark.parametrize("max_side", [1024, None])
def test_a_16bit_png_of_9450_squared_pixels_decodes_within_its_memory_bound(max_side):
    """The issue's 173 KB PNG took 2.4 GB (three float64 copies); its decoding now stays within
    ``decode_bytes`` (852 MiB), measured as the growth of the peak resident memory of a fresh process."""
    script = "\n".join([
        "import io, resource, struct, sys, zlib",
        "from delfverify.images import decode_bytes, load_image",
        "from PIL import Image",
        "side = int(sys.argv[1])",
        "def chunk(kind, data):",
        "    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))",
        "pack = zlib.compressobj(9)",
        "row = bytes(1 + 2 * side)  # a filter byte and a row of 16-bit zeros",
        "data = b''.join([pack.compress(row) for _ in range(side)] + [pack.flush()])",
        "header = struct.pack('>IIBBBBB', side, side, 16, 0, 0, 0, 0)",
        "png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', header) + chunk(b'IDAT', data) + chunk(b'IEND', b'')",
        "small = io.BytesIO()",
        "Image.new('I;16', (8, 8)).save(small, 'PNG')",
        "load_image(small.getvalue())  # warm up: Pillow's plugins are imported",
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024",
        f"pixels = load_image(png, {max_side!r})",
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024",
        "print(len(png), pixels.shape, after - before, decode_bytes((side, side), 'I;16'))",
    ])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", script, "9450"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    fields = run.stdout.split()
    size, growth, bound = int(fields[0]), int(fields[-2]), int(fields[-1])
    assert size < 200_000  # a file of about 173 KB holding 89 million 16-bit pixels
    assert growth <= bound  # decoded within decode_bytes (852 MiB); it took 2.4 GB before


def test_load_image_refuses_special_files_unread(tmp_path):
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer for ever
    for path, kind in [(fifo, "a FIFO (named pipe)"), (Path("/dev/zero"), "a character device"),
                       (tmp_path, "a directory")]:
        with pytest.raises(ImageError) as info:
            load_image(path)
        assert str(info.value) == f"{path}: is {kind}, not a regular file"


def test_load_image_refuses_a_file_over_max_file_bytes_before_reading_it(tmp_path):
    sparse = tmp_path / "huge.jpg"
    with open(sparse, "wb") as handle:
        handle.truncate(40 * 2**30)  # 40 GiB of holes: costs no disk, would exhaust the memory if read
    with pytest.raises(ImageError) as info:
        load_image(sparse)
    assert str(info.value) == f"{sparse}: file too large ({40 * 2**30} bytes, limit {images.MAX_FILE_BYTES})"


def test_load_image_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (30, 20), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    out = load_image(path)
    _check_rgb(out, 20, 30)
    assert out[..., 0].mean() > 200 and out[..., 1].mean() < 60 and out[..., 2].mean() < 60


def test_load_image_palette_png(tmp_path):
    pil = Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = tmp_path / "palette.png"
    pil.save(path)
    out = load_image(path)
    _check_rgb(out, 30, 40)
    np.testing.assert_array_equal(out, np.asarray(pil.convert("RGB")))


def test_load_image_palette_png_with_transparency(tmp_path):
    pil = Image.new("P", (8, 6), 0)
    pil.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pil.info["transparency"] = 0
    path = tmp_path / "transparent.png"
    pil.save(path, transparency=0)
    out = load_image(path)
    _check_rgb(out, 6, 8)
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])


def test_load_image_gray_and_rgba_png(tmp_path):
    gray = tmp_path / "gray.png"
    Image.fromarray(_rgb()[:, :, 0]).save(gray)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([_rgb(), np.full((30, 40), 128, np.uint8)])).save(rgba)
    _check_rgb(load_image(gray), 30, 40)
    np.testing.assert_array_equal(load_image(rgba), _rgb())


def test_load_image_one_pixel(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (1, 2, 3)).save(path)
    out = load_image(path)
    _check_rgb(out, 1, 1)
    np.testing.assert_array_equal(out[0, 0], [1, 2, 3])


def test_decode_image_remembers_the_original_size():
    decoded = decode_image(_rgb(300, 800), max_side=400)
    assert decoded.pixels.shape == (150, 400, 3)
    assert decoded.original_shape == (300, 800)
    assert decoded.scale_yx == (0.5, 0.5)
    assert decode_image(_rgb(30, 40), max_side=400).scale_yx == (1.0, 1.0)


# --- image lookup ----------------------------------------------------------------------------------------------

def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"jpeg")
    return path


def test_image_directory_flat_and_nested_layouts(tmp_path):
    flat = _touch(tmp_path / "imgs" / "abcdef.jpg")
    nested = _touch(tmp_path / "imgs" / "1" / "2" / "3" / "123456.jpg")
    images = ImageDirectory(tmp_path / "imgs")
    assert images.find("abcdef") == flat
    assert images.find("123456") == nested
    # Absent images resolve to the flat name, so the read error names a sensible file.
    assert images.find("ffffff") == tmp_path / "imgs" / "ffffff.jpg"
    assert images.find("ab") == tmp_path / "imgs" / "ab.jpg"


def test_image_directory_flat_wins_over_nested(tmp_path):
    flat = _touch(tmp_path / "imgs" / "abcdef.jpg")
    _touch(tmp_path / "imgs" / "a" / "b" / "c" / "abcdef.jpg")
    assert ImageDirectory(tmp_path / "imgs").find("abcdef") == flat


def test_image_directory_extension(tmp_path):
    png = _touch(tmp_path / "imgs" / "x1.png")
    assert ImageDirectory(tmp_path / "imgs", extension=".png").find("x1") == png


def test_image_directory_path_column(tmp_path):
    photo = _touch(tmp_path / "imgs" / "sub" / "photo.jpg")
    images = ImageDirectory(tmp_path / "imgs")
    assert images.find("anything", "sub/photo.jpg") == photo


def test_image_directory_missing_folder(tmp_path):
    with pytest.raises(ImageLookupError, match="image directory not found"):
        ImageDirectory(tmp_path / "absent")


@pytest.mark.parametrize("image_id", ["../../etc/passwd", "/etc/passwd", "a\\b", "..", ".", "", "a\x00b",
                                      "x" * 300, "sub/../x"])
def test_image_ids_that_escape_are_rejected(tmp_path, image_id):
    images = ImageDirectory(tmp_path)
    with pytest.raises(ImageLookupError):
        images.find(image_id)


@pytest.mark.parametrize("relative", ["../x.jpg", "sub/../../x.jpg", "/etc/passwd", "x\x00.jpg"])
def test_image_paths_that_escape_are_rejected(tmp_path, relative):
    _touch(tmp_path / "x.jpg")
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    images = ImageDirectory(tmp_path / "imgs")
    with pytest.raises(ImageLookupError, match="escapes"):
        images.find("g1", relative)


def test_absolute_path_inside_root_is_still_rejected(tmp_path):
    photo = _touch(tmp_path / "imgs" / "p.jpg")
    with pytest.raises(ImageLookupError):
        ImageDirectory(tmp_path / "imgs").find("g1", str(photo))


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlink_pointing_outside_is_rejected(tmp_path):
    secret = _touch(tmp_path / "outside" / "secret.jpg")
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "evil.jpg").symlink_to(secret)
    (root / "e").mkdir()
    (root / "e" / "v").symlink_to(tmp_path / "outside", target_is_directory=True)
    _touch(tmp_path / "outside" / "i" / "evi123.jpg")
    images = ImageDirectory(root)
    with pytest.raises(ImageLookupError, match="outside"):
        images.find("evil")
    with pytest.raises(ImageLookupError):
        images.find("g1", "evil.jpg")
    with pytest.raises(ImageLookupError):
        images.find("evi123")  # nested layout through a linked folder


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlink_inside_root_is_allowed(tmp_path):
    real = _touch(tmp_path / "imgs" / "real.jpg")
    (tmp_path / "imgs" / "alias.jpg").symlink_to(real)
    assert ImageDirectory(tmp_path / "imgs").find("alias") == tmp_path / "imgs" / "alias.jpg"


# --- one check for every image input: accepted types, levels by one rule, never a clip (issue #19) ---------------

_NOT_IMAGES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.complex_numbers(),
                        st.lists(st.lists(st.integers(0, 255), max_size=3), max_size=3), st.tuples(st.integers()),
                        st.dictionaries(st.text(max_size=2), st.integers(), max_size=2), st.just(object()),
                        st.just(np.uint8(7)), st.just(range(3)), st.just({1, 2}), st.just(iter([b"png"])))
_VERIFIER = []


def _verifier():
    from delfverify.verifier import Verifier

    if not _VERIFIER:
        _VERIFIER.append(Verifier("rootsift"))
    return _VERIFIER[0]


@settings(max_examples=60, deadline=None)
@given(_NOT_IMAGES)
def test_an_input_of_another_type_is_a_type_error_naming_the_accepted_types(value):
    verifier = _verifier()
    for call in (load_image, decode_image, read_bytes, check_image, verifier.key, verifier.features_of):
        with pytest.raises(InputTypeError) as info:
            call(value)
        assert isinstance(info.value, TypeError) and isinstance(info.value, DelfverifyError)
        assert str(info.value).startswith("image must be a path (str or os.PathLike), encoded image bytes (bytes, "
                                          "bytearray or memoryview), a PIL image or a numpy array, got ")
        assert str(info.value).count("\n") == 0


def test_verify_pair_names_the_argument_of_another_type_before_loading_anything(monkeypatch):
    import delfverify.verifier as verifier_module

    monkeypatch.setattr(verifier_module, "Verifier", None)  # nothing is built before the inputs are checked
    with pytest.raises(InputTypeError, match=r"^image_b must be a path .*, got NoneType$"):
        verifier_module.verify_pair(_rgb(), None)
    with pytest.raises(InputTypeError, match=r"^image_a must be .*, got list; give pixels as numpy.asarray\(...\)$"):
        verifier_module.verify_pair([[1, 2], [3, 4]], _rgb())


def test_bytes_bytearray_and_memoryview_of_one_file_are_one_image(tmp_path):
    data = _encode(Image.fromarray(_rgb()), "PNG")
    verifier = _verifier()
    inputs = [data, bytearray(data), memoryview(data), memoryview(bytearray(data)), tmp_path / "p.png"]
    inputs[-1].write_bytes(data)
    for image in inputs:
        np.testing.assert_array_equal(load_image(image), _rgb())
        assert verifier.key(image) == verifier.key(data)
    with pytest.raises(ImageError, match=r"^<5 bytes>: not an image file"):
        load_image(bytearray(b"hello"))
    released = memoryview(data)
    released.release()
    with pytest.raises(ImageError, match=r"^<released memoryview>: cannot read the bytes"):
        load_image(released)


def _expected_levels(values: np.ndarray) -> np.ndarray | None:
    """The documented rule, element by element in Python numbers: the uint8 levels, or None for a refusal."""
    kind, size = values.dtype.kind, values.dtype.itemsize
    flat = values.ravel().tolist()
    if kind == "f":
        if not all(np.isfinite(v) and 0.0 <= v <= 1.0 for v in flat):
            return None
        return np.array([round(v * 255.0) for v in flat], np.uint8).reshape(values.shape)
    if kind not in "ui" or min(flat) < 0:
        return None
    high = max(flat)
    if (kind, size) == ("u", 1) or (high <= 255 and (kind, size) != ("u", 2)):
        out = flat
    elif (kind, size) == ("u", 2) or high <= 65535:
        out = [v // 257 for v in flat]
    else:
        out = [v * 255 // high for v in flat]
    return np.array(out, np.uint8).reshape(values.shape)


_DTYPES = st.one_of(hnp.integer_dtypes(endianness="?"), hnp.unsigned_integer_dtypes(endianness="?"),
                    hnp.floating_dtypes(endianness="?"), st.just(np.dtype(bool)), hnp.complex_number_dtypes())


@st.composite
def _arrays(draw):
    """Arrays of every dtype and byte order, shape (valid or not) and range: small levels, full ranges, the
    dtype's extremes, floats beyond [0, 1], NaN and infinity."""
    dtype = draw(_DTYPES)
    shape = draw(st.sampled_from([(3, 4), (3, 4, 1), (3, 4, 3), (3, 4, 4), (2, 3, 2), (5,), (0, 4, 3), (1, 1)]))
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        high = draw(st.sampled_from([1, 255, 256, 4095, 65535, 65536, int(info.max)]))
        low = draw(st.sampled_from([0, 0, 0, -1, int(info.min)]))
        elements = st.integers(max(info.min, low), min(info.max, max(high, low)))
    elif dtype.kind == "f":
        elements = st.one_of(st.floats(0, 1, width=8 * min(dtype.itemsize, 8)),
                             st.floats(width=8 * min(dtype.itemsize, 8)))
        if draw(st.booleans()):
            elements = st.floats(0, 1, width=8 * min(dtype.itemsize, 8))
    else:
        elements = None
    return draw(hnp.arrays(dtype, shape, elements=elements))


_OUTCOMES: set = set()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_arrays())
def test_arrays_of_every_dtype_byte_order_shape_and_range_follow_the_one_rule(array):
    """Either the documented levels or an ImageError naming the array: never another exception, never a clip, and
    the byte order changes nothing (the pixels, hence the content hash, are the same)."""
    from delfverify.store import content_hash

    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))
    pixels = array[:, :, :3] if shape_ok and array.ndim == 3 and array.shape[2] == 4 else array
    expected = _expected_levels(pixels) if shape_ok and array.size else None
    _OUTCOMES.add((array.dtype.kind, expected is not None))
    if expected is None:
        with pytest.raises(ImageError) as info:
            load_image(array, None)
        assert str(info.value).startswith(f"<array {array.dtype} {array.shape}>: ")
        return
    out = load_image(array, None)
    gray = expected if expected.ndim == 2 else expected[:, :, 0] if expected.shape[2] == 1 else None
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2) if gray is not None else expected)
    swapped = array.byteswap().view(array.dtype.newbyteorder())  # the same values in the other byte order
    np.testing.assert_array_equal(swapped, array)
    assert content_hash(decode_image(swapped, None).pixels) == content_hash(out)


def test_the_arrays_drawn_were_both_read_and_refused_for_each_kind():
    if not _OUTCOMES:
        pytest.skip("runs after the property test")
    assert {("u", True), ("u", False), ("i", True), ("i", False), ("f", True), ("f", False), ("b", False),
            ("c", False)} <= _OUTCOMES


def test_the_issue_arrays_float_0_to_255_refused_big_endian_uint16_read():
    pixels = _rgb()
    with pytest.raises(ImageError, match=r"float array levels must be in \[0, 1\], found 0 to 255"):
        load_image(pixels.astype(np.float64))  # was clipped to white: a confident 0 inliers
    big = (pixels.astype(np.uint16) * 257).astype(">u2")  # was refused
    np.testing.assert_array_equal(load_image(big), pixels)
    np.testing.assert_array_equal(load_image(pixels.astype(np.int64)), pixels)  # astype(int) of 8-bit pixels
    np.testing.assert_array_equal(load_image(pixels.astype(">i4") * 257), pixels)  # 16-bit levels in int32
    for bad, match in [(np.full((2, 2), np.inf), "NaN or infinite"), (np.full((2, 2), -1, np.int16), "negative")]:
        with pytest.raises(ImageError, match=match):
            load_image(bad)


def test_an_array_is_converted_a_block_of_rows_at_a_time(monkeypatch):
    monkeypatch.setattr(images, "_CONVERT_BLOCK", 7)  # blocks of one row: the result is the same
    values = np.arange(12 * 5, dtype=np.float32).reshape(12, 5) / 59
    np.testing.assert_array_equal(load_image(values, None)[:, :, 0], np.round(values.astype(np.float64) * 255))


def _tiff(values: np.ndarray, mode: str | None = None) -> bytes:
    return _encode(Image.fromarray(values, mode) if mode else Image.fromarray(values), "TIFF")


def test_a_float_tiff_in_0_1_is_scaled_and_one_outside_is_refused_naming_it(tmp_path):
    levels = np.linspace(0, 1, 20 * 30, dtype=np.float32).reshape(20, 30)
    path = tmp_path / "float.tif"
    path.write_bytes(_tiff(levels))
    with Image.open(path) as check:
        assert check.mode == "F"
    out = load_image(path, None)  # was black: Pillow's conversion clips [0, 1] to 0 or 1
    np.testing.assert_array_equal(out[:, :, 0], np.round(levels.astype(np.float64) * 255))
    for name, values, reason in [
            ("wide.tif", levels * 255, "float image levels must be in [0, 1], found 0 to 255"),
            ("negative.tif", levels - 0.5, "float image levels must be in [0, 1], found -0.5 to 0.5"),
            ("nan.tif", np.where(levels > 0.5, np.nan, levels).astype(np.float32), "NaN or infinite")]:
        (tmp_path / name).write_bytes(_tiff(values.astype(np.float32)))
        with pytest.raises(ImageError) as info:
            load_image(tmp_path / name)
        assert str(info.value).startswith(f"{tmp_path / name}: ") and reason in str(info.value)


def test_16_bit_tiffs_of_either_byte_order_and_32_bit_tiffs_are_scaled_by_their_range(tmp_path):
    values = np.array([[0, 257, 514, 65535]], np.uint16)
    for order in ("<u2", ">u2"):
        data = _tiff(values.astype(order))
        with Image.open(io.BytesIO(data)) as check:
            assert check.mode == ("I;16B" if order == ">u2" else "I;16")
        assert load_image(data, None)[0, :, 0].tolist() == [0, 1, 2, 255]
    assert load_image(_tiff(np.array([[0, 100, 255]], np.int32), "I"), None)[0, :, 0].tolist() == [0, 100, 255]
    assert load_image(_tiff(np.array([[0, 65535]], np.int32), "I"), None)[0, :, 0].tolist() == [0, 255]


class _UserArray(np.ndarray):
    """A user's ndarray subclass that changes what indexing returns, as numpy.matrix does."""

    def __getitem__(self, item):
        return np.asarray(super().__getitem__(item)).view(_UserArray)


def _subclassed(kind: str, pixels: np.ndarray, tmp_path: Path) -> np.ndarray:
    if kind == "matrix":
        return np.asmatrix(pixels)
    if kind == "masked":
        return np.ma.masked_array(pixels, mask=np.zeros(pixels.shape, bool))
    if kind == "memmap":
        mapped = np.memmap(tmp_path / "pixels.bin", pixels.dtype, "w+", shape=pixels.shape)
        mapped[:] = pixels
        return mapped
    return pixels.view(_UserArray)


_ENTRY_POINTS = {"load_image": lambda image: load_image(image, None),
                 "decode_image": lambda image: decode_image(image, None).pixels,
                 "Verifier.key": lambda image: _verifier().key(image),
                 "Verifier.features_of": lambda image: _verifier().features_of(image).locations}


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # numpy.matrix's own
@pytest.mark.parametrize("entry", _ENTRY_POINTS)
@pytest.mark.parametrize("kind", ["matrix", "masked", "memmap", "user subclass"])
@pytest.mark.parametrize("shape, dtype", [((64, 48), np.uint8), ((64, 48), np.uint16), ((64, 48, 3), np.uint8),
                                          ((64, 48, 4), np.float32)])
def test_an_array_of_any_ndarray_subclass_reads_as_its_plain_array(tmp_path, entry, kind, shape, dtype):
    """The kind: arrays of ndarray subclasses are read as the plain array of their data (``check_image``), at every
    entry point. numpy.matrix holds 2-D data only."""
    if kind == "matrix" and len(shape) != 2:
        pytest.skip("numpy.matrix is 2-D")
    rng = np.random.default_rng(7)
    pixels = rng.random(shape).astype(dtype) if dtype == np.float32 else \
        rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    # Before the fix a numpy.matrix ended the interpreter (a double free in numpy.repeat): this test run with it.
    given = _subclassed(kind, pixels, tmp_path)
    got, want = _ENTRY_POINTS[entry](given), _ENTRY_POINTS[entry](pixels)
    np.testing.assert_array_equal(got, want)
    assert type(got) is type(want)


_PIXEL_LIMIT_ENTRY_POINTS = {**_ENTRY_POINTS, "read_bytes": read_bytes, "check_image": check_image,
                             "verify_pair": lambda image: verify_pair(_rgb(), image)}


@pytest.mark.parametrize("entry", _PIXEL_LIMIT_ENTRY_POINTS)
@pytest.mark.parametrize("shape", [(100_000, 100_000, 3), (20_000, 20_000), (images.MAX_PIXELS + 1, 1, 4),
                                   (1, images.MAX_PIXELS + 1, 1)])
def test_an_array_over_the_pixel_limit_is_refused_before_it_is_copied(entry, shape):
    """The kind: an array of more pixels than a decoded file may have (``MAX_PIXELS``) is refused by the one
    image check, before any copy, naming the argument and the limit. A broadcast array takes no memory, so a copy
    of it would have been the first allocation (27.9 GiB for the first shape, a raw MemoryError)."""
    array = np.broadcast_to(np.uint8(7), shape)
    name = "image_b" if entry == "verify_pair" else "image"
    with pytest.raises(ImageError, match=rf"^<array uint8 .*>: {name} has \d+ pixels .*, more than the limit of "
                                         rf"{images.MAX_PIXELS} for any image$"):
        _PIXEL_LIMIT_ENTRY_POINTS[entry](array)


@pytest.mark.parametrize("shape", [(25, 40), (40, 25, 1), (10, 100, 3), (1000, 1, 4)])
def test_the_pixel_limit_of_arrays_is_that_of_files(monkeypatch, shape):
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    assert load_image(np.zeros(shape, np.uint8), None).shape[:2] == shape[:2]
    taller = (shape[0] + 1, *shape[1:])
    with pytest.raises(ImageError, match="more than the limit of 1000"):
        load_image(np.zeros(taller, np.uint8), None)
