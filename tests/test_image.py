import errno
import io
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

import jaxnst
from jaxnst.image import fit_long_side, image_size, load_image, load_mask, png_bit_depth, save_image


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
    with pytest.raises(jaxnst.JaxnstError, match="is a folder, not a file"):
        load_image(tmp_path)
    with pytest.raises(jaxnst.JaxnstError, match="/dev/null is not a regular file"):
        load_image("/dev/null")
    with pytest.raises(jaxnst.JaxnstError, match="is a folder, not a file"):
        image_size(tmp_path)


def test_truncated_jpeg_is_named_damaged(images_dir, tmp_path):
    data = (images_dir / "tubingen.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert image_size(tmp_path / "cut.jpg") == (96, 72)  # the header is intact
    with pytest.raises(jaxnst.JaxnstError, match=r"cut\.jpg is truncated or damaged \(image file is truncated"):
        load_image(tmp_path / "cut.jpg")


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png_header(width, height):
    """A PNG file that declares width x height 1-bit pixels and holds none: Pillow opens it without decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


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


# --- colour profiles (ICC) ---------------------------------------------------------------------------------------

D50 = (0.9642, 1.0, 0.8249)
# The colorants of Adobe RGB (1998) and of sRGB, adapted to D50 (columns R, G, B): linear RGB -> XYZ.
ADOBE = np.array([[0.60974, 0.20528, 0.14919], [0.31111, 0.62567, 0.06322], [0.01947, 0.06087, 0.74457]])
SRGB = np.array(
    [[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169], [0.0139322, 0.0971045, 0.7141733]]
)


def _s15(x):
    return struct.pack(">i", round(x * 65536))


def _icc(space, tags, cls=b"mntr", pcs=b"XYZ "):
    """A minimal ICC v2 profile of colour ``space``: header, tag table and ``tags`` (signature -> data)."""
    table, body, start = b"", b"", 128 + 4 + 12 * len(tags)
    for sig, data in tags.items():
        data += b"\0" * (-len(data) % 4)
        table += struct.pack(">4sII", sig, start + len(body), len(data))
        body += data
    white = b"".join(map(_s15, D50))
    head = struct.pack(">I4sI4s4s4s12s4s24sI12s48s", start + len(body), b"", 0x02100000, cls, space, pcs,
                       b"", b"acsp", b"", 0, white, b"")  # fmt: skip
    return head + struct.pack(">I", len(tags)) + table + body


def _xyz(x, y, z):
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _desc(text):
    return b"desc\0\0\0\0" + struct.pack(">I", len(text) + 1) + text.encode() + b"\0" * 80


def _gamma(g):
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(g * 256))


def _adobe_rgb():
    """A matrix/TRC profile with Adobe RGB's primaries and gamma 563/256."""
    tags = {b"desc": _desc("wide test"), b"wtpt": _xyz(*D50)}
    tags.update({c + b"XYZ": _xyz(*ADOBE[:, i]) for i, c in enumerate((b"r", b"g", b"b"))})
    tags.update({c + b"TRC": _gamma(563 / 256) for c in (b"r", b"g", b"b")})
    return _icc(b"RGB ", tags)


def _cmyk_lab(c, m, y, k):
    return 100 - 20 * c - 25 * m - 10 * y - 45 * k, 60 * m - 40 * c, 70 * y - 30 * c - 10 * m


def _cmyk_profile():
    """A CMYK printer profile whose A2B0 (a lut16 of grid 2, to Lab) is the affine ``_cmyk_lab``."""
    identity = b"".join(_s15(float(i == j)) for i in range(3) for j in range(3))
    clut = b""
    for corner in np.ndindex(2, 2, 2, 2):
        L, a, b = _cmyk_lab(*corner)
        clut += struct.pack(">HHH", round(L * 652.8), round(a * 256 + 32768), round(b * 256 + 32768))
    ramps = struct.pack(">HH", 0, 65535)
    lut = b"mft2\0\0\0\0" + bytes([4, 3, 2, 0]) + identity + struct.pack(">HH", 2, 2) + ramps * 4 + clut + ramps * 3
    return _icc(b"CMYK", {b"desc": _desc("cmyk test"), b"wtpt": _xyz(*D50), b"A2B0": lut}, b"prtr", b"Lab ")


def _encode_srgb(linear):
    s = np.clip(linear, 0.0, 1.0)
    return np.where(s <= 0.0031308, 12.92 * s, 1.055 * s ** (1 / 2.4) - 0.055)


def _adobe_to_srgb(rgb):
    """Reference: Adobe RGB values in [0, 1] (..., 3) -> sRGB, colorimetric, clipped."""
    xyz = (np.asarray(rgb) ** (563 / 256)) @ ADOBE.T
    return _encode_srgb(xyz @ np.linalg.inv(SRGB).T)


def _lab_to_srgb(L, a, b):
    fy = (L + 16) / 116
    f = np.array([fy + a / 500, fy, fy - b / 200])
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * D50
    return _encode_srgb(np.linalg.solve(SRGB, xyz))


def test_a_wide_gamut_profile_is_converted_to_srgb(tmp_path):
    raw = np.array([[[128, 200, 60], [20, 40, 220], [255, 255, 255], [0, 255, 0]]], np.uint8)
    Image.fromarray(raw).save(tmp_path / "wide.png", icc_profile=_adobe_rgb())
    Image.fromarray(raw).save(tmp_path / "wide.jpg", icc_profile=_adobe_rgb(), quality=100, subsampling=0)
    want = _adobe_to_srgb(raw / 255)
    assert np.abs(want[0, 0] - raw[0, 0] / 255).max() > 0.15  # green 128,200,60 is sRGB 77,201,37: far from its bytes
    np.testing.assert_allclose(load_image(tmp_path / "wide.png"), want, atol=1.5 / 255)
    np.testing.assert_allclose(load_image(tmp_path / "wide.jpg"), want, atol=4 / 255)  # JPEG's own loss
    assert load_mask(tmp_path / "wide.png", (1, 4)).shape == (1, 4)
    # A profile of another colour space than the image's is not used (as viewers do).
    Image.fromarray(raw[..., 1]).save(tmp_path / "grey.png", icc_profile=_adobe_rgb())
    np.testing.assert_allclose(load_image(tmp_path / "grey.png")[..., 0], raw[..., 1] / 255, atol=1e-6)


def test_grey_and_cmyk_profiles_are_converted_to_srgb(tmp_path):
    grey = _icc(b"GRAY", {b"desc": _desc("linear grey"), b"wtpt": _xyz(*D50), b"kTRC": _gamma(1.0)})
    Image.new("L", (3, 2), 128).save(tmp_path / "linear.png", icc_profile=grey)
    np.testing.assert_allclose(load_image(tmp_path / "linear.png"), _encode_srgb(128 / 255), atol=1.5 / 255)  # 188
    cmyk = np.array([[51, 128, 77, 26], [200, 30, 10, 0]], np.uint8)
    Image.fromarray(np.repeat(cmyk[:, None], 8, 1).repeat(8, 0), "CMYK").save(
        tmp_path / "c.jpg", icc_profile=_cmyk_profile(), quality=100
    )
    got = load_image(tmp_path / "c.jpg")[::8, 0]
    want = np.array([_lab_to_srgb(*_cmyk_lab(*(v / 255))) for v in cmyk])
    np.testing.assert_allclose(got, want, atol=4 / 255)  # perceptual intent, JPEG: within 4 levels
    naive = np.asarray(Image.fromarray(cmyk[None], "CMYK").convert("RGB"))[0] / 255  # what Pillow alone gives
    assert np.abs(naive - want).max() > 0.2


@pytest.mark.parametrize("profile", [b"not a profile", b"x" * 4000, "truncated"])
def test_a_damaged_profile_is_one_line(tmp_path, profile):
    profile = _adobe_rgb()[:150] if profile == "truncated" else profile
    Image.new("RGB", (4, 4)).save(tmp_path / "p.png", icc_profile=profile)
    with pytest.raises(jaxnst.JaxnstError, match=r"p\.png has a damaged colour profile \(ICC: .*\): save it again "):
        load_image(tmp_path / "p.png")


def test_outputs_are_tagged_srgb(tmp_path, rng):
    a = rng.uniform(size=(4, 5, 3)).astype(np.float32)
    save_image(a, tmp_path / "o.png")
    save_image(a, tmp_path / "o.jpg")
    assert Image.open(tmp_path / "o.png").info["srgb"] == 0  # the sRGB chunk, perceptual
    icc = Image.open(tmp_path / "o.jpg").info["icc_profile"]
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).startswith("sRGB")
    np.testing.assert_allclose(load_image(tmp_path / "o.png"), np.round(a * 255) / 255, atol=1e-6)  # not converted


