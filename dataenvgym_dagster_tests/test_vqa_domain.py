"""The vqa domain: procedural scenes with exact answers, images by content hash, filters and scoring."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from dataenvgym_dagster.domain.protocol import BenchmarkSpec
from dataenvgym_dagster.domain.quality import check_examples
from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.types import Problem, TrainingExample
from dataenvgym_dagster.domain.vqa import images
from dataenvgym_dagster.domain.vqa.domain import PREFIX, VqaSpec
from dataenvgym_dagster.domain.vqa.scenes import SceneFormatError

VQA = get_domain("vqa")


def _example(draft, skill="colour/lone_shape", index=0) -> TrainingExample:
    fields = draft.model_dump(include={"question", "answer", "payload"})
    return TrainingExample(example_id=f"g/{index}", skill=skill, plan_entry_id="e", **fields)


def test_procedural_splits_cover_every_skill_disjointly_and_deterministically():
    spec = BenchmarkSpec(validation_per_skill=5, test_per_skill=5, seed=3)
    first, again = VQA.sources["procedural"].load(spec), VQA.sources["procedural"].load(spec)
    assert [p.payload["sha256"] for p in first["test"]] == [p.payload["sha256"] for p in again["test"]]
    for split in ("validation", "test"):
        assert {p.skill for p in first[split]} == set(VQA.taxonomy.skills)
    assert not {p.question for p in first["validation"]} & {p.question for p in first["test"]}
    assert all(VQA.verify(first["validation"] + first["test"]))


def test_the_answer_is_exact_by_construction_and_a_wrong_one_or_a_swapped_image_fails_verification():
    draft = VQA.sample("count/by_colour", random.Random(1))
    good = _example(draft, "count/by_colour")
    wrong = good.model_copy(update={"answer": str(int(good.answer) + 1)})
    other = VQA.sample("count/by_colour", random.Random(2))
    swapped = good.model_copy(update={"payload": {**good.payload, "sha256": other.payload["sha256"]}})
    assert VQA.verify([good, wrong, swapped]) == [True, False, False]


def test_a_teacher_spec_is_rendered_from_its_description_and_a_description_outside_the_grammar_is_refused():
    spec = VqaSpec(
        instruction="Is the red shape left or right of the blue shape?",
        image_description="a large red circle at top left; a small blue square at bottom right",
        answer="left",
    )
    draft = VQA.draft(spec)
    assert draft.payload["description"] == spec.image_description
    assert VQA.verify([_example(draft, "spatial/left_right")]) == [True]
    assert VQA.student_text(_example(draft)).prompt == PREFIX + spec.instruction
    with pytest.raises(SceneFormatError, match="'a huge red circle at top left'"):
        VQA.draft(spec.model_copy(update={"image_description": "a huge red circle at top left"}))


def test_images_are_written_under_the_home_by_content_hash_on_first_use(tmp_path):
    draft = VQA.sample("colour/lone_shape", random.Random(0))
    store = images.ImageStore(tmp_path)
    path = store.path(draft.payload)
    assert path == tmp_path / draft.payload["image"]
    assert path.name == f"{images.sha256(path.read_bytes())}.png"
    tampered = {**draft.payload, "image": "images/xx/other.png", "jitter_seed": draft.payload["jitter_seed"] + 1}
    with pytest.raises(images.ImageError, match="not the recorded"):
        store.path(tampered)


def test_generated_images_that_repeat_a_benchmark_image_or_each_other_are_filtered_with_a_reason():
    benchmark = VQA.sources["procedural"].load(BenchmarkSpec(validation_per_skill=2, test_per_skill=2))
    lone = benchmark["test"][0]  # colour/lone_shape: another question about the same image
    tag, _ = images.split_tag(lone.question)
    on_benchmark_image = lone.model_copy(update={"question": images.question_tag(tag) + "How many shapes are there?", "answer": "1"})
    fresh = VQA.sample("colour/lone_shape", random.Random(99))
    examples = [
        _example(on_benchmark_image, "count/all_shapes", 0),
        _example(fresh, index=1),
        _example(fresh, index=2),
    ]
    verdicts = check_examples(
        VQA, examples, planned_skills=VQA.taxonomy.skills,
        benchmark_questions=[p.question for split in benchmark.values() for p in split],
        test_questions=[p.question for p in benchmark["test"]],
    )
    assert [v.reason for v in verdicts] == ["benchmark_overlap", None, "duplicate"]


def test_a_resized_re_encoded_copy_of_an_image_has_the_same_perceptual_key():
    for seed in range(5):
        draft = VQA.sample("count/all_shapes", random.Random(seed))
        buffer = io.BytesIO()
        _render(draft).resize((128, 128), Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=95, subsampling=0)
        assert images.perceptual_key(Image.open(buffer)) == draft.payload["image_key"]


def _render(draft):
    from dataenvgym_dagster.domain.vqa.scenes import parse_scene, render

    return render(parse_scene(draft.payload["description"], draft.payload["jitter_seed"]))


def test_blank_and_undecodable_images_are_rejected_with_a_reason():
    assert images.image_rejection(images.png_bytes(Image.new("RGB", (64, 64), (0, 0, 0)))) == "blank_image"
    assert images.image_rejection(b"not an image") == "undecodable_image"
    assert images.image_rejection(images.png_bytes(_render(VQA.sample("colour/lone_shape", random.Random(0))))) is None


def test_scoring_is_exact_match_after_normalising_case_articles_punctuation_and_number_words():
    problem = Problem(example_id="x", skill="count/all_shapes", question="[image 0] How many?", answer="2", payload={})
    scores = VQA.score([problem] * 4, ["2", "Two.", "the 2", "3"])
    assert [s.correct for s in scores] == [True, True, True, False]
    assert scores[3].verdict == "wrong answer"


def test_the_procedural_image_generator_stores_images_by_hash_and_rejects_what_it_cannot_draw(tmp_path):
    from dataenvgym_dagster.machinery.images import ProceduralImageGenerator

    made = ProceduralImageGenerator(tmp_path).generate(["a small green square at middle centre", "a cat on a mat"], seed=1)
    assert made[0].rejection is None and (tmp_path / made[0].image).name == f"{made[0].sha256}.png"
    assert made[1].rejection == "unparseable" and made[1].image is None
