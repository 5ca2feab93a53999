"""Image generators: turn a teacher's image descriptions into image files under the home, named by content hash.

* :class:`ProceduralImageGenerator` (offline, exact by construction): descriptions in the scene
  grammar of the vqa brief, rendered with Pillow.
* :class:`DiffusersImageGenerator` (the ``vqa-gpu`` extra): any description, through a
  ``diffusers`` text-to-image pipeline loaded with ``from_pretrained`` (a hub id such as
  SDXL-Turbo, 4 steps, guidance 0, or a local ``save_pretrained`` folder).

Both write every image they make (``images/<sha256[:2]>/<sha256>.png``) and return
:class:`GeneratedImage` records (path relative to the home, SHA-256, perceptual key, and why it
cannot teach if so); tables keep the records, never pixels. Whether an example's image is kept is
the quality filters' decision (:func:`inspect_images` reads what they need from the files), so a
blank or undecodable image is recorded with its reason, not silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dataenvgym_dagster.domain.quality import ImageCheck
from dataenvgym_dagster.domain.types import Problem, StudentText, TrainingExample
from dataenvgym_dagster.domain.vqa import images
from dataenvgym_dagster.domain.vqa.scenes import SceneFormatError, parse_scene, render


class ImageGeneratorSettings(BaseModel):
    """Which generator makes the images of teacher-written vqa specs (the catalogue's ``image_generator``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["procedural", "diffusers"] = Field(
        "procedural", description="procedural: Pillow renders the scene grammar (offline, exact); diffusers: a text-to-image pipeline."
    )
    model: str = Field("stabilityai/sdxl-turbo", description="diffusers: a hub id or a local save_pretrained pipeline folder.")
    revision: str | None = None
    steps: int = Field(4, gt=0, description="diffusers: denoising steps.")
    guidance: float = Field(0.0, ge=0, description="diffusers: classifier-free guidance scale (0: none, as SDXL-Turbo).")
    size: int = Field(512, gt=0, description="diffusers: image height and width (pixels).")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(8, gt=0)


@dataclass(frozen=True)
class GeneratedImage:
    description: str
    image: str | None  # relative to the home; None when nothing could be drawn
    sha256: str | None
    image_key: str | None  # None when the image does not decode
    rejection: str | None = None  # unparseable, undecodable_image, blank_image


def _store(home: Path, description: str, data: bytes) -> GeneratedImage:
    """Write the image under the home by its SHA-256 (whatever it is: the quality filters judge it)."""
    digest = images.sha256(data)
    relative = images.relative_path(digest)
    path = home / relative
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)  # a reader never sees half an image
    rejection = images.image_rejection(data)
    key = None if rejection == "undecodable_image" else images.perceptual_key(images.decode(data, relative))
    return GeneratedImage(description, relative, digest, key, rejection)


class ProceduralImageGenerator:
    """Scene-grammar descriptions rendered with Pillow; a description outside the grammar is rejected as ``unparseable``."""

    name = "procedural"

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    def generate(self, descriptions: Sequence[str], seed: int = 0) -> list[GeneratedImage]:
        generated = []
        for description in descriptions:
            try:
                data = images.png_bytes(render(parse_scene(description, seed)))
            except SceneFormatError:
                generated.append(GeneratedImage(description, None, None, None, "unparseable"))
                continue
            generated.append(_store(self.home, description, data))
        return generated


