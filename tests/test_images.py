"""delfverify.images: every photo-like input becomes an RGB uint8 array; bad inputs raise ImageError naming them;
images are found by id in flat or nested folders and never outside them."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import delfverify.images as images
from delfverify.images import DEFAULT_MAX_SIDE, ImageDirectory, ImageError, ImageLookupError, decode_image, load_image


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


def test_load_image_float_array_is_clipped():
    out = load_image(np.array([[-0.5, 0.5, 2.0]], np.float32))
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255])


def test_load_image_float_array_with_nan_is_refused():
    array = np.zeros((4, 4, 3), np.float32)
    array[1, 1, 1] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        load_image(array)


@pytest.mark.parametrize(
    "array",
    [np.zeros((4, 4, 2), np.uint8), np.zeros((4,), np.uint8), np.zeros((2, 4, 4, 3), np.uint8),
     np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4, 3), np.int32), np.zeros((4, 4, 3), bool)],
    ids=["two-channels", "1d", "4d", "no-pixels", "int32", "bool"],
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
