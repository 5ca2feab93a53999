"""Images as files named by content hash, their perceptual keys, and the checks they must pass.

Tables never hold pixels: a problem's payload names its image (``image``: a path relative to
``$DATAENVGYM_HOME`` for images the project makes, or an absolute path into a benchmark's images
folder), its SHA-256 and where to (re)make it: a procedural ``description`` with its
``jitter_seed``, or a ``parquet`` cell (NaturalBench). The domain computes names and hashes;
only :class:`ImageStore`, given a home by the machinery, writes files.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

IMAGES_DIR = "images"
BLANK_SPREAD = 8
# A gradient counts only above this many levels, so flat areas (a rendered background) do not
# flip bits under compression noise, as plain dHash does.
GRADIENT_MARGIN = 6  # an image whose every channel spans fewer levels than this is blank


class ImageError(ValueError):
    """An image that is missing, does not decode, or does not match its recorded hash."""


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG, deterministically (no timestamps or text chunks)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def relative_path(digest: str, suffix: str = ".png") -> str:
    """Where an image with this SHA-256 lives under the home: ``images/<2 hex>/<sha256>.png``."""
    return f"{IMAGES_DIR}/{digest[:2]}/{digest}{suffix}"


def perceptual_key(image: Image.Image) -> str:
    """A colour-aware difference hash: 16 hex digits, equal for re-encoded, resized or slightly noisy copies.

    dHash (whether each horizontal gradient of a 9 × 8 thumbnail falls by more than a margin) per RGB channel, so that a
    red and a blue circle at the same place differ; the three 64-bit hashes are folded into one
    key by SHA-256, because duplicates are found by equality of keys.
    """
    thumbnail = image.convert("RGB").resize((9, 8), Image.Resampling.BILINEAR)
    bits = []
    for channel in thumbnail.split():
        pixels = list(channel.tobytes())
        bits += [
            int(pixels[row * 9 + col] - pixels[row * 9 + col + 1] > GRADIENT_MARGIN) for row in range(8) for col in range(8)
        ]
    return hashlib.sha256(bytes(bits)).hexdigest()[:16]


def decode(data: bytes, name: str) -> Image.Image:
    """Decode image bytes fully, or raise :class:`ImageError` naming ``name``."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ImageError(f"image {name} does not decode ({error}); replace or remove it") from None
    return image.convert("RGB")


def image_rejection(data: bytes) -> str | None:
    """Why an image cannot teach anything, as the quality filters name it: ``undecodable_image``,
    ``blank_image`` (every channel spans fewer than ``BLANK_SPREAD`` levels), or None if it is fine."""
    try:
        image = decode(data, "candidate")
    except ImageError:
        return "undecodable_image"
    extrema = image.getextrema()
    if all(high - low < BLANK_SPREAD for low, high in extrema):
        return "blank_image"
    return None


def question_tag(key: str) -> str:
    """The prefix that makes a question's text name its image, so that text equality means (image, question) equality."""
    return f"[image {key}] "


def split_tag(question: str) -> tuple[str | None, str]:
    """(perceptual key, question text) of a tagged question; (None, question) if untagged."""
    if question.startswith("[image ") and "] " in question:
        tag, _, text = question.partition("] ")
        return tag.removeprefix("[image "), text
    return None, question


class ImageStore:
    """The images folder of one home: resolves payload paths and makes missing images from their source."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    def path(self, payload: dict[str, Any]) -> Path:
        """The image file of a payload, made first if it is a procedural or Parquet image not yet on disk."""
        recorded = payload.get("image")
        if not recorded:
            raise ImageError(f"payload {payload} names no image; a visual question needs payload['image']")
        path = Path(recorded) if Path(recorded).is_absolute() else self.home / recorded
        if path.exists():
            return path
        data = self._make(payload, path)
        if payload.get("sha256") and sha256(data) != payload["sha256"]:
            raise ImageError(
                f"image {recorded} made from its source has sha256 {sha256(data)[:12]}, not the recorded "
                f"{payload['sha256'][:12]}; re-materialise the table that recorded it (the renderer or file changed)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_bytes(data)
        partial.replace(path)  # a reader never sees half an image
        return path

    def open(self, payload: dict[str, Any]) -> Image.Image:
        path = self.path(payload)
        return decode(path.read_bytes(), str(path))

    def _make(self, payload: dict[str, Any], path: Path) -> bytes:
        if "description" in payload and payload.get("generator", "procedural") == "procedural":
            from dataenvgym_dagster.domain.vqa.scenes import parse_scene, render

            return png_bytes(render(parse_scene(payload["description"], payload.get("jitter_seed", 0))))
        if "parquet" in payload:
            from dataenvgym_dagster.domain.vqa.naturalbench import image_cell

            return image_cell(Path(payload["parquet"]), payload["row"], payload["column"])
        raise ImageError(f"image file {path} does not exist and its payload has no source to make it from; restore the file")
