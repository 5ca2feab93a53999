"""What the student is trained to write: the answer alone (the tiny student) or a worked solution ending in it (a real student)."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from dataenvgym_dagster.domain.code import CODE
from dataenvgym_dagster.domain.math import MATH
from dataenvgym_dagster.domain.math.domain import MathItem
from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry
from dataenvgym_dagster.domain.protocol import BenchmarkSpec
from dataenvgym_dagster.domain.quality import check_examples
from dataenvgym_dagster.domain.teachers.llm import LlmTeacher
from dataenvgym_dagster.domain.types import Problem, TrainingExample
from dataenvgym_dagster.experiments.config import ExperimentCatalog
from dataenvgym_dagster.loop import steps
from dataenvgym_dagster.machinery.student.settings import StudentSpec
from dataenvgym_dagster.machinery.teacher import OpenAIChat, ReplyCache, WarehouseLedger
from dataenvgym_dagster.machinery.warehouse import Warehouse
from dataenvgym_dagster_tests.openai_server import OpenAITestServer, last_user_message
from dataenvgym_dagster_tests.test_llm_teacher_client import fast

SOLUTION = StudentSpec(target="solution")


def test_the_default_target_is_the_answer_alone_as_the_tiny_student_needs():
    assert StudentSpec().target == "answer"
    problem = Problem(example_id="p", skill="algebra/level_1", **MATH.sample("algebra/level_1", random.Random(0)).model_dump())
    (text,) = steps.student_texts(MATH, [problem], StudentSpec())
    assert text.target == f"\\boxed{{{problem.answer}}}"
    with pytest.raises(ValueError, match="target"):
        StudentSpec(target="essay")


def test_a_math_student_with_the_solution_target_learns_the_worked_solution_ending_in_its_boxed_answer(tmp_path):
    # A MATH train problem in the original release's layout, and a procedural one.
    for split in ("train", "test"):
        folder = tmp_path / split / "algebra"
        folder.mkdir(parents=True)
        (folder / "7.json").write_text(json.dumps({
            "problem": "What is $2 + 3 \\cdot 4$?", "level": "Level 1", "type": "Algebra",
            "solution": "Multiplication first: $3 \\cdot 4 = 12$, and $2 + 12 = \\boxed{14}$.",
        }))
    (train,) = MATH.sources["math_original"].load(BenchmarkSpec(source="math_original", path=str(tmp_path), validation_per_skill=1))["validation"]
    procedural = Problem(example_id="p", skill="algebra/level_2", **MATH.sample("algebra/level_2", random.Random(1)).model_dump())
    texts = steps.student_texts(MATH, [train, procedural], SOLUTION)
    assert texts[0].prompt == "What is $2 + 3 \\cdot 4$?\n"
    assert texts[0].target == "Multiplication first: $3 \\cdot 4 = 12$, and $2 + 12 = \\boxed{14}$."
    assert texts[1].target == procedural.payload["solution"] and texts[1].target.rstrip(".$ ").endswith("}")
    # The student is scored on the boxed answer it writes after its reasoning.
    assert all(score.correct for score in MATH.score([train, procedural], [text.target for text in texts]))
    # Few-shot examples show the same target.
    few_shot = steps.student_texts(MATH, [train], SOLUTION.model_copy(update={"prompt_format": "few_shot", "few_shot_examples": 1}))
    assert few_shot[0].prompt.count("\\boxed{") == 1 and len(few_shot[0].prompt) > len(texts[0].prompt) + 40


def test_a_math_problem_without_a_solution_is_trained_on_its_boxed_answer():
    problem = Problem(example_id="p", skill="algebra/level_1", question="What is $1+1$?", answer="2")
    assert MATH.solution_text(problem).target == "\\boxed{2}"
    unboxed = problem.model_copy(update={"payload": {"solution": "One and one make two."}})
    assert MATH.solution_text(unboxed).target == "One and one make two.\nThe answer is $\\boxed{2}$."


def test_a_code_student_with_the_solution_target_explains_then_writes_the_program():
    item = CODE.solution_item.model_validate({
        "question": 'def double(xs):\n    """Return every element of xs doubled."""', "entry_point": "double",
        "explanation": "Multiply each element by two in a list comprehension.",
        "solution": "def double(xs):\n    return [2 * v for v in xs]",
        "tests": [{"arguments": "[[1, 2]]", "expected": "[2, 4]"}, {"arguments": "[[]]", "expected": "[]"}],
    })
    problem = Problem(example_id="c", skill="list_processing", **CODE.draft(item).model_dump())
    (answer,) = steps.student_texts(CODE, [problem], StudentSpec())
    (solution,) = steps.student_texts(CODE, [problem], SOLUTION)
    assert answer.target == "def double(xs):\n    return [2 * v for v in xs]"
    assert solution.target == "Multiply each element by two in a list comprehension.\n```python\n" + answer.target + "\n```"
    assert [s.correct for s in CODE.score([problem, problem], [answer.target, solution.target])] == [True, True]
    humaneval = CODE.sources["humaneval"].load(BenchmarkSpec(source="humaneval", validation_per_skill=1))["validation"][0]
    assert CODE.solution_text(humaneval) == CODE.student_text(humaneval)  # no explanation: the program alone


class CodeResponder:
    """A code teacher that writes an explanation exactly when the requested schema asks for one."""

    def __init__(self) -> None:
        self.asked_for_explanations: list[bool] = []

    def __call__(self, request: dict[str, Any]) -> str:
        wants = "explanation" in json.dumps(request.get("response_format") or request["messages"][0])
        self.asked_for_explanations.append(wants)
        count = int(re.search(r"Number of problems: (\d+)", last_user_message(request)).group(1))
        problems = []
        for index in range(count):
            name = f"triple_{index}"
            problem = {
                "question": f'def {name}(x):\n    """Return x times three."""', "entry_point": name,
                "solution": f"def {name}(x):\n    return 3 * x",
                "tests": [{"arguments": json.dumps([n]), "expected": json.dumps(3 * n)} for n in (1, 2, 5)],
            }
            if wants:
                problem["explanation"] = "Multiply x by three."
            problems.append(problem)
        return json.dumps({"problems": problems})


def test_the_llm_teacher_writes_an_explanation_with_each_code_problem_only_when_the_target_needs_one(tmp_path):
    plan = DataGenerationPlan(
        domain="code", experiment="e", iteration=1, environment="skill_list", policy="test",
        entries=(PlanEntry(entry_id="e0", skill="list_processing", count=2, rationale="weak"),),
    )
    responder = CodeResponder()
    with OpenAITestServer(responder=responder) as server:
        examples = {}
        for target in ("answer", "solution"):
            ledger = WarehouseLedger(Warehouse(tmp_path / target), domain="code", experiment="e", iteration=1)
            chat = OpenAIChat(fast(server), ReplyCache(tmp_path / target / "cache"), ledger)
            examples[target] = LlmTeacher(CODE, chat, examples_per_call=5, target=target).generate(plan, seed=0).examples
    assert responder.asked_for_explanations == [False, True]
    assert all("explanation" not in e.payload for e in examples["answer"])
    assert {e.payload["explanation"] for e in examples["solution"]} == {"Multiply x by three."}
    assert CODE.solution_text(examples["solution"][0]).target.startswith("Multiply x by three.\n```python\ndef triple_0")


def test_the_wrong_answer_filter_checks_the_final_answer_of_the_worked_solution():
    def example(solution: str) -> TrainingExample:
        draft = MATH.draft(MathItem(question="Solve for $x$: $2x + 3 = 7$.", solution=solution))
        return TrainingExample(example_id=solution[-12:], skill="algebra/level_1", plan_entry_id="e0", **draft.model_dump())

    right = example("Subtract 3: $2x = 4$, so $x = \\boxed{2}$.")
    wrong_final = example("Subtract 3: $2x = 4$, so $x = \\boxed{2}$. Checking again, $x = \\boxed{3}$.")
    partial_run = example("Subtract 3: $2x = 4$, so $x = \\boxed{2}$ or $x = \\boxed{3}$.")
    verdicts = check_examples(MATH, [right, wrong_final, partial_run], planned_skills={"algebra/level_1"})
    assert [(v.passed, v.reason) for v in verdicts] == [(True, None), (False, "wrong_answer"), (False, "wrong_answer")]


def test_the_catalogue_refuses_the_solution_target_for_a_domain_without_worked_solutions():
    catalogue = {
        "default_experiment": "e", "experiments": {"e": {"policy": "weak_skills", "student": {"target": "solution"}}},
        "domains": {"arithmetic": {"benchmark": {"source": "procedural"}}, "math": {"benchmark": {"source": "procedural"}}},
    }
    with pytest.raises(ValueError, match=r"arithmetic\|e: student.target 'solution' needs worked solutions.*use student.target: answer"):
        ExperimentCatalog.model_validate(catalogue)
    catalogue["experiments"]["e"]["domains"] = ["math"]
    assert ExperimentCatalog.model_validate(catalogue).student("math", "e").target == "solution"
