"""Procedural scenes: shapes of a colour and size in the cells of a 3 × 3 grid, as text and as pixels.

A scene's **description** is its render spec: ``"a large red circle at top left; a small blue
square at middle right"``. The procedural image generator parses it and draws it; the same
parse answers questions about it, so an example's answer is exact by construction. An LLM
teacher can write descriptions in this grammar too (see the VQA brief).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

CANVAS = 64  # pixels per side; the tiny student's vision tower reads 64 × 64
BACKGROUND = (128, 128, 128)  # mid grey: each colour is brighter in some channel and darker in another
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (40, 70, 230),
    "yellow": (235, 225, 40),
    "purple": (170, 50, 210),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 5, "large": 9}  # radius in pixels
ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "centre", "right")
CELL = CANVAS / 3
JITTER = 2  # pixels a shape may move off its cell's centre, seeded

_OBJECT = re.compile(
    rf"^(?:an? )?(?P<size>{'|'.join(SIZES)}) (?P<colour>{'|'.join(COLOURS)}) (?P<shape>{'|'.join(SHAPES)})"
    rf" at (?P<row>{'|'.join(ROWS)}) (?P<column>{'|'.join(COLUMNS)})$"
)


class SceneFormatError(ValueError):
    """A description that is not in the scene grammar."""


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    row: int  # 0 top .. 2 bottom
    column: int  # 0 left .. 2 right

    def describe(self) -> str:
        article = "an" if self.size[0] in "aeiou" else "a"
        return f"{article} {self.size} {self.colour} {self.shape} at {ROWS[self.row]} {COLUMNS[self.column]}"


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    jitter_seed: int = 0

    def describe(self) -> str:
        """The scene in the description grammar, objects in reading order (top left first)."""
        return "; ".join(obj.describe() for obj in sorted(self.objects, key=lambda o: (o.row, o.column)))

    def with_colour(self, colour: str) -> tuple[SceneObject, ...]:
        return tuple(obj for obj in self.objects if obj.colour == colour)


def parse_scene(description: str, jitter_seed: int = 0) -> Scene:
    """The scene a description describes. Raises :class:`SceneFormatError` naming the part that does not parse."""
    objects = []
    for part in (p.strip().lower().rstrip(".") for p in description.split(";")):
        match = _OBJECT.match(part)
        if match is None:
            raise SceneFormatError(
                f"scene description part {part!r} is not '<small|large> <{'|'.join(COLOURS)}> <{'|'.join(SHAPES)}> "
                f"at <{'|'.join(ROWS)}> <{'|'.join(COLUMNS)}>'"
            )
        objects.append(
            SceneObject(
                shape=match["shape"], colour=match["colour"], size=match["size"],
                row=ROWS.index(match["row"]), column=COLUMNS.index(match["column"]),
            )
        )
    cells = [(o.row, o.column) for o in objects]
    if len(cells) != len(set(cells)):
        raise SceneFormatError(f"scene description {description!r} puts two shapes in one cell")
    return Scene(objects=tuple(objects), jitter_seed=jitter_seed)


def render(scene: Scene) -> Image.Image:
    """The scene as a 64 × 64 RGB image; the same scene always gives the same pixels."""
    image = Image.new("RGB", (CANVAS, CANVAS), BACKGROUND)
    draw = ImageDraw.Draw(image)
    rng = random.Random(scene.jitter_seed)
    for obj in sorted(scene.objects, key=lambda o: (o.row, o.column)):
        radius = SIZES[obj.size]
        x = (obj.column + 0.5) * CELL + rng.randint(-JITTER, JITTER)
        y = (obj.row + 0.5) * CELL + rng.randint(-JITTER, JITTER)
        box = (x - radius, y - radius, x + radius, y + radius)
        colour = COLOURS[obj.colour]
        if obj.shape == "circle":
            draw.ellipse(box, fill=colour)
        elif obj.shape == "square":
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(x, y - radius), (x + radius, y + radius), (x - radius, y + radius)], fill=colour)
    return image


def random_scene(rng: random.Random, count: int, *, colours: Sequence[str] | None = None, shapes: Sequence[str] | None = None,
                 sizes: Sequence[str] | None = None) -> Scene:
    """``count`` shapes in distinct cells; per object, colour/shape/size drawn from the given choices (default: all)."""
    cells = rng.sample([(r, c) for r in range(3) for c in range(3)], count)
    objects = tuple(
        SceneObject(
            shape=(shapes or SHAPES)[i] if shapes and len(shapes) == count else rng.choice(SHAPES),
            colour=(colours or list(COLOURS))[i] if colours and len(colours) == count else rng.choice(list(COLOURS)),
            size=(sizes or list(SIZES))[i] if sizes and len(sizes) == count else rng.choice(list(SIZES)),
            row=row, column=column,
        )
        for i, (row, column) in enumerate(cells)
    )
    return Scene(objects=objects, jitter_seed=rng.randrange(2**31))