class DiffusersImageGenerator:
    """A ``diffusers`` text-to-image pipeline (default SDXL-Turbo: 4 steps, guidance 0, 512 × 512).

    Needs the ``vqa-gpu`` extra (``pip install -e '.[vqa-gpu]'``) and the model in the Hugging
    Face cache or at a local path; it runs on the CPU too (slowly for a real model). Each
    description gets a generator seeded from ``seed`` and its position, so a batch is reproducible.
    """

    name = "diffusers"

    def __init__(self, home: Path, settings: ImageGeneratorSettings = ImageGeneratorSettings(kind="diffusers")) -> None:
        self.home, self.settings = Path(home), settings
        self._pipeline = None

    @property
    def device(self) -> str:
        import torch

        if self.settings.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.settings.device

    def _load(self):
        if self._pipeline is None:
            try:
                import torch
                from diffusers import AutoPipelineForText2Image
            except ImportError as error:
                raise ImportError("the diffusers image generator needs the vqa-gpu extra: pip install -e '.[vqa-gpu]'") from error
            dtype = torch.float16 if self.device == "cuda" else torch.float32
            pipeline = AutoPipelineForText2Image.from_pretrained(self.settings.model, revision=self.settings.revision, dtype=dtype)
            pipeline.set_progress_bar_config(disable=True)
            self._pipeline = pipeline.to(self.device)
        return self._pipeline

    def generate(self, descriptions: Sequence[str], seed: int = 0) -> list[GeneratedImage]:
        import torch

        pipeline, settings = self._load(), self.settings
        generated = []
        for start in range(0, len(descriptions), settings.batch_size):
            batch = list(descriptions[start : start + settings.batch_size])
            generators = [torch.Generator(device=self.device).manual_seed(seed * 100_003 + start + i) for i in range(len(batch))]
            pictures = pipeline(
                prompt=batch, num_inference_steps=settings.steps, guidance_scale=settings.guidance,
                height=settings.size, width=settings.size, generator=generators,
            ).images
            generated += [_store(self.home, description, images.png_bytes(picture)) for description, picture in zip(batch, pictures, strict=True)]
        return generated


def image_generator(settings: ImageGeneratorSettings, home: Path) -> ProceduralImageGenerator | DiffusersImageGenerator:
    """The generator the catalogue names."""
    return DiffusersImageGenerator(home, settings) if settings.kind == "diffusers" else ProceduralImageGenerator(home)


def with_generated_images(
    examples: Sequence[TrainingExample], generator: DiffusersImageGenerator, seed: int
) -> list[TrainingExample]:
    """The examples with images made from their payload's ``description`` by ``generator`` instead of the renderer.

    The payload records the new file (path, SHA-256, perceptual key, ``generator``) and the
    question's tag names the new image, so overlap and duplicate filters compare the image the
    student will see. The answer stays the one the description implies (``verify`` re-derives it).
    """
    made = generator.generate([example.payload["description"] for example in examples], seed=seed)
    updated = []
    for example, picture in zip(examples, made, strict=True):
        payload = {
            **example.payload, "image": picture.image, "sha256": picture.sha256, "image_key": picture.image_key,
            "generator": generator.name, "model": generator.settings.model,
        }
        _, question = images.split_tag(example.question)
        tagged = images.question_tag(picture.image_key or f"sha256:{picture.sha256}") + question
        updated.append(example.model_copy(update={"payload": payload, "question": tagged}))
    return updated


def inspect_images(problems: Sequence[Problem], home: Path) -> dict[str, ImageCheck]:
    """For each problem with an image: whether its file (made under the home first if it has a source) can teach,
    and its perceptual hash. A missing or unreadable file is ``undecodable_image``, with the error as detail."""
    store = images.ImageStore(home)
    checks = {}
    for problem in problems:
        if not problem.payload.get("image"):
            continue
        try:
            data = store.path(problem.payload).read_bytes()
        except (images.ImageError, OSError) as error:
            checks[problem.example_id] = ImageCheck(rejection="undecodable_image", detail=str(error))
            continue
        rejection = images.image_rejection(data)
        key = None if rejection == "undecodable_image" else images.perceptual_key(images.decode(data, problem.example_id))
        checks[problem.example_id] = ImageCheck(rejection=rejection, key=key)
    return checks


def with_image_files(problems: Sequence[Problem], texts: Sequence[StudentText], home: Path) -> list[StudentText]:
    """Each text's images as files the student can open: the payload's image made under the home if missing."""
    store = images.ImageStore(home)
    resolved = []
    for problem, text in zip(problems, texts, strict=True):
        files = tuple(
            str(store.path(problem.payload)) if image == problem.payload.get("image") else str(home / image)
            for image in text.images
        )
        resolved.append(text.model_copy(update={"images": files}))
    return resolved
