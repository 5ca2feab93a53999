"""Questions per skill about procedural scenes, and the solver that answers any of them from a scene.

Skills, easiest first (as a tiny student finds them): the colour of a lone shape; whether a
colour is present; the colour of a named shape; counting all shapes; whether a colour-and-shape
pair is present; counting shapes of a colour; left/right between two shapes; which of two shapes
is larger.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from dataenvgym_dagster.domain.vqa.scenes import COLOURS, SHAPES, SIZES, Scene, SceneObject, random_scene

Question = tuple[Scene, str, str]  # scene, question text, answer
_COLOUR = "|".join(COLOURS)
_SHAPE = "|".join(SHAPES)


def _lone_colour(rng: random.Random) -> Question:
    scene = random_scene(rng, 1)
    return scene, "What colour is the shape?", scene.objects[0].colour


def _colour_of_named_shape(rng: random.Random) -> Question:
    count = rng.randint(2, 3)
    scene = random_scene(rng, count, shapes=rng.sample(SHAPES, count))
    target = rng.choice(scene.objects)
    return scene, f"What colour is the {target.shape}?", target.colour


def _count_all(rng: random.Random) -> Question:
    scene = random_scene(rng, rng.randint(1, 5))
    return scene, "How many shapes are there?", str(len(scene.objects))


def _count_colour(rng: random.Random) -> Question:
    colour = rng.choice(list(COLOURS))
    wanted = rng.randint(0, 3)
    others = [c for c in COLOURS if c != colour]
    count = rng.randint(max(wanted, 1) + (wanted == 0), min(5, wanted + 2))
    colours = [colour] * wanted + [rng.choice(others) for _ in range(count - wanted)]
    rng.shuffle(colours)
    scene = random_scene(rng, count, colours=colours)
    return scene, f"How many {colour} shapes are there?", str(wanted)


def _colour_present(rng: random.Random) -> Question:
    scene = random_scene(rng, rng.randint(1, 3))
    present = sorted({obj.colour for obj in scene.objects})
    absent = [c for c in COLOURS if c not in present]
    if rng.random() < 0.5:
        return scene, f"Is there a {rng.choice(present)} shape?", "yes"
    return scene, f"Is there a {rng.choice(absent)} shape?", "no"


def _colour_shape_present(rng: random.Random) -> Question:
    scene = random_scene(rng, rng.randint(2, 4))
    if rng.random() < 0.5:
        target = rng.choice(scene.objects)
        return scene, f"Is there a {target.colour} {target.shape}?", "yes"
    # A near miss: a colour and a shape that are both in the scene, but not together, when possible.
    pairs = {(o.colour, o.shape) for o in scene.objects}
    colours, shapes = sorted({o.colour for o in scene.objects}), sorted({o.shape for o in scene.objects})
    misses = [(c, s) for c in colours for s in shapes if (c, s) not in pairs] or [
        (c, s) for c in COLOURS for s in SHAPES if (c, s) not in pairs
    ]
    colour, shape = rng.choice(misses)
    return scene, f"Is there a {colour} {shape}?", "no"


def _left_right(rng: random.Random) -> Question:
    while True:
        scene = random_scene(rng, 2, colours=rng.sample(list(COLOURS), 2))
        first, second = scene.objects
        if first.column != second.column:
            break
    answer = "left" if first.column < second.column else "right"
    return scene, f"Is the {first.colour} shape left or right of the {second.colour} shape?", answer


def _larger(rng: random.Random) -> Question:
    sizes = rng.sample(list(SIZES), 2)
    scene = random_scene(rng, 2, colours=rng.sample(list(COLOURS), 2), sizes=sizes)
    first, second = scene.objects if rng.random() < 0.5 else scene.objects[::-1]
    larger = first if first.size == "large" else second
    return scene, f"Which shape is larger, the {first.colour} one or the {second.colour} one?", larger.colour


GENERATORS: dict[str, Callable[[random.Random], Question]] = {
    "colour/lone_shape": _lone_colour,
    "colour/named_shape": _colour_of_named_shape,
    "existence/colour": _colour_present,
    "existence/colour_and_shape": _colour_shape_present,
    "count/all_shapes": _count_all,
    "count/by_colour": _count_colour,
    "spatial/left_right": _left_right,
    "comparison/larger": _larger,
}


class UnanswerableQuestion(ValueError):
    """A question outside the procedural templates, or one the scene does not determine."""


def _one(objects: list[SceneObject], what: str) -> SceneObject:
    if len(objects) != 1:
        raise UnanswerableQuestion(f"the scene has {len(objects)} {what}, not exactly one")
    return objects[0]


def answer(scene: Scene, question: str) -> str:
    """The exact answer to a templated question about ``scene``; :class:`UnanswerableQuestion` otherwise."""
    q = question.strip().lower()
    objects = list(scene.objects)
    if q == "what colour is the shape?":
        return _one(objects, "shapes").colour
    if m := re.fullmatch(rf"what colour is the ({_SHAPE})\?", q):
        return _one([o for o in objects if o.shape == m[1]], f"{m[1]}s").colour
    if q == "how many shapes are there?":
        return str(len(objects))
    if m := re.fullmatch(rf"how many ({_COLOUR}) shapes are there\?", q):
        return str(sum(o.colour == m[1] for o in objects))
    if m := re.fullmatch(rf"is there an? ({_COLOUR}) shape\?", q):
        return "yes" if any(o.colour == m[1] for o in objects) else "no"
    if m := re.fullmatch(rf"is there an? ({_COLOUR}) ({_SHAPE})\?", q):
        return "yes" if any(o.colour == m[1] and o.shape == m[2] for o in objects) else "no"
    if m := re.fullmatch(rf"is the ({_COLOUR}) shape left or right of the ({_COLOUR}) shape\?", q):
        first = _one([o for o in objects if o.colour == m[1]], f"{m[1]} shapes")
        second = _one([o for o in objects if o.colour == m[2]], f"{m[2]} shapes")
        if first.column == second.column:
            raise UnanswerableQuestion("the two shapes are in the same column")
        return "left" if first.column < second.column else "right"
    if m := re.fullmatch(rf"which shape is larger, the ({_COLOUR}) one or the ({_COLOUR}) one\?", q):
        first = _one([o for o in objects if o.colour == m[1]], f"{m[1]} shapes")
        second = _one([o for o in objects if o.colour == m[2]], f"{m[2]} shapes")
        if first.size == second.size:
            raise UnanswerableQuestion("the two shapes have the same size")
        return first.colour if first.size == "large" else second.colour
    raise UnanswerableQuestion(f"{question!r} is not one of the procedural question templates")
