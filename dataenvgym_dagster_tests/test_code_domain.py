"""The code domain's procedural problems, teacher items, quality filters and student format."""

from __future__ import annotations

import json
import random

import pytest

from dataenvgym_dagster.domain.code import CODE, CodeItem
from dataenvgym_dagster.domain.code.domain import CodeTestCase
from dataenvgym_dagster.domain.code.procedural import GENERATORS, TIERS
from dataenvgym_dagster.domain.protocol import BenchmarkSpec
from dataenvgym_dagster.domain.quality import check_examples
from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.types import Problem, TrainingExample


def test_code_is_a_registered_domain_with_three_sources():
    assert get_domain("code") is CODE
    assert set(CODE.sources) == {"procedural", "humaneval", "livecodebench"}
    assert CODE.taxonomy.categories.keys() == {"arithmetic", "strings", "lists", "control_flow"}


def test_every_procedural_reference_passes_its_tests_in_the_sandbox():
    splits = CODE.sources["procedural"].load(BenchmarkSpec(validation_per_skill=3, test_per_skill=3, seed=1))
    problems = splits["validation"] + splits["test"]
    assert len(problems) == 2 * 3 * len(GENERATORS)
    assert all(CODE.verify(problems))
    assert {len(p.payload["tests"]) for p in problems} == {5}


@pytest.mark.parametrize("skill", sorted(GENERATORS))
def test_each_skill_has_thousands_of_distinct_problems(skill):
    rng = random.Random(0)
    keys = {CODE.canonical(CODE.sample(skill, rng).question) for _ in range(3000)}
    assert len(keys) > 1000, f"{skill} has only {len(keys)} distinct problems in 3000 draws"


def test_the_student_continues_the_prompt_with_a_one_line_body():
    draft = CODE.sample("lists/map", random.Random(4))
    problem = Problem(example_id="p", skill="lists/map", **draft.model_dump())
    text = CODE.student_text(problem)
    assert text.prompt == problem.question and text.prompt.startswith("def ") and text.prompt.endswith('"""\n')
    assert text.target.startswith("    return [v ") and "\n" not in text.target
    assert CODE.score([problem], [text.target])[0].correct


def test_file_benchmark_skills_get_procedural_problems_of_their_tier():
    rng = random.Random(0)
    for tier, skills in TIERS.items():
        assert {CODE.procedural_skill(f"{tier}/atcoder", rng) for _ in range(200)} == set(skills)
    assert {CODE.procedural_skill("humaneval/unlabelled", rng) for _ in range(500)} == set(GENERATORS)
    assert CODE.procedural_skill("lists/map", rng) == "lists/map"


def test_near_duplicates_share_a_canonical_key():
    a = 'def solve(x):\n    """Return x plus 7."""\n'
    b = 'def  other_name( x ):\n    """Return x  plus 7."""'
    assert CODE.canonical(a) == CODE.canonical(b)
    assert CODE.canonical(a) != CODE.canonical(a.replace("7", "8"))


def item(solution: str, tests: list[tuple[list, object]]) -> CodeItem:
    return CodeItem(
        question='def second(xs):\n    """Return the second largest distinct value of xs."""',
        entry_point="second",
        solution=solution,
        tests=[{"arguments": json.dumps(arguments), "expected": json.dumps(expected)} for arguments, expected in tests],
    )


TESTS = [([[3, 1, 2]], 2), ([[5, 5, 4]], 4), ([[-1, -7, 0]], -1)]


def test_teacher_problems_are_verified_by_running_their_reference_and_wrong_ones_are_dropped():
    right = item("def second(xs):\n    return sorted(set(xs))[-2]", TESTS)
    wrong = item("def second(xs):\n    return sorted(xs)[-2]", TESTS)  # fails [5, 5, 4]
    crashing = item("def second(xs):\n    return xs[10]", TESTS)
    examples = [
        TrainingExample(example_id=f"e{i}", skill="lists/map", plan_entry_id="entry", **CODE.draft(x).model_dump())
        for i, x in enumerate([right, wrong, crashing, right])
    ]
    assert examples[0].payload["tests"][0] == {"input": "[3, 1, 2]", "output": "2"}
    verdicts = check_examples(CODE, examples, planned_skills={"lists/map"})
    assert [v.reason for v in verdicts] == [None, "wrong_answer", "wrong_answer", "duplicate"]
    assert CODE.student_text(examples[0]).target.startswith("def second(xs):")


def test_a_teacher_item_with_unreadable_tests_is_refused_with_the_test_named():
    bad = item("def second(xs):\n    return 0", TESTS)
    bad = bad.model_copy(update={"tests": [CodeTestCase(arguments="[1,", expected="2")]})
    with pytest.raises(ValueError, match="test 0 of second: arguments and expected must be JSON"):
        CODE.draft(bad)
    with pytest.raises(ValueError, match="is not a Python identifier"):
        CodeItem(question="q", entry_point="not a name", solution="", tests=[{"arguments": "[]", "expected": "1"}])
