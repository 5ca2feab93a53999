"""The visual question answering domain: scenes, benchmarks, the student's prefix, exact-answer scoring."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from pydantic import BaseModel, Field

from dataenvgym_dagster.domain.benchmark import ProceduralSource
from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.types import Draft, Problem, Score, StudentText
from dataenvgym_dagster.domain.vqa import answers, images
from dataenvgym_dagster.domain.vqa.gqa import GqaSource
from dataenvgym_dagster.domain.vqa.naturalbench import NaturalBenchSource
from dataenvgym_dagster.domain.vqa.questions import GENERATORS, UnanswerableQuestion, answer
from dataenvgym_dagster.domain.vqa.scenes import COLOURS, SHAPES, SceneFormatError, parse_scene, render

PREFIX = "answer en "  # PaliGemma's task prefix, the same in training and evaluation

BRIEF = (
    "The domain is visual question answering about simple rendered scenes. Each problem is a spec: "
    "an image description, an instruction (the question about the image) and its answer. "
    "The image description lists one to five shapes separated by '; ', each written exactly as "
    "'<small|large> <" + "|".join(COLOURS) + "> <" + "|".join(SHAPES) + "> at <top|middle|bottom> <left|centre|right>', "
    "for example 'a large red circle at top left; a small blue square at middle right'; no two shapes share a place. "
    "The instruction is one question such as 'What colour is the circle?', 'How many red shapes are there?', "
    "'Is there a green square?', 'Is the red shape left or right of the blue shape?' or "
    "'Which shape is larger, the red one or the blue one?'. The answer is one word: a colour, a number "
    "written in digits, yes, no, left or right. Vary the scenes within the skill."
)


class VqaSpec(BaseModel):
    """One teacher-written visual question: the image to make, the question about it, and its answer."""

    instruction: str = Field(description="The question about the image, exactly as the student reads it.")
    image_description: str = Field(description="The image to generate, in the scene grammar of the brief.")
    answer: str = Field(description="The correct answer, one word, exactly and only.")


def procedural_draft(description: str, jitter_seed: int, question: str, reference: str) -> Draft:
    """A draft whose image is rendered from ``description``: payload with the image's path, hashes and render spec."""
    scene = parse_scene(description, jitter_seed)
    picture = render(scene)
    data = images.png_bytes(picture)
    digest = images.sha256(data)
    key = images.perceptual_key(picture)
    payload = {
        "image": images.relative_path(digest), "sha256": digest, "image_key": key,
        "generator": "procedural", "description": scene.describe(), "jitter_seed": jitter_seed,
    }
    return Draft(question=images.question_tag(key) + question, answer=reference, payload=payload)


class VqaDomain:
    """Questions about images, answered in a word.

    A problem's ``question`` starts with ``[image <perceptual key>]``, so that the loop's text
    comparisons (benchmark overlap, duplicates) compare (image, question) pairs, and
    :meth:`canonical` is the image's key: a generated example whose image is a near-duplicate
    of a benchmark image, or of an earlier example's, is filtered. The student reads
    ``answer en <question>`` beside the image and writes the answer.
    """

    name = "vqa"
    brief = BRIEF
    generated_item = VqaSpec
    student_kind = "paligemma"  # the student backend family (machinery/student/paligemma.py)

    def __init__(self) -> None:
        categories: dict[str, list[str]] = {}
        for skill in GENERATORS:
            categories.setdefault(skill.split("/", 1)[0], []).append(skill)
        self.taxonomy = SkillTaxonomy(domain=self.name, categories={c: tuple(s) for c, s in categories.items()})
        self.sources = {"procedural": ProceduralSource(self), "gqa": GqaSource(), "naturalbench": NaturalBenchSource()}

    # -- problems -------------------------------------------------------------------------
    def sample(self, skill: str, rng: random.Random) -> Draft:
        try:
            generator = GENERATORS[skill]
        except KeyError:
            raise KeyError(f"vqa has no procedural skill {skill!r}; known skills: {', '.join(GENERATORS)}") from None
        scene, question, reference = generator(rng)
        return procedural_draft(scene.describe(), scene.jitter_seed, question, reference)

    def draft(self, item: VqaSpec) -> Draft:
        """A teacher's spec, its image rendered by the procedural generator. Raises on a description outside the grammar."""
        description, question = item.image_description.strip(), item.instruction.strip()
        jitter = int.from_bytes(hashlib.sha256(f"{description}|{question}".encode()).digest()[:4], "big")
        return procedural_draft(description, jitter, question, item.answer.strip().lower())

    # -- the student's text format ----------------------------------------------------------
    def student_text(self, problem: Problem) -> StudentText:
        """``answer en <question>`` with the problem's image, and the reference answer as the target."""
        _, question = images.split_tag(problem.question)
        image = problem.payload.get("image")
        return StudentText(prompt=PREFIX + question, target=problem.answer, images=(image,) if image else ())

    # -- checking ---------------------------------------------------------------------------
    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        """Exact match after normalisation; yes/no and multiple-choice answers are extracted first (NaturalBench)."""
        scores = []
        for problem, completion in zip(problems, completions, strict=True):
            kind = problem.payload.get("answer_type", "open")
            if kind == "yes_no":
                extracted, reference = answers.extract_yes_no(completion), answers.normalise(problem.answer)
            elif kind == "multiple_choice":
                extracted = answers.extract_choice(completion, problem.payload.get("options", ["", ""]))
                reference = problem.answer.strip().upper()
            else:
                extracted, reference = answers.normalise(completion), answers.normalise(problem.answer)
            correct = bool(extracted) and extracted == reference
            verdict = "correct" if correct else ("no answer found" if not extracted else "wrong answer")
            scores.append(Score(value=float(correct), extracted=extracted, verdict=verdict))
        return scores

    def verify(self, problems: Sequence[Problem]) -> list[bool]:
        """Procedural problems: the answer follows from the described scene and the image is that scene's."""
        return [self._verified(problem) for problem in problems]

    @staticmethod
    def _verified(problem: Problem) -> bool:
        """Procedural: the answer follows from the described scene and the image is that scene's render (its SHA-256).
        Diffusers: the answer follows from the description the image was generated from; whether the picture
        shows it is the generator's fidelity, which nothing here can check (see docs/domains/vqa.md)."""
        payload = problem.payload
        generator = payload.get("generator")
        if generator not in ("procedural", "diffusers"):
            return False  # a photograph without a scene description: nothing here can check its answer
        try:
            scene = parse_scene(payload["description"], payload.get("jitter_seed", 0))
            _, question = images.split_tag(problem.question)
            expected = answer(scene, question)
        except (SceneFormatError, UnanswerableQuestion, KeyError):
            return False
        if answers.normalise(expected) != answers.normalise(problem.answer):
            return False
        return generator == "diffusers" or images.sha256(images.png_bytes(render(scene))) == payload.get("sha256")

    @staticmethod
    def canonical(question: str) -> str:
        """The image's perceptual key: questions about the same (or a near-duplicate) image share it."""
        key, text = images.split_tag(question)
        return f"image:{key}" if key else answers.normalise(text)


VQA = VqaDomain()
