"""NaturalBench from local Parquet files, and its question, image and group accuracy.

Each row (as ``BaiqiL/NaturalBench`` publishes it) holds two images, two questions and four
answers: ``Index``, ``Image_0``, ``Image_1`` (structs of encoded ``bytes`` and ``path``),
``Question_0``, ``Question_1``, ``Image_0_Question_0``, ``Image_1_Question_0``,
``Image_0_Question_1``, ``Image_1_Question_1`` and ``Question Type`` (the current revision's
spelling; older revisions write ``Question_Type``: both are read) holding ``yes_no`` or
``multiple_choice`` (the options are in the question text and the answer is their letter).

``benchmark.path`` is one Parquet file, or a folder of shards as the dataset is published today
(``data/train-00000-of-00003.parquet`` … ``-00002-of-00003``; the folder may be the dataset's own,
holding ``data/``, or ``data/`` itself): the shards are read in name order as one benchmark. A
shard set with a shard missing (or a single shard of several) loads with an
:class:`IncompleteShardsWarning` naming the missing shards.

A row becomes four (image, question) problems. Rows are split, not instances, so a group never
straddles validation and test: the first ``options.validation_rows`` rows (default 10 %, at
least one) in shard and file order are validation, the rest test. Each problem's payload names
its shard (``parquet``) and its row there (``row``).
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec
from dataenvgym_dagster.domain.types import Problem, Score
from dataenvgym_dagster.domain.vqa import images

ANSWER_COLUMNS = {  # (image, question) -> column of the answer
    (0, 0): "Image_0_Question_0", (1, 0): "Image_1_Question_0",
    (0, 1): "Image_0_Question_1", (1, 1): "Image_1_Question_1",
}
COLUMNS = ("Index", "Image_0", "Image_1", "Question_0", "Question_1", *ANSWER_COLUMNS.values(), "Question_Type")
QUESTION_TYPE_SPELLINGS = ("Question Type", "Question_Type")  # the current revision's, then the older one
QUESTION_TYPES = ("yes_no", "multiple_choice")
_SHARD = re.compile(r"(?P<split>.+)-(?P<index>\d+)-of-(?P<count>\d+)\.parquet")
_OPTION = re.compile(r"\b([A-D])\s*[:.)]\s*(.*?)(?=;|\s+\b[A-D]\s*[:.)]|$)")


class IncompleteShardsWarning(UserWarning):
    """A NaturalBench shard set with shards missing: the benchmark loads, but only in part."""


def _read(file: Path):
    if not file.exists():
        raise BenchmarkFormatError(
            f"NaturalBench file {file} does not exist; download BaiqiL/NaturalBench's Parquet shards and set benchmark.path to their folder"
        )
    return _read_version(file.absolute(), file.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)  # images are extracted one cell at a time: read each shard once, not once per image
def _read_version(file: Path, modified_ns: int):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(file)
    except (OSError, ValueError, pa.ArrowException) as error:  # what pyarrow raises for a file that is not Parquet
        raise BenchmarkFormatError(f"NaturalBench file {file} is not a readable Parquet file ({error})") from None
    spelling = next((name for name in QUESTION_TYPE_SPELLINGS if name in table.column_names), None)
    if spelling is not None:
        table = table.rename_columns(["Question_Type" if name == spelling else name for name in table.column_names])
    missing = [column for column in COLUMNS if column not in table.column_names]
    if missing:
        missing = ["Question Type (or Question_Type)" if name == "Question_Type" else name for name in missing]
        raise BenchmarkFormatError(f"NaturalBench file {file} lacks columns {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    return table


def shard_files(path: Path) -> list[Path]:
    """The Parquet files ``benchmark.path`` names, in name order: the file itself, or a folder's shards
    (in the folder or in its ``data/``). Warns (:class:`IncompleteShardsWarning`) when a shard set
    ``<split>-<i>-of-<n>.parquet`` lacks some of its ``n`` shards."""
    if path.is_dir():
        files = sorted(path.glob("*.parquet")) or sorted((path / "data").glob("*.parquet"))
        if not files:
            raise BenchmarkFormatError(
                f"NaturalBench folder {path} holds no Parquet files (nor does {path / 'data'}); "
                "download BaiqiL/NaturalBench's data/train-0000i-of-0000n.parquet shards there"
            )
    else:
        files = [path]
    sets: dict[tuple[str, int], set[int]] = {}
    for file in files:
        shard = _SHARD.fullmatch(file.name)
        if shard:
            sets.setdefault((shard["split"], int(shard["count"])), set()).add(int(shard["index"]))
    for (split, count), present in sorted(sets.items()):
        width = len(str(count - 1).zfill(5))
        absent = [f"{split}-{index:0{width}d}-of-{count:0{width}d}.parquet" for index in range(count) if index not in present]
        if absent:
            warnings.warn(
                f"NaturalBench at {path} has {len(present)} of the {count} shards of {split!r}; missing {', '.join(absent)}: "
                f"only part of the benchmark loads. Download the missing shards into {files[0].parent} and point "
                "benchmark.path at that folder",
                IncompleteShardsWarning,
                stacklevel=3,
            )
    return files


def image_cell(file: Path, row: int, column: str) -> bytes:
    """The encoded bytes of one image cell (``Image_0`` or ``Image_1``) of a NaturalBench row."""
    cell = _read(file).slice(row, 1).column(column)[0].as_py()
    data = cell.get("bytes") if isinstance(cell, dict) else cell
    if not data:
        raise BenchmarkFormatError(f"NaturalBench file {file}, row {row}: {column} holds no image bytes")
    return data


def options_of(question: str) -> list[str]:
    """The option texts of a multiple-choice question (``... Option: A: red; B: blue``), in letter order."""
    return [text.strip().rstrip(";.") for _, text in _OPTION.findall(question.split("Option", 1)[-1])] or ["", ""]


class NaturalBenchSource:
    name = "naturalbench"
    needs_path = True

    def load(self, spec: BenchmarkSpec) -> dict[str, list[Problem]]:
        path = Path(spec.path or "")
        rows = [(file, number, row) for file in shard_files(path) for number, row in enumerate(_read(file).to_pylist())]
        if len(rows) < 2:
            raise BenchmarkFormatError(f"NaturalBench at {path} has {len(rows)} rows; validation and test need at least 2")
        validation_rows = int(spec.options.get("validation_rows", max(1, len(rows) // 10)))
        if not 0 < validation_rows < len(rows):
            raise BenchmarkFormatError(f"benchmark.options.validation_rows is {validation_rows}; it must be between 1 and {len(rows) - 1} for {path}")
        splits: dict[str, list[Problem]] = {"validation": [], "test": []}
        seen: dict[str, str] = {}
        for position, (file, number, row) in enumerate(rows):
            where = f"NaturalBench file {file}, row {number}"
            if str(row["Index"]) in seen:
                raise BenchmarkFormatError(f"{where} repeats Index {row['Index']!r} of {seen[str(row['Index'])]}; each row's Index is unique")
            seen[str(row["Index"])] = where
            split = "validation" if position < validation_rows else "test"
            splits[split] += row_problems(file, number, row, split)
        return splits


def row_problems(file: Path, number: int, row: dict[str, Any], split: str) -> list[Problem]:
    """The four (image, question) problems of one row, in the order q0_i0, q0_i1, q1_i0, q1_i1."""
    where = f"NaturalBench file {file}, row {number} (Index {row.get('Index')!r})"
    kind = row["Question_Type"]
    if kind not in QUESTION_TYPES:
        raise BenchmarkFormatError(f"{where} has Question_Type {kind!r}; expected one of {', '.join(QUESTION_TYPES)}")
    keys = []
    for side in (0, 1):
        cell = row[f"Image_{side}"]
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        try:
            if not isinstance(data, bytes) or not data:
                raise images.ImageError("no image bytes")
            picture = images.decode(data, f"{where} Image_{side}")
        except images.ImageError as error:
            raise BenchmarkFormatError(f"{where}: Image_{side} is missing or does not decode ({error}); fix or drop the row in the file") from None
        digest = images.sha256(data)
        suffix = ".png" if data[:4] == b"\x89PNG" else ".jpg"
        keys.append((images.perceptual_key(picture), digest, images.relative_path(digest, suffix)))
    problems = []
    for question_index in (0, 1):
        question = row[f"Question_{question_index}"]
        if not isinstance(question, str) or not question.strip():
            raise BenchmarkFormatError(f"{where} has no Question_{question_index}")
        for side in (0, 1):
            answer = row[ANSWER_COLUMNS[(side, question_index)]]
            if not isinstance(answer, str) or not answer.strip():
                raise BenchmarkFormatError(f"{where} has no {ANSWER_COLUMNS[(side, question_index)]}")
            key, digest, path = keys[side]
            payload = {
                "image": path, "sha256": digest, "image_key": key, "parquet": str(file.absolute()), "row": number,
                "column": f"Image_{side}", "answer_type": kind, "group": f"{row['Index']}", "instance": f"q{question_index}_i{side}",
                "source": "naturalbench",
            }
            if kind == "multiple_choice":
                payload["options"] = options_of(question)
            problems.append(
                Problem(
                    example_id=f"naturalbench/{split}/{row['Index']}/q{question_index}_i{side}", skill=f"naturalbench/{kind}",
                    question=images.question_tag(key) + question.strip(), answer=answer.strip(), payload=payload,
                )
            )
    return problems


def group_accuracy(problems: Sequence[Problem], scores: Sequence[Score]) -> dict[str, float]:
    """NaturalBench's accuracies: per instance, per question (both images right), per image (both questions right), per group (all four).

    Groups are the rows' ``group`` payloads; a group without all four instances is an error.
    """
    by_group: dict[str, dict[str, bool]] = {}
    for problem, score in zip(problems, scores, strict=True):
        by_group.setdefault(problem.payload["group"], {})[problem.payload["instance"]] = score.correct
    incomplete = [group for group, results in by_group.items() if len(results) != 4]
    if incomplete:
        raise ValueError(f"NaturalBench groups {incomplete[:5]} do not have all four instances (q0_i0, q0_i1, q1_i0, q1_i1)")
    groups = list(by_group.values())
    questions = [r[f"q{q}_i0"] and r[f"q{q}_i1"] for r in groups for q in (0, 1)]
    pictures = [r[f"q0_i{i}"] and r[f"q1_i{i}"] for r in groups for i in (0, 1)]
    return {
        "accuracy": sum(v for r in groups for v in r.values()) / (4 * len(groups)),
        "question_accuracy": sum(questions) / len(questions),
        "image_accuracy": sum(pictures) / len(pictures),
        "group_accuracy": sum(all(r.values()) for r in groups) / len(groups),
    }
