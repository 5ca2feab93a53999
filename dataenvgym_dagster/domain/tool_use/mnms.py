"""The ``mnms`` benchmark source: MnMs human-verified plans from local files.

``benchmark.path`` is a folder holding the Hugging Face dataset ``zixianma/mnms`` files
``test_human_verified_filtered.json`` (882 plans: the test split) and ``test_human_verified.json``
(1 565 plans; those not in the filtered set are the validation split). Each file is JSON Lines
(one record per line, as the dataset ships) or one JSON array of records. A record is
``{"id": int, "user_request": str, "plan_str": str, "code_str": str, "alt_plans_str": str | null}``
where ``plan_str`` is a Python literal ``[{'id': 0, 'name': 'image captioning', 'args': {...}}, ...]``.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from dataenvgym_dagster.domain.benchmark import read_utf8, stratified_sample
from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec
from dataenvgym_dagster.domain.tool_use.catalogue import ToolCatalogue
from dataenvgym_dagster.domain.tool_use.generators import skill_of
from dataenvgym_dagster.domain.tool_use.plans import mnms_json, plan_from_steps, plan_problems, tool_names
from dataenvgym_dagster.domain.types import Problem

TEST_FILE = "test_human_verified_filtered.json"
VERIFIED_FILE = "test_human_verified.json"
LAYOUT = (
    f"a folder with {TEST_FILE} and {VERIFIED_FILE} from the Hugging Face dataset zixianma/mnms, one record "
    "per line: {\"id\": int, \"user_request\": str, \"plan_str\": str, \"code_str\": str, ...}"
)


def read_records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The records of one MnMs file with where each came from (``line 12`` or ``item 12``)."""
    if not path.is_file():
        raise BenchmarkFormatError(f"MnMs file {path} does not exist; benchmark.path must be {LAYOUT}")
    text = read_utf8(path, "MnMs file")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise BenchmarkFormatError(f"{path} is not valid JSON ({error}); expected {LAYOUT}") from None
        located = [(f"item {index}", item) for index, item in enumerate(items)]
    else:
        located = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                located.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as error:
                raise BenchmarkFormatError(f"{path} line {number} is not a JSON record ({error}); expected {LAYOUT}") from None
    for where, record in located:
        if not isinstance(record, dict):
            raise BenchmarkFormatError(f"{path} {where} is a {type(record).__name__}, not a record; expected {LAYOUT}")
    return located


def record_problem(record: dict[str, Any], where: str, path: Path, catalogue: ToolCatalogue) -> Problem:
    """One MnMs record as a problem: the request, its tool names, its gold skill and the plan as payload."""
    record_id = record.get("id")
    named = f"{path} {where} (id {record_id!r})"
    if not isinstance(record_id, int) or isinstance(record_id, bool):
        raise BenchmarkFormatError(f"{named}: 'id' must be an integer; every MnMs record has one")
    for field in ("user_request", "plan_str"):
        if not isinstance(record.get(field), str) or not record[field].strip():
            raise BenchmarkFormatError(f"{named}: {field!r} is missing or empty; expected {LAYOUT}")
    try:
        plan = plan_from_steps(ast.literal_eval(record["plan_str"]))  # a literal, never eval: the file is data
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
        raise BenchmarkFormatError(
            f"{named}: plan_str does not parse as a list of {{'id', 'name', 'args'}} steps ({error}); "
            "correct the record or take the file again from zixianma/mnms"
        ) from None
    unknown = [step.name for step in plan if step.name not in catalogue]
    if unknown or not plan:
        problem = f"names tools {unknown} that are not among the {len(catalogue)} MnMs tools" if unknown else "has no steps"
        raise BenchmarkFormatError(f"{named}: the plan {problem}; correct the record or take the file again from zixianma/mnms")
    return Problem(
        example_id=f"mnms/{record_id}",
        skill=skill_of(plan, catalogue),
        question=record["user_request"].strip(),
        answer=tool_names(plan),
        payload={"plan": mnms_json(plan), "mnms_id": record_id, "gold_plan_valid": not plan_problems(plan, catalogue)},
    )


def read_problems(path: Path, catalogue: ToolCatalogue) -> list[Problem]:
    problems: dict[str, Problem] = {}
    for where, record in read_records(path):
        problem = record_problem(record, where, path, catalogue)
        if problem.example_id in problems:
            raise BenchmarkFormatError(f"{path} {where}: id {record['id']} appears twice; MnMs ids are unique")
        problems[problem.example_id] = problem
    return list(problems.values())


class MnmsSource:
    """MnMs test (the filtered 882) and validation (human-verified minus the test set) splits.

    ``validation_per_skill`` draws up to that many validation problems per gold skill (seeded);
    ``test_per_skill: null`` keeps the whole test set.
    """

    name = "mnms"
    needs_path = True

    def __init__(self, catalogue: ToolCatalogue) -> None:
        self.catalogue = catalogue

    def load(self, spec: BenchmarkSpec) -> dict[str, list[Problem]]:
        if not spec.path:
            raise BenchmarkFormatError(f"the mnms source reads files: set benchmark.path to {LAYOUT}")
        folder = Path(spec.path)
        test = read_problems(folder / TEST_FILE, self.catalogue)
        test_ids = {problem.example_id for problem in test}
        validation = [p for p in read_problems(folder / VERIFIED_FILE, self.catalogue) if p.example_id not in test_ids]
        if spec.test_per_skill is not None:
            test = stratified_sample(test, spec.test_per_skill, spec.seed)
        return {"validation": stratified_sample(validation, spec.validation_per_skill, spec.seed), "test": test}
