"""Image generators: turn a teacher's image descriptions into image files under the home, named by content hash.

* :class:`ProceduralImageGenerator` (offline, exact by construction): descriptions in the scene
  grammar of the vqa brief, rendered with Pillow.
* :class:`DiffusersImageGenerator` (the ``vqa-gpu`` extra): any description, through a
  ``diffusers`` text-to-image pipeline; by default SDXL-Turbo with 4 steps and guidance 0.

Both return :class:`GeneratedImage` records (path relative to the home, SHA-256, perceptual key)
or the reason an image was rejected (``undecodable``, ``blank``); tables keep the records, never
pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dataenvgym_dagster.domain.vqa import images
from dataenvgym_dagster.domain.vqa.scenes import SceneFormatError, parse_scene, render


@dataclass(frozen=True)
class GeneratedImage:
    description: str
    image: str | None  # relative to the home; None when rejected
    sha256: str | None
    image_key: str | None
    rejection: str | None = None


def _store(home: Path, description: str, data: bytes) -> GeneratedImage:
    rejection = images.image_rejection(data)
    if rejection:
        return GeneratedImage(description, None, None, None, rejection)
    digest = images.sha256(data)
    relative = images.relative_path(digest)
    path = home / relative
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".partial").write_bytes(data)
        path.with_suffix(".partial").replace(path)
    return GeneratedImage(description, relative, digest, images.perceptual_key(images.decode(data, relative)))


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
    """A ``diffusers`` text-to-image pipeline (default SDXL-Turbo: 4 steps, guidance 0, 512 × 512) on a GPU.

    Needs the ``vqa-gpu`` extra (``pip install -e '.[vqa-gpu]'``) and the model in the Hugging
    Face cache or at a local path. Each description gets a generator seeded from ``seed`` and its
    position, so a batch is reproducible.
    """

    name = "diffusers"

    def __init__(self, home: Path, model: str = "stabilityai/sdxl-turbo", steps: int = 4, guidance: float = 0.0,
                 size: int = 512, device: str = "cuda", batch_size: int = 8) -> None:
        self.home, self.model, self.steps, self.guidance = Path(home), model, steps, guidance
        self.size, self.device, self.batch_size = size, device, batch_size
        self._pipeline = None

    def _load(self):
        if self._pipeline is None:
            try:
                import torch
                from diffusers import AutoPipelineForText2Image
            except ImportError as error:
                raise ImportError("the diffusers image generator needs the vqa-gpu extra: pip install -e '.[vqa-gpu]'") from error
            dtype = torch.float16 if self.device == "cuda" else torch.float32
            self._pipeline = AutoPipelineForText2Image.from_pretrained(self.model, torch_dtype=dtype).to(self.device)
        return self._pipeline

    def generate(self, descriptions: Sequence[str], seed: int = 0) -> list[GeneratedImage]:
        import torch

        pipeline = self._load()
        generated = []
        for start in range(0, len(descriptions), self.batch_size):
            batch = list(descriptions[start : start + self.batch_size])
            generators = [torch.Generator(device=self.device).manual_seed(seed * 100_003 + start + i) for i in range(len(batch))]
            pictures = pipeline(
                prompt=batch, num_inference_steps=self.steps, guidance_scale=self.guidance,
                height=self.size, width=self.size, generator=generators,
            ).images
            generated += [_store(self.home, description, images.png_bytes(picture)) for description, picture in zip(batch, pictures, strict=True)]
        return generated
