import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

import jaxnst
from jaxnst.image import fit_long_side, image_size, load_image, load_mask, save_image


def test_resize_keeps_aspect(images_dir):
    a = load_image(images_dir / "chelsea.png", 64)  # 451x300
    assert a.shape == (43, 64, 3) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert fit_long_side((300, 451), 64) == (43, 64)


def test_exif_orientation(tmp_path):
    a = np.zeros((10, 20, 3), np.uint8)
    a[:, :10] = 255  # left half white
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img.save(tmp_path / "r.jpg", exif=exif, quality=100)
    got = load_image(tmp_path / "r.jpg")
    assert got.shape == (20, 10, 3)
    assert got[:5].mean() > 0.9 and got[-5:].mean() < 0.1  # white half now on top


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16"])
def test_modes_become_rgb(tmp_path, mode):
    rgb = Image.new("RGB", (8, 6), (200, 100, 50))
    if mode == "I;16":
        img = Image.fromarray(np.full((6, 8), 65535, np.uint16))
        suffix = ".png"
    else:
        img = rgb.convert(mode)
        suffix = ".tiff" if mode == "CMYK" else ".png"
    img.save(tmp_path / f"x{suffix}")
    got = load_image(tmp_path / f"x{suffix}")
    assert got.shape == (6, 8, 3)
    if mode == "I;16":
        np.testing.assert_allclose(got, 1.0)  # full-scale 16 bit is white, not clipped garbage
    elif mode in ("RGBA",):
        np.testing.assert_allclose(got[0, 0], np.array([200, 100, 50]) / 255, atol=1 / 255)


def test_16_bit_and_float_greyscale_keep_their_values(tmp_path):
    """A dark 16-bit PNG was read 257x too bright (the divisor followed its maximum), a float TIFF black,
    and 16 bits were rounded to 8."""
    a = np.arange(6 * 8, dtype=np.uint16).reshape(6, 8) * 5  # 0..235 of 65535: very dark
    Image.fromarray(a).save(tmp_path / "dark.png")
    np.testing.assert_allclose(load_image(tmp_path / "dark.png"), np.repeat(a[..., None] / 65535, 3, -1), atol=1e-6)
    f = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    Image.fromarray(f, "F").save(tmp_path / "f.tiff")
    np.testing.assert_allclose(load_image(tmp_path / "f.tiff")[..., 1], f, atol=1e-6)
    np.testing.assert_allclose(load_mask(tmp_path / "f.tiff", (6, 8)), f, atol=1e-6)
    assert load_image(tmp_path / "f.tiff", size=16).shape == (12, 16, 3)


def test_transparent_is_white(tmp_path):
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "t.png")
    np.testing.assert_allclose(load_image(tmp_path / "t.png"), 1.0)


def test_save_roundtrip_and_errors(tmp_path, rng):
    a = rng.uniform(size=(5, 7, 3)).astype(np.float32)
    save_image(a, tmp_path / "o.png")
    np.testing.assert_allclose(load_image(tmp_path / "o.png"), np.round(a * 255) / 255, atol=1e-6)
    save_image(a[None], tmp_path / "o.jpg")
    assert Image.open(tmp_path / "o.jpg").format == "JPEG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jpg", "o.png"]  # no temp files left
    with pytest.raises(jaxnst.JaxnstError, match=r"\.png, \.jpg"):
        save_image(a, tmp_path / "o.gif")
    with pytest.raises(jaxnst.JaxnstError, match="does not exist"):
        save_image(a, tmp_path / "nope" / "o.png")


def test_unreadable_inputs(tmp_path):
    with pytest.raises(jaxnst.JaxnstError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(jaxnst.JaxnstError, match="not an image"):
        load_image(tmp_path / "text.png")


def test_folder_and_device_are_not_missing(tmp_path):
    with pytest.raises(jaxnst.JaxnstError, match="is a folder, not an image file"):
        load_image(tmp_path)
    with pytest.raises(jaxnst.JaxnstError, match="/dev/null is not a regular file"):
        load_image("/dev/null")
    with pytest.raises(jaxnst.JaxnstError, match="is a folder, not an image file"):
        image_size(tmp_path)


def test_truncated_jpeg_is_named_damaged(images_dir, tmp_path):
    data = (images_dir / "tubingen.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert image_size(tmp_path / "cut.jpg") == (96, 72)  # the header is intact
    with pytest.raises(jaxnst.JaxnstError, match=r"cut\.jpg is truncated or damaged \(image file is truncated"):
        load_image(tmp_path / "cut.jpg")


def _png_header(width, height):
    """A PNG file that declares width x height 1-bit pixels and holds none: Pillow opens it without decoding."""

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_decompression_bomb(tmp_path):
    (tmp_path / "bomb.png").write_bytes(_png_header(20000, 20000))  # over twice the limit: Pillow raises
    msg = rf"bomb\.png is too large \(400,000,000 pixels, more than Pillow's limit of {Image.MAX_IMAGE_PIXELS:,} "
    with pytest.raises(jaxnst.JaxnstError, match=msg):
        load_image(tmp_path / "bomb.png")
    with pytest.raises(jaxnst.JaxnstError, match=msg):
        image_size(tmp_path / "bomb.png")


@pytest.mark.parametrize("width", [11, 21])  # over the limit (Pillow warns), over twice the limit (Pillow raises)
def test_over_pixel_limit_is_refused(tmp_path, monkeypatch, width):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("RGB", (width, 10)).save(tmp_path / "big.png")
    Image.new("RGB", (10, 10)).save(tmp_path / "ok.png")
    assert load_image(tmp_path / "ok.png").shape == (10, 10, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning escapes
        with pytest.raises(jaxnst.JaxnstError, match=rf"big\.png is too large \({width * 10} pixels.* limit of 100 "):
            load_image(tmp_path / "big.png")
