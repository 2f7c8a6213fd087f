"""Reading image files into RGB, whatever their mode, with errors that name the file.

Every failure to decode a file -- missing, empty, truncated, corrupt, not an image, or larger
than PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, about 179 million pixels
with PIL's default) -- raises :class:`omnireid.errors.ImageError` (alias
:class:`ImageDecodeError`), which names the file.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from omnireid.errors import ImageError

logger = logging.getLogger(__name__)

_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N"}

#: File endings read as images (case-insensitive) wherever a folder is scanned: dataset readers,
#: custom data and galleries. PIL decodes all of them; a gif or multi-page tiff gives its first frame.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")

#: An image file could not be read (the message names the file and the reason).
ImageDecodeError = ImageError


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL image to 8-bit RGB.

    Grayscale, palette and CMYK go through PIL's conversions; alpha is dropped (as PIL's
    ``convert("RGB")`` and torchreid do, so features match); 16-bit and 32-bit integer images are
    scaled to 8 bits (65535 -> 255) instead of being clipped; float images are scaled from
    [0, 1] when they fit in it, else from their own min/max.
    """
    if img.mode == "RGB":
        return img
    if img.mode in _SIXTEEN_BIT or img.mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        if img.mode in _SIXTEEN_BIT or arr.max(initial=0) > 255:
            arr = arr / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
        if lo >= 0 and hi <= 1:
            arr = arr * 255.0
        elif hi > lo:
            arr = (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def read_image(path: str | Path) -> Image.Image:
    """Open ``path`` and return a fully decoded 8-bit RGB PIL image.

    Raises:
        ImageDecodeError: the file is missing, empty, truncated, corrupt or not an image.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except FileNotFoundError:
        raise ImageDecodeError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageDecodeError(path, "is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(path, "not a recognised image format (empty or corrupt file?)") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(path, f"refused as a possible decompression bomb ({exc})") from None
    except MemoryError:
        raise ImageDecodeError(path, "too large to decode in the available memory") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(path, f"corrupt or truncated ({exc})") from None


def check_pixel_count(path: str | Path, data: bytes) -> None:
    """Raise :class:`ImageDecodeError` if the image in ``data`` (read from ``path``) has more
    pixels than PIL's decompression-bomb limit; reads only the header."""
    try:
        with Image.open(io.BytesIO(data)):
            pass
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(path, f"refused as a possible decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        pass  # the full decode reports other problems


def check_images(paths: list[str], max_report: int = 10) -> list[tuple[str, str]]:
    """Try to decode every file; return ``[(path, reason)]`` for the ones that fail."""
    bad = []
    for path in paths:
        try:
            read_image(path)
        except ImageDecodeError as exc:
            bad.append((exc.path, exc.reason))
    if bad:
        logger.warning("%d unreadable image(s), e.g. %s", len(bad), bad[:max_report])
    return bad
