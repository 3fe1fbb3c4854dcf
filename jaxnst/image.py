"""Image files <-> float32 RGB arrays in [0, 1] (H, W, 3). Knows nothing of VGG."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jaxnst._files import atomic_path
from jaxnst.errors import JaxnstError

T = TypeVar("T")

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def _to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as RGB, or as one float channel in [0, 1] (mode ``F``) for 16-bit and float greyscale, whose
    precision 8 bits would lose (Pillow's convert('RGB') would clip them at 255 instead of scaling)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greyscale (Pillow opens some PNGs of it as "I")
        return Image.fromarray(np.clip(np.asarray(img, np.float32) / 65535.0, 0.0, 1.0))  # float32: mode F
    if img.mode == "F":  # float greyscale (TIFF), taken as [0, 1]
        return Image.fromarray(np.nan_to_num(np.clip(np.asarray(img, np.float32), 0.0, 1.0)))
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        # Transparent pixels become white, as they look in a viewer.
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return img.convert("RGB")


def load_image(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Reads an image file as float32 RGB (H, W, 3) in [0, 1].

    Honours EXIF orientation; converts greyscale, palette, alpha (onto white),
    CMYK and 16-bit images to RGB. With ``size`` the long side is resized to it
    (Lanczos), keeping the aspect ratio. Refuses images of more than Pillow's
    ``PIL.Image.MAX_IMAGE_PIXELS`` (where Pillow only warns up to twice that).
    """
    img = _read(path, lambda img: _to_rgb(ImageOps.exif_transpose(img)))
    if size is not None:
        img = img.resize(fit_long_side(img.size, size), Image.Resampling.LANCZOS)
    if img.mode == "F":  # greyscale kept in float
        return np.repeat(np.clip(np.asarray(img, np.float32), 0.0, 1.0)[..., None], 3, axis=-1)
    return np.asarray(img, np.float32) / 255.0


def load_mask(path: str | os.PathLike, hw: tuple[int, int], what: str = "mask") -> np.ndarray:
    """Reads a region mask for an image of ``hw`` = (height, width): float32 (H, W) in [0, 1], white
    = inside, gray = partly (colour images count by their luminance, transparency as white). It is
    resized to ``hw``; a mask of another aspect ratio (beyond 2 %) is a ``JaxnstError``."""
    img = _read(path, lambda img: _to_rgb(ImageOps.exif_transpose(img)))
    img, scale = (img, 1.0) if img.mode == "F" else (img.convert("L"), 255.0)
    (w, h), (hh, ww) = img.size, hw
    if abs((w / h) / (ww / hh) - 1) > 0.02:
        raise JaxnstError(f"{what} {path} is {w}x{h} px but its image is {ww}x{hh}: give a mask of the image's shape")
    return np.clip(np.asarray(img.resize((ww, hh), Image.Resampling.BILINEAR), np.float32) / scale, 0.0, 1.0)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file as ``load_image`` would see it (after EXIF
    orientation), read from its header without decoding the pixels."""

    def read(img: Image.Image) -> tuple[int, int]:
        w, h = img.size
        transposed = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # 90-degree orientations
        return (h, w) if transposed else (w, h)

    return _read(path, read)


def _read(path: str | os.PathLike, read: Callable[[Image.Image], T]) -> T:
    """``read(img)`` of the opened image file, with what can go wrong as a one-line ``JaxnstError``."""
    path = Path(path)
    if path.is_dir():
        raise JaxnstError(f"image {path} is a folder, not an image file: give the path of a PNG or JPEG")
    if not path.exists():
        raise JaxnstError(f"image {path} does not exist: check the path")
    if not path.is_file():
        raise JaxnstError(f"image {path} is not a regular file: give the path of a PNG or JPEG")
    img = None
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that: both are refused here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return read(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        n = re.search(r"\d+", str(e))  # Pillow's message starts "Image size (N pixels) exceeds limit..."
        pixels = f"{int(n[0]):,} pixels" if n else "too many pixels"
        raise JaxnstError(
            f"image {path} is too large ({pixels}, more than Pillow's limit of {Image.MAX_IMAGE_PIXELS:,}"
            " against decompression bombs): downscale it first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        if img is None:
            raise JaxnstError(
                f"{path} is not an image Pillow can read ({e.__class__.__name__}): give a PNG or JPEG"
            ) from None
        raise JaxnstError(f"image {path} is truncated or damaged ({e}): save or download it again") from None


def fit_long_side(wh: tuple[int, int], size: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is ``size``."""
    w, h = wh
    s = size / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def check_output_path(path: str | os.PathLike) -> Path:
    """Raises ``JaxnstError`` unless ``path`` ends in .png/.jpg/.jpeg in an existing folder."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise JaxnstError(f"output {path} must end in .png, .jpg or .jpeg")
    if not path.parent.is_dir():
        raise JaxnstError(f"output folder {path.parent} does not exist: create it first")
    return path


def to_pil(image) -> Image.Image:
    """Float RGB (H, W, 3) or (1, H, W, 3) in [0, 1] as an 8-bit RGB PIL image (clipped, rounded)."""
    a = np.asarray(image, np.float32)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    return Image.fromarray(np.round(np.clip(a, 0.0, 1.0) * 255).astype(np.uint8), "RGB")


def save_image(image, path: str | os.PathLike, *, quality: int = 95, text: dict[str, str] | None = None) -> None:
    """Writes float RGB (H, W, 3) in [0, 1] as PNG or JPEG (by extension, ``quality`` for JPEG), atomically.

    ``text`` goes into a PNG as text chunks (``Image.open(path).text`` reads them back); JPEGs get none.
    """
    path = check_output_path(path)
    img = to_pil(image)
    fmt = FORMATS[path.suffix.lower()]
    options = {"quality": quality} if fmt == "JPEG" else {}
    if text and fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        options["pnginfo"] = info = PngInfo()
        for k, v in text.items():
            info.add_itxt(k, v)
    with atomic_path(path) as tmp:
        img.save(tmp, fmt, **options)
