"""Images of generated vqa examples: the quality filters' image reasons, and the diffusers generator on a tiny random pipeline."""

from __future__ import annotations

import io
import random
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry
from dataenvgym_dagster.domain.quality import REASONS
from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.teachers.offline import OfflineTeacher
from dataenvgym_dagster.domain.teachers.protocol import GenerationResult
from dataenvgym_dagster.domain.types import TrainingExample
from dataenvgym_dagster.domain.vqa import images
from dataenvgym_dagster.experiments import ExperimentSettings
from dataenvgym_dagster.experiments.config import DomainSettings
from dataenvgym_dagster.loop.steps import generated_dataset
from dataenvgym_dagster.machinery.images import DiffusersImageGenerator, ImageGeneratorSettings
from dataenvgym_dagster.machinery.warehouse import TABLES, Warehouse

VQA = get_domain("vqa")
SKILL = "colour/lone_shape"
NO_BENCHMARK = pl.DataFrame(schema=TABLES["benchmark_problems"])


class HandedOver:
    """A teacher that hands over the examples it is given (images already on disk), as a generator's output would be."""

    name = "handed_over"

    def __init__(self, examples: list[TrainingExample]) -> None:
        self.examples = examples

    def generate(self, plan: DataGenerationPlan, seed: int, avoid: frozenset[str] = frozenset()) -> GenerationResult:
        return GenerationResult(requested=len(self.examples), examples=tuple(self.examples))


def _plan(count: int, skill: str = SKILL) -> DataGenerationPlan:
    entry = PlanEntry(entry_id="e0", skill=skill, count=count, rationale="test")
    return DataGenerationPlan(domain="vqa", experiment="x", iteration=1, environment="skill_list", policy="test", entries=(entry,))


def _file(home: Path, data: bytes, suffix: str) -> tuple[str, str]:
    digest = images.sha256(data)
    relative = images.relative_path(digest, suffix)
    (home / relative).parent.mkdir(parents=True, exist_ok=True)
    (home / relative).write_bytes(data)
    return relative, digest


def test_blank_undecodable_and_perceptually_duplicate_images_are_recorded_with_their_reason(tmp_path: Path):
    home = tmp_path / "home"
    rendered = VQA.sample(SKILL, random.Random(0))
    picture = images.ImageStore(home).open(rendered.payload)
    jpeg = io.BytesIO()
    picture.save(jpeg, format="JPEG", quality=90)  # other bytes, the same picture
    files = {
        "blank": _file(home, images.png_bytes(Image.new("RGB", (64, 64), (128, 128, 128))), ".png"),
        "undecodable": _file(home, b"\x89PNG\r\n\x1a\n but the rest is not an image", ".png"),
        "re-encoded": _file(home, jpeg.getvalue(), ".jpg"),
    }
    _, text = images.split_tag(rendered.question)
    examples = [TrainingExample(example_id="e0/0", skill=SKILL, plan_entry_id="e0", **rendered.model_dump())]
    for index, (name, (relative, digest)) in enumerate(files.items(), start=1):
        # Images made from the same description by another generator: the answer is the description's.
        payload = {**rendered.payload, "image": relative, "sha256": digest, "generator": "diffusers", "image_key": name}
        examples.append(TrainingExample(
            example_id=f"e0/{index}", skill=SKILL, plan_entry_id="e0", question=images.question_tag(name) + text,
            answer=rendered.answer, payload=payload,
        ))
    frame, _ = generated_dataset(
        VQA, HandedOver(examples), _plan(4), ExperimentSettings(), benchmark=NO_BENCHMARK, earlier_generated=[], home=home
    )
    assert frame["rejection_reason"].to_list() == [None, "blank_image", "undecodable_image", "duplicate_image"]
    assert frame["passed_quality_checks"].to_list() == [True, False, False, False]
    assert all(reason in REASONS for reason in frame["rejection_reason"].drop_nulls())

    warehouse = Warehouse(home)
    warehouse.write("generated_examples", ["vqa", "x", "iteration_1"], frame)
    with warehouse.connect() as connection:
        counts = connection.sql(
            "SELECT produced, kept, blank_image, undecodable_image, duplicate_image, duplicate FROM quality_filter_counts"
        ).fetchall()
    assert counts == [(4, 1, 1, 1, 1, 0)]


# -- the diffusers generator on a tiny random pipeline ---------------------------------------------
@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers")  # the vqa-gpu extra; the test extra installs it
    from .tiny_pipelines import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("hub") / "tiny-sd")


def _settings(folder: Path) -> ImageGeneratorSettings:
    return ImageGeneratorSettings(kind="diffusers", model=str(folder), steps=2, guidance=0.0, size=64, device="cpu", batch_size=2)


def test_the_diffusers_generator_loads_a_saved_pipeline_and_writes_images_named_by_content_hash(tmp_path, pipeline_folder):
    generator = DiffusersImageGenerator(tmp_path, _settings(pipeline_folder))
    descriptions = ["a large red circle at top left", "a small blue square at middle right"]
    made = generator.generate(descriptions, seed=3)
    assert [m.description for m in made] == descriptions
    for record in made:
        data = (tmp_path / record.image).read_bytes()
        assert record.image == f"images/{record.sha256[:2]}/{record.sha256}.png" and images.sha256(data) == record.sha256
        assert Image.open(io.BytesIO(data)).size == (64, 64)
        assert record.image_key == images.perceptual_key(images.decode(data, record.image))
        assert record.rejection in (None, "blank_image")
    assert made[0].sha256 != made[1].sha256
    assert [m.sha256 for m in DiffusersImageGenerator(tmp_path, _settings(pipeline_folder)).generate(descriptions, seed=3)] == [
        m.sha256 for m in made
    ], "the same seed makes the same images"


def test_the_catalogue_s_diffusers_generator_makes_the_images_of_the_generated_dataset(tmp_path, pipeline_folder):
    settings = DomainSettings.model_validate({"image_generator": _settings(pipeline_folder).model_dump()}).image_generator
    home = tmp_path / "home"
    frame, result = generated_dataset(
        VQA, OfflineTeacher(VQA), _plan(3, "count/all_shapes"), ExperimentSettings(), benchmark=NO_BENCHMARK,
        earlier_generated=[], home=home, image_generator=settings,
    )
    assert frame.height == 3 == result.produced
    for row in frame.iter_rows(named=True):
        payload = pl.Series([row["payload"]]).str.json_decode()[0]
        assert payload["generator"] == "diffusers" and payload["model"] == str(pipeline_folder)
        assert (home / payload["image"]).is_file() and images.split_tag(row["question"])[0] == payload["image_key"]
        # Kept, or rejected with a reason; the answer is the description's, so never wrong_answer.
        assert row["passed_quality_checks"] == (row["rejection_reason"] is None)
        assert row["rejection_reason"] in (None, "blank_image", "duplicate_image")