# --- 16-bit PNGs -----------------------------------------------------------------------------------------------------


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _png16(pixels, kinds=(0, 1, 2, 3, 4), chunks=b""):
    """A 16-bit PNG of uint16 ``pixels`` (H, W, 3 or 4), row r filtered with ``kinds[r % len(kinds)]``, as the
    PNG specification writes them (byte by byte); ``chunks`` go before IDAT."""
    h, w, ch = pixels.shape
    bpp, prev, out = 2 * ch, [0] * (w * 2 * ch), bytearray()
    for r, row in enumerate(pixels.astype(">u2").reshape(h, -1).view(np.uint8).tolist()):
        k = kinds[r % len(kinds)]
        out.append(k)
        for i, x in enumerate(row):
            a, b, c = (row[i - bpp], prev[i], prev[i - bpp]) if i >= bpp else (0, prev[i], 0)
            out.append((x - (0, a, b, (a + b) // 2, _paeth(a, b, c))[k]) % 256)
        prev = row
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[ch], 0, 0, 0)
    body = _chunk(b"IHDR", ihdr) + chunks + _chunk(b"IDAT", zlib.compress(bytes(out)))
    return b"\x89PNG\r\n\x1a\n" + body + _chunk(b"IEND", b"")


def test_16_bit_png_round_trip_and_record(tmp_path, rng):
    a = rng.uniform(size=(5, 7, 3)).astype(np.float32)
    a[0, 0] = [0.0, 1.0, 0.5]
    save_image(a, tmp_path / "o.png", bits=16, text={"jaxnst": '{"note": "café ☕"}'})
    assert png_bit_depth(tmp_path / "o.png") == 16 and png_bit_depth(__file__) == 8
    with Image.open(tmp_path / "o.png") as im:
        assert im.text["jaxnst"] == '{"note": "café ☕"}' and im.info["srgb"] == 0  # the record reader's view
        np.testing.assert_array_equal(np.asarray(im), np.round(a * 65535).astype(np.uint16) >> 8)  # Pillow: 8 bits
    got = load_image(tmp_path / "o.png")
    assert got.dtype == np.float32 and got.shape == (5, 7, 3)
    np.testing.assert_allclose(got, a, rtol=0, atol=0.5 / 65535 + 1e-7)  # 16 bits kept, not 8
    assert load_image(tmp_path / "o.png", size=14).shape == (10, 14, 3)
    with pytest.raises(jaxnst.JaxnstError, match=r"o\.jpg is a JPEG, which holds 8 bits per channel: give a \.png"):
        save_image(a, tmp_path / "o.jpg", bits=16)
    with pytest.raises(jaxnst.JaxnstError, match="12 bits per channel: give 8 or 16"):
        save_image(a, tmp_path / "x.png", bits=12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]


# 300 rows: past the decoder's bands of 256, whose row 256 is filtered from row 255 (Paeth, up); only none, sub
# and up: the decoder's row-at-once path.
@pytest.mark.parametrize("shape, kinds", [((9, 7, 3), (0, 1, 2, 3, 4)), ((300, 5, 4), (2, 4, 3, 0, 1)),
                                          ((300, 4, 3), (1, 2, 0))])  # fmt: skip
def test_16_bit_decoder_undoes_every_filter(tmp_path, rng, shape, kinds):
    v = rng.integers(0, 65536, shape, dtype=np.uint16)
    v[: shape[0] // 2, :, :2] //= 64  # smooth regions too, where the filters' sums wrap differently
    (tmp_path / "f.png").write_bytes(_png16(v, kinds))
    rgb = v[..., :3] / 65535
    want = rgb if shape[2] == 3 else rgb * (v[..., 3:] / 65535) + 1 - v[..., 3:] / 65535  # onto white
    np.testing.assert_allclose(load_image(tmp_path / "f.png"), want, rtol=0, atol=1e-6)
    with Image.open(tmp_path / "f.png") as im:  # Pillow decodes the same file to the same high bytes
        np.testing.assert_array_equal(np.asarray(im), (v >> 8).astype(np.uint8))


def test_16_bit_png_orientation_profile_and_damage(tmp_path, rng):
    v = rng.integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    (tmp_path / "turned.png").write_bytes(_png16(v, chunks=_chunk(b"eXIf", exif.tobytes()[6:])))
    np.testing.assert_allclose(load_image(tmp_path / "turned.png"), np.rot90(v / 65535, -1), rtol=0, atol=1e-6)
    # A profile other than sRGB: converted at 8 bits (Pillow's colour management).
    iccp = _chunk(b"iCCP", b"wide\0\0" + zlib.compress(_adobe_rgb()))
    (tmp_path / "wide.png").write_bytes(_png16(v, chunks=iccp))
    np.testing.assert_allclose(load_image(tmp_path / "wide.png"), _adobe_to_srgb((v >> 8) / 255), atol=1.5 / 255)
    good = _png16(v, kinds=(0,))
    at = good.index(b"IDAT") + 20
    (tmp_path / "crc.png").write_bytes(good[:at] + bytes([good[at] ^ 1]) + good[at + 1 :])
    (tmp_path / "cut.png").write_bytes(good[: good.index(b"IDAT") + 30])
    for name in ("crc", "cut"):
        with pytest.raises(jaxnst.JaxnstError, match=rf"{name}\.png is truncated or damaged"):
            load_image(tmp_path / f"{name}.png")


def test_16_bit_png_decompresses_no_more_than_its_pixels(tmp_path, monkeypatch):
    """A 2x2 image whose IDAT inflates to 64 MB: only the 26 bytes its pixels hold are ever inflated."""
    bomb = zlib.compress(b"\0" * (64 << 20), 9)
    png = _png16(np.zeros((2, 2, 3), np.uint16))
    start = png.index(b"IDAT") - 4
    end = start + 12 + struct.unpack(">I", png[start : start + 4])[0]
    (tmp_path / "zip.png").write_bytes(png[:start] + _chunk(b"IDAT", bomb) + png[end:])
    real, sizes = zlib.decompressobj, []

    class Counting:
        def __init__(self):
            self.z = real()

        def decompress(self, data, max_length=0):
            out = self.z.decompress(data, max_length)
            sizes.append(len(out))
            return out

    monkeypatch.setattr(zlib, "decompressobj", Counting)
    np.testing.assert_array_equal(load_image(tmp_path / "zip.png"), 0.0)
    assert sum(sizes) == 2 * (1 + 2 * 3 * 2)


def test_cli_bit_depth_16_needs_a_png(tmp_path, capsys):
    from jaxnst.cli import main

    Image.new("RGB", (8, 8)).save(tmp_path / "c.png")
    c, out = str(tmp_path / "c.png"), tmp_path / "o.jpg"
    assert main([c, c, "-o", str(out), "--bit-depth", "16"]) == 2  # before anything is read
    want = f"jaxnst: error: output {out} is a JPEG, which holds 8 bits per channel: give a .png for 16 bits"
    assert capsys.readouterr().err.strip() == want
    assert main(["batch", "--content", "x", "--style", "y", "--out", "z", "--bit-depth", "12"]) == 2
    assert "--bit-depth: invalid choice: 12 (choose from 8, 16)" in capsys.readouterr().err


# --- messages with their real cause ----------------------------------------------------------------------------------


def test_links_pipes_and_unreadable_files_name_their_cause(tmp_path, monkeypatch):
    os.symlink("b.png", tmp_path / "a.png")
    os.symlink("a.png", tmp_path / "b.png")
    with pytest.raises(jaxnst.JaxnstError, match=r"a\.png cannot be read \(Too many levels of symbolic links\): a sym"):
        load_image(tmp_path / "a.png")
    os.symlink("gone.png", tmp_path / "dangling.png")
    with pytest.raises(jaxnst.JaxnstError, match=r"dangling\.png is a link to gone\.png, which does not exist"):
        load_image(tmp_path / "dangling.png")
    os.mkfifo(tmp_path / "pipe.png")  # open() would wait for a writer forever
    with pytest.raises(jaxnst.JaxnstError, match=r"pipe\.png is a named pipe \(FIFO\), not a file"):
        load_image(tmp_path / "pipe.png")
    Image.new("RGB", (8, 6)).save(tmp_path / "x.png")
    with pytest.raises(jaxnst.JaxnstError, match=r"x\.png/y\.png cannot be read \(Not a directory\)"):
        load_image(tmp_path / "x.png" / "y.png")
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 6)).save(secret)
    message = r"secret\.png cannot be read \(Permission denied\): check its permissions"
    if os.geteuid() != 0:  # root reads a file of mode 000 anyway
        secret.chmod(0)
        with pytest.raises(jaxnst.JaxnstError, match=message):
            load_image(secret)
        secret.chmod(0o644)
    real = os.open

    def denied(path, *args, **kwargs):
        if path == secret:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)  # as a user other than root sees it
    with pytest.raises(jaxnst.JaxnstError, match=message):
        load_image(secret)


def test_out_of_memory_in_pillow_is_one_line(tmp_path, monkeypatch):
    from PIL import ImageFile

    Image.new("RGB", (8, 6)).save(tmp_path / "x.png")

    def no_memory(self):
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_memory)
    with pytest.raises(jaxnst.JaxnstError, match=r"x\.png \(8x6 px\) needs more memory than there is to read it"):
        load_image(tmp_path / "x.png")
