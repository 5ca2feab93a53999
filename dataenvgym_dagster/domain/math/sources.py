"""Loaders of the MATH benchmark in the three layouts its users have.

* ``math_original``: the original release, ``MATH/{train,test}/<subject>/<n>.json``, each file one
  JSON object with ``problem``, ``level`` (``"Level 1"`` … ``"Level 5"``), ``type`` and ``solution``.
  ``benchmark.path`` is the folder holding ``train/`` and ``test/``. Example ids:
  ``test/algebra/1234``.
* ``math_parquet``: MATH as Parquet, with the same four columns, in any of the layouts the hub
  has: the per-subject mirror (EleutherAI/hendrycks_math) ``<subject>/<split>-00000-of-00001.parquet``;
  the converted ``lighteval/MATH`` that the DataEnvGym reference loaded,
  ``<config>/<split>/0000.parquet`` (``<config>`` a subject or ``all``; where ``all`` is present
  only it is read, as the subject folders repeat its rows); and a single ``data/<split>-*.parquet``
  folder (or ``<split>-*.parquet`` in ``benchmark.path`` itself). Files are read in name order.
  Example ids: ``test/algebra/00042``: the subject (from the row's ``type``) and the row's
  position among that subject's rows of the split.
* ``math500``: MATH-500's ``test.jsonl`` (``problem``, ``solution``, ``answer``, ``subject``,
  ``level`` as an integer 1–5, ``unique_id``); ``benchmark.path`` is the file or its folder.
  Example ids are the ``unique_id`` (``test/precalculus/807.json``). MATH-500 has no train split,
  so its validation split comes from ``benchmark.options.train_path``: a folder in the original
  or the Parquet layout, whose train files are read.

Splits follow the DataEnvGym paper: validation is drawn from the **train** files, stratified by
type × level (``validation_per_skill`` per cell, seeded); test is every test problem
(``test_per_skill: null``) or a stratified sample of ``test_per_skill`` per cell.

Gold skills are ``<type>/level_<n>`` (``algebra/level_3``) under the seven types. The real data
has problems whose level is ``"Level ?"``: they are kept, with skill ``<type>/level_unknown``
(so no problem is dropped, and the gold skill discoverer adds the skill to the taxonomy).
Reference answers are the final ``\\boxed{…}`` / ``\\fbox{…}`` (boxes joined by "and", "or" or a comma together) of the solution (MATH-500: its
``answer`` field). Any missing file, field or answer raises :class:`BenchmarkFormatError`
naming the file, the row and the expected layout; nothing is skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dataenvgym_dagster.domain.benchmark import read_utf8, stratified_sample
from dataenvgym_dagster.domain.math.answers import boxed_answer
from dataenvgym_dagster.domain.math.generators import TYPES
from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec
from dataenvgym_dagster.domain.types import Problem

CATEGORY_OF_TYPE = {name: category for category, name in TYPES.items()}
FIELDS = ("problem", "level", "type", "solution")
MATH500_FIELDS = ("problem", "solution", "answer", "subject", "level", "unique_id")
UNKNOWN_LEVEL = "level_unknown"

ORIGINAL_LAYOUT = (
    "the original MATH release: <path>/{train,test}/<subject>/<n>.json, each a JSON object with string fields "
    "problem, level ('Level 1'..'Level 5'), type (e.g. 'Algebra') and solution (ending in \\boxed{answer})"
)
PARQUET_LAYOUT = (
    "MATH as Parquet with string columns problem, level, type, solution, in one of the hub's layouts: "
    "<path>/<subject>/{train,test}-00000-of-00001.parquet (EleutherAI/hendrycks_math), "
    "<path>/<subject or all>/{train,test}/0000.parquet (lighteval/MATH converted) or <path>/data/{train,test}-*.parquet"
)
MATH500_LAYOUT = (
    "MATH-500's test.jsonl (<path> is the file or its folder): one JSON object per line with problem, solution, "
    "answer, subject (e.g. 'Algebra'), level (an integer 1-5) and unique_id (e.g. 'test/algebra/1234.json')"
)


def skill_of(type_name: Any, level: Any, where: str, layout: str) -> str:
    """``<category>/level_<n>`` for a MATH ``type`` and ``level`` (``"Level 3"`` or ``3``)."""
    category = CATEGORY_OF_TYPE.get(type_name) if isinstance(type_name, str) else None
    if category is None:
        raise BenchmarkFormatError(
            f"{where}: type {type_name!r} is not a MATH type (one of {', '.join(CATEGORY_OF_TYPE)}); expected {layout}"
        )
    if isinstance(level, bool):
        level = None
    if isinstance(level, int) and 1 <= level <= 5:
        return f"{category}/level_{level}"
    if isinstance(level, str):
        match = re.fullmatch(r"Level ([1-5?])", level.strip())
        if match:
            return f"{category}/{UNKNOWN_LEVEL}" if match.group(1) == "?" else f"{category}/level_{match.group(1)}"
    raise BenchmarkFormatError(f"{where}: level {level!r} is not 'Level 1'..'Level 5' (or 'Level ?'); expected {layout}")


def _text_fields(row: Any, fields: tuple[str, ...], where: str, layout: str, strings: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise BenchmarkFormatError(f"{where}: expected a JSON object, got {type(row).__name__}; expected {layout}")
    missing = [field for field in fields if field not in row or row[field] is None]
    if missing:
        raise BenchmarkFormatError(f"{where}: missing field(s) {', '.join(missing)}; expected {layout}")
    for field in strings:
        if not isinstance(row[field], str) or not row[field].strip():
            raise BenchmarkFormatError(f"{where}: field {field!r} must be a non-empty string, got {row[field]!r}; expected {layout}")
    return row


def math_problem(row: Any, example_id: str, where: str, layout: str, source: str) -> Problem:
    """One row of the original release or the Parquet mirror as a problem (answer: the solution's final boxed answer)."""
    row = _text_fields(row, FIELDS, where, layout, strings=("problem", "type", "solution"))
    skill = skill_of(row["type"], row["level"], where, layout)
    answer = boxed_answer(row["solution"])
    if not answer:
        raise BenchmarkFormatError(f"{where}: the solution has no \\boxed{{…}} answer to score against; expected {layout}")
    payload = {"solution": row["solution"], "level": row["level"], "type": row["type"], "source": source}
    return Problem(example_id=example_id, skill=skill, question=row["problem"], answer=answer, payload=payload)


def _require_folder(path: Path, layout: str) -> None:
    if not path.is_dir():
        raise BenchmarkFormatError(f"{path} is not a folder ({'missing' if not path.exists() else 'a file'}); expected {layout}")


def read_original(root: Path, split: str) -> list[Problem]:
    """Every problem of one split of the original release, in id order."""
    _require_folder(root, ORIGINAL_LAYOUT)
    folder = root / split
    files = sorted(folder.glob("*/*.json")) if folder.is_dir() else []
    if not files:
        raise BenchmarkFormatError(f"{folder} holds no <subject>/<n>.json files; expected {ORIGINAL_LAYOUT}")
    problems = []
    for file in files:
        try:
            row = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise BenchmarkFormatError(f"{file} is not valid JSON ({error}); expected {ORIGINAL_LAYOUT}") from None
        example_id = f"{split}/{file.parent.name}/{file.stem}"
        problems.append(math_problem(row, example_id, str(file), ORIGINAL_LAYOUT, "math_original"))
    return problems


def parquet_files(root: Path, split: str) -> list[Path]:
    """The Parquet files of one split under ``root`` in any of :data:`PARQUET_LAYOUT`'s layouts, in name order."""
    converted = sorted(root.glob(f"*/{split}/*.parquet"))
    if any(file.parent.parent.name == "all" for file in converted):
        converted = [file for file in converted if file.parent.parent.name == "all"]
    return sorted(root.glob(f"{split}-*.parquet")) + sorted(root.glob(f"*/{split}-*.parquet")) + converted


def read_parquet(root: Path, split: str) -> list[Problem]:
    """Every problem of one split of MATH as Parquet (see :data:`PARQUET_LAYOUT`), file by file."""
    import pyarrow.parquet as pq

    _require_folder(root, PARQUET_LAYOUT)
    files = parquet_files(root, split)
    if not files:
        raise BenchmarkFormatError(f"{root} holds no Parquet files of the {split} split; expected {PARQUET_LAYOUT}")
    problems = []
    rows_seen: dict[str, int] = {}
    for file in files:
        try:
            table = pq.read_table(file)
        except Exception as error:  # noqa: BLE001 -- pyarrow raises several types for a damaged file
            raise BenchmarkFormatError(f"{file} is not a readable Parquet file ({error}); expected {PARQUET_LAYOUT}") from None
        missing = [column for column in FIELDS if column not in table.column_names]
        if missing:
            raise BenchmarkFormatError(
                f"{file} lacks column(s) {', '.join(missing)} (has {', '.join(table.column_names)}); expected {PARQUET_LAYOUT}"
            )
        for row_number, row in enumerate(table.select(list(FIELDS)).to_pylist()):
            where = f"{file} row {row_number}"
            problem = math_problem(row, "", where, PARQUET_LAYOUT, "math_parquet")
            subject = problem.skill.split("/", 1)[0]  # from the row's type: the same in every layout
            index = rows_seen.get(subject, 0)
            rows_seen[subject] = index + 1
            problems.append(problem.model_copy(update={"example_id": f"{split}/{subject}/{index:05d}"}))
    return problems


def read_math500(path: Path) -> list[Problem]:
    """Every problem of MATH-500's ``test.jsonl``, in file order, with ``unique_id`` as example id."""
    file = path / "test.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise BenchmarkFormatError(f"{file} does not exist; expected {MATH500_LAYOUT}")
    problems = []
    lines_of: dict[str, int] = {}
    for number, line in enumerate(_lines(file), start=1):
        where = f"{file} line {number}"
        if not line.strip():
            raise BenchmarkFormatError(f"{where} is empty; expected {MATH500_LAYOUT}")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise BenchmarkFormatError(f"{where} is not valid JSON ({error}); expected {MATH500_LAYOUT}") from None
        row = _text_fields(row, MATH500_FIELDS, where, MATH500_LAYOUT, strings=("problem", "solution", "answer", "subject", "unique_id"))
        if isinstance(row["level"], bool) or not isinstance(row["level"], int):
            raise BenchmarkFormatError(f"{where}: level {row['level']!r} must be an integer 1-5; expected {MATH500_LAYOUT}")
        if row["unique_id"] in lines_of:
            raise BenchmarkFormatError(
                f"{where}: unique_id {row['unique_id']!r} already names line {lines_of[row['unique_id']]}; "
                "each MATH-500 problem has its own unique_id: remove the repeated line or take test.jsonl again"
            )
        lines_of[row["unique_id"]] = number
        skill = skill_of(row["subject"], row["level"], where, MATH500_LAYOUT)
        payload = {"solution": row["solution"], "level": row["level"], "type": row["subject"], "source": "math500"}
        problems.append(
            Problem(example_id=row["unique_id"], skill=skill, question=row["problem"], answer=row["answer"].strip(), payload=payload)
        )
    if not problems:
        raise BenchmarkFormatError(f"{file} has no rows; expected {MATH500_LAYOUT}")
    return problems


def _lines(file: Path) -> Iterator[str]:
    text = read_utf8(file, "MATH file")
    yield from text.rstrip("\n").split("\n") if text.strip() else ()


def _resolve(path: str | None, source: str, layout: str) -> Path:
    if not path:
        raise BenchmarkFormatError(f"benchmark source {source!r} reads files: set benchmark.path to {layout}")
    return Path(path).expanduser()


def _splits(train: list[Problem], test: list[Problem], spec: BenchmarkSpec) -> dict[str, list[Problem]]:
    validation = stratified_sample(train, spec.validation_per_skill, spec.seed)
    if spec.test_per_skill is not None:
        test = stratified_sample(test, spec.test_per_skill, spec.seed)
    return {"validation": validation, "test": test}


class MathOriginalSource:
    """The original MATH release (JSON file per problem)."""

    name = "math_original"
    needs_path = True

    def load(self, spec: BenchmarkSpec) -> dict[str, list[Problem]]:
        root = _resolve(spec.path, self.name, ORIGINAL_LAYOUT)
        return _splits(read_original(root, "train"), read_original(root, "test"), spec)


class MathParquetSource:
    """The per-subject Parquet mirror of MATH."""

    name = "math_parquet"
    needs_path = True

    def load(self, spec: BenchmarkSpec) -> dict[str, list[Problem]]:
        root = _resolve(spec.path, self.name, PARQUET_LAYOUT)
        return _splits(read_parquet(root, "train"), read_parquet(root, "test"), spec)


class Math500Source:
    """MATH-500 as the test split; validation from MATH's train files at ``options.train_path``."""

    name = "math500"
    needs_path = True

    def load(self, spec: BenchmarkSpec) -> dict[str, list[Problem]]:
        test = read_math500(_resolve(spec.path, self.name, MATH500_LAYOUT))
        train_path = spec.options.get("train_path")
        if not train_path:
            raise BenchmarkFormatError(
                "benchmark source 'math500' has no train split for validation: set benchmark.options.train_path to a "
                f"folder in {ORIGINAL_LAYOUT}, or in {PARQUET_LAYOUT}"
            )
        root = Path(str(train_path)).expanduser()
        train = read_parquet(root, "train") if parquet_files(root, "train") else read_original(root, "train")
        return _splits(train, test, spec)
