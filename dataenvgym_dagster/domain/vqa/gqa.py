"""GQA from local files: the balanced questions JSON files and the images folder.

Layout of ``benchmark.path`` (as GQA publishes it; file names can be changed in ``options``)::

    <path>/val_balanced_questions.json       {question id: {"question", "answer", "fullAnswer", "imageId",
    <path>/testdev_balanced_questions.json      "types": {"structural", "semantic", "detailed"}, ...}, ...}
    <path>/images/<imageId>.jpg

Validation is a seeded sample of ``validation_per_skill`` questions per ``types.detailed`` from
the validation file (the seed is ``benchmark.seed``, recorded in the catalogue and in each
problem's payload); test is every question of ``testdev_balanced`` (or a seeded sample per type
with ``test_per_skill``). Gold skills are ``<types.semantic>/<types.detailed>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dataenvgym_dagster.domain.benchmark import read_utf8, stratified_sample
from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec
from dataenvgym_dagster.domain.types import Problem
from dataenvgym_dagster.domain.vqa import images

DEFAULT_FILES = {"validation": "val_balanced_questions.json", "test": "testdev_balanced_questions.json"}
REQUIRED = ("question", "answer", "imageId", "types")
TYPES = ("structural", "semantic", "detailed")


class GqaSource:
    name = "gqa"
    needs_path = True

    def load(self, spec: BenchmarkSpec) -> dict[str, list[Problem]]:
        root = Path(spec.path or "")
        image_dir = root / spec.options.get("images", "images")
        if not image_dir.is_dir():
            raise BenchmarkFormatError(f"GQA images folder {image_dir} does not exist; set benchmark.options.images or unpack images.zip there")
        keys: dict[str, str] = {}
        splits = {}
        for split, default in DEFAULT_FILES.items():
            file = root / spec.options.get(f"{split}_file", default)
            problems = read_questions(file, split, image_dir, spec.seed)
            per_type = spec.validation_per_skill if split == "validation" else spec.test_per_skill
            if per_type is not None:
                problems = stratified_sample(problems, per_type, spec.seed, cell=lambda p: p.payload["types"]["detailed"])
            splits[split] = [_tagged(problem, keys) for problem in problems]
        return splits


def read_questions(file: Path, split: str, image_dir: Path, seed: int) -> list[Problem]:
    """Every question of a GQA balanced questions file as a problem; errors name the file, the question and the fix."""
    if not file.exists():
        raise BenchmarkFormatError(f"GQA questions file {file} does not exist; download GQA's balanced questions or set benchmark.options.{split}_file")
    try:
        entries = json.loads(read_utf8(file, "GQA questions file"))
    except json.JSONDecodeError as error:
        raise BenchmarkFormatError(f"GQA questions file {file} is not JSON ({error})") from None
    if not isinstance(entries, dict):
        raise BenchmarkFormatError(f"GQA questions file {file} must be a JSON object of question id -> question, not a {type(entries).__name__}")
    problems = []
    for question_id, entry in entries.items():
        where = f"GQA questions file {file}, question {question_id!r}"
        if not isinstance(entry, dict):
            raise BenchmarkFormatError(f"{where} is a {type(entry).__name__}, not an object")
        missing = [field for field in REQUIRED if field not in entry]
        if missing:
            raise BenchmarkFormatError(f"{where} lacks {', '.join(missing)}; each question needs {', '.join(REQUIRED)}")
        types = entry["types"]
        if not isinstance(types, dict) or any(not isinstance(types.get(t), str) for t in TYPES):
            raise BenchmarkFormatError(f"{where} has types {types!r}; expected an object with {', '.join(TYPES)}")
        image = image_dir / f"{entry['imageId']}.jpg"
        if not image.exists():
            raise BenchmarkFormatError(f"{where} refers to image {image}, which does not exist; unpack GQA's images there")
        payload: dict[str, Any] = {
            "image": str(image.absolute()), "image_id": entry["imageId"], "types": {t: types[t] for t in TYPES},
            "full_answer": entry.get("fullAnswer", ""), "source": "gqa", "file": file.name, "sample_seed": seed,
        }
        problems.append(
            Problem(
                example_id=f"gqa/{split}/{question_id}", skill=f"{types['semantic']}/{types['detailed']}",
                question=entry["question"], answer=str(entry["answer"]), payload=payload,
            )
        )
    return problems


def _tagged(problem: Problem, keys: dict[str, str]) -> Problem:
    """The problem with its question tagged by its image's perceptual key and its image's SHA-256 recorded."""
    path = problem.payload["image"]
    if path not in keys:
        data = Path(path).read_bytes()
        try:
            picture = images.decode(data, path)
        except images.ImageError as error:
            question_id = problem.example_id.rsplit("/", 1)[-1]
            raise BenchmarkFormatError(
                f"GQA questions file {problem.payload['file']}, question {question_id!r}: image {path} does not decode ({error}); "
                "take the image again from GQA's images.zip"
            ) from None
        keys[path] = images.perceptual_key(picture) + ":" + images.sha256(data)
    key, digest = keys[path].split(":")
    return problem.model_copy(
        update={"question": images.question_tag(key) + problem.question, "payload": {**problem.payload, "sha256": digest, "image_key": key}}
    )
