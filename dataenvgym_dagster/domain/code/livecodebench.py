"""LiveCodeBench ``code_generation_lite`` from local release files, in their exact published format.

A folder holds ``test.jsonl`` (release_v1), ``test2.jsonl`` (the problems release_v2 added),
... ``test6.jsonl``; ``release_vN`` is the union of the first N files. Each line has
question_title, question_content, platform, question_id, contest_id, contest_date, starter_code,
difficulty, public_test_cases (a JSON list of {input, output, testtype: stdin | functional}),
private_test_cases (the same JSON list, or that JSON text pickled, zlib-compressed and
base64-encoded) and metadata (JSON text, ``{"func_name": ...}`` for functional problems).

The paper's splits are the defaults: test = release_v1, validation = release_v2 minus
release_v1. ``benchmark.options`` selects others::

    options:
      test: {release: release_v1, start_date: "2023-05-01", end_date: "2024-03-31"}
      validation: {release: release_v2}      # minus every test problem, always

Gold skills are ``<difficulty>/<platform>`` (``easy/atcoder``, ``hard/leetcode`` ...).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
import zlib
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from dataenvgym_dagster.domain.benchmark import read_utf8, stratified_sample
from dataenvgym_dagster.domain.code.programs import LIVECODEBENCH_HEADER, payload_dict
from dataenvgym_dagster.domain.errors import one_line
from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec
from dataenvgym_dagster.domain.types import Problem

RELEASE_FILES = ("test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl", "test6.jsonl")
FIELDS = (
    "question_title", "question_content", "platform", "question_id", "contest_id", "contest_date", "starter_code",
    "difficulty", "public_test_cases", "private_test_cases", "metadata",
)
MAX_DECOMPRESSED = 512 * 2**20  # bytes of one row's private tests


class UnsafePickleError(BenchmarkFormatError):
    """A pickle in a benchmark file would build something other than a plain string."""


class _StringsOnly(pickle.Unpickler):
    """An unpickler that can build strings (and plain containers) but never look up a class or function.

    Every way a pickle runs code goes through ``find_class`` (GLOBAL, STACK_GLOBAL, INST, OBJ,
    the extension registry) or ``persistent_load``; both refuse.
    """

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the pickle refers to {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("the pickle uses a persistent id")


def decode_private_tests(text: str, where: str) -> list[dict]:
    """The private test cases of one row: plain JSON, or base64(zlib(pickle(JSON text))).

    The pickle is read with an unpickler that admits only a plain ``str``; anything else (a
    pickle that would import or call something) raises :class:`UnsafePickleError`.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        return _cases(stripped, where, "private_test_cases")
    try:
        compressed = base64.b64decode(stripped, validate=True)
        decompressor = zlib.decompressobj()
        raw = decompressor.decompress(compressed, MAX_DECOMPRESSED)
        if decompressor.unconsumed_tail:
            raise BenchmarkFormatError(f"{where}: private_test_cases decompress to more than {MAX_DECOMPRESSED} bytes")
    except (binascii.Error, zlib.error, ValueError) as error:
        raise BenchmarkFormatError(
            f"{where}: private_test_cases is neither a JSON list nor base64(zlib(pickle)) text ({error})"
        ) from None
    try:
        value = _StringsOnly(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as error:
        raise UnsafePickleError(
            f"{where}: refused to unpickle private_test_cases: {error}. LiveCodeBench's pickles hold one plain "
            "string (the JSON list of tests); this one would import or call code. Do not use this file; "
            "download code_generation_lite again from its publisher"
        ) from None
    except Exception as error:  # noqa: BLE001 - a truncated or corrupt pickle, whatever the exception
        raise BenchmarkFormatError(f"{where}: private_test_cases is not a readable pickle ({type(error).__name__}: {error})") from None
    if not isinstance(value, str):
        raise UnsafePickleError(f"{where}: private_test_cases unpickles to a {type(value).__name__}, not the JSON text of the tests")
    return _cases(value, where, "private_test_cases")


def _cases(text: str, where: str, field: str) -> list[dict]:
    try:
        cases = json.loads(text)
    except json.JSONDecodeError as error:
        raise BenchmarkFormatError(f"{where}: {field} is not JSON ({error})") from None
    if not isinstance(cases, list):
        raise BenchmarkFormatError(f"{where}: {field} must be a JSON list of test cases, got {type(cases).__name__}")
    for index, case in enumerate(cases):
        if (
            not isinstance(case, dict)
            or not isinstance(case.get("input"), str)
            or not isinstance(case.get("output"), str)
            or case.get("testtype") not in ("stdin", "functional")
        ):
            raise BenchmarkFormatError(
                f"{where}: {field}[{index}] must be {{input: str, output: str, testtype: stdin | functional}}, got {str(case)[:120]}"
            )
    return cases


class Window(BaseModel):
    """One split's release and date window (inclusive)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    release: str
    start_date: date | None = None
    end_date: date | None = None

    def files(self) -> tuple[str, ...]:
        """``release_vN``: the first N files; ``vN``: only the N-th (LiveCodeBench's own naming)."""
        name = self.release
        for prefix in ("release_v", "v"):
            number = name.removeprefix(prefix)
            if name.startswith(prefix) and number.isdigit() and 1 <= int(number) <= len(RELEASE_FILES):
                n = int(number)
                return RELEASE_FILES[:n] if prefix == "release_v" else (RELEASE_FILES[n - 1],)
        raise BenchmarkFormatError(
            f"LiveCodeBench release {name!r} is unknown; use release_v1 ... release_v6 (cumulative) or v1 ... v6 (one file)"
        )

    def admits(self, contest_date: datetime) -> bool:
        day = contest_date.date()
        return (self.start_date is None or day >= self.start_date) and (self.end_date is None or day <= self.end_date)


class LiveCodeBenchOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    test: Window = Window(release="release_v1")
    validation: Window = Window(release="release_v2")


def read_file(path: Path) -> list[Problem]:
    """Every problem of one release file; a malformed row raises naming the file, line and field."""
    try:
        lines = read_utf8(path, "LiveCodeBench file").splitlines()
    except FileNotFoundError:
        raise BenchmarkFormatError(
            f"LiveCodeBench file {path} does not exist; benchmark.path must be a folder with code_generation_lite's "
            f"{', '.join(RELEASE_FILES)}"
        ) from None
    problems = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            problems.append(problem_of(line, f"{path} line {number}"))
    return problems


def problem_of(line: str, where: str) -> Problem:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise BenchmarkFormatError(f"{where} is not JSON ({error})") from None
    if not isinstance(row, dict):
        raise BenchmarkFormatError(f"{where} is not a JSON object")
    missing = [field for field in FIELDS if field not in row]
    if missing:
        raise BenchmarkFormatError(f"{where} lacks {missing}; a code_generation_lite row has {', '.join(FIELDS)}")
    where = f"{where} (question_id {row['question_id']})"
    tests = _cases(row["public_test_cases"], where, "public_test_cases") + decode_private_tests(row["private_test_cases"], where)
    kinds = {case["testtype"] for case in tests}
    if len(kinds) != 1:
        raise BenchmarkFormatError(f"{where}: tests must all be stdin or all functional, found {sorted(kinds) or 'none'}")
    kind = kinds.pop()
    try:
        metadata = json.loads(row["metadata"]) if isinstance(row["metadata"], str) else row["metadata"]
        contest_date = datetime.fromisoformat(row["contest_date"])
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise BenchmarkFormatError(f"{where}: metadata must be JSON text and contest_date ISO 8601 ({error})") from None
    entry_point = (metadata or {}).get("func_name")
    if kind == "functional" and not entry_point:
        raise BenchmarkFormatError(f"{where}: a functional problem needs metadata.func_name")
    return Problem(
        example_id=f"livecodebench/{row['question_id']}",
        skill=f"{row['difficulty']}/{row['platform']}",
        question=row["question_content"],
        answer="",  # code_generation_lite publishes no reference solutions
        payload=payload_dict(
            kind=kind, prompt=row["starter_code"], entry_point=entry_point,
            tests=[{"input": case["input"], "output": case["output"]} for case in tests],
            header=LIVECODEBENCH_HEADER, source="livecodebench", question_id=row["question_id"],
            title=row["question_title"], platform=row["platform"], contest_date=contest_date.isoformat(),
            difficulty=row["difficulty"],
        ),
    )


class LiveCodeBenchSource:
    """``source: livecodebench`` with ``path`` a folder of code_generation_lite's release files."""

    name = "livecodebench"
    needs_path = True

    def load(self, spec: BenchmarkSpec) -> dict[str, list[Problem]]:
        if not spec.path:
            raise BenchmarkFormatError("benchmark source 'livecodebench' reads files: set benchmark.path to the release folder")
        try:
            options = LiveCodeBenchOptions.model_validate(spec.options)
        except ValidationError as error:
            raise BenchmarkFormatError(f"benchmark.options for livecodebench are invalid: {one_line(error, 'benchmark.options')}") from None
        folder = Path(spec.path)
        if folder.exists() and not folder.is_dir():
            raise BenchmarkFormatError(
                f"LiveCodeBench path {folder} is a file; benchmark.path must be the folder holding code_generation_lite's "
                f"{', '.join(RELEASE_FILES)}"
            )
        cache: dict[str, list[Problem]] = {}

        def window(selected: Window) -> list[Problem]:
            problems = []
            for name in selected.files():
                if name not in cache:
                    cache[name] = read_file(folder / name)
                problems += [p for p in cache[name] if selected.admits(datetime.fromisoformat(p.payload["contest_date"]))]
            return problems

        test = window(options.test)
        test_ids = {p.example_id for p in test}
        validation = [p for p in window(options.validation) if p.example_id not in test_ids]
        if spec.test_per_skill is not None:
            test = stratified_sample(test, spec.test_per_skill, spec.seed)
        validation = stratified_sample(validation, spec.validation_per_skill, spec.seed)
        return {"validation": validation, "test": test}
