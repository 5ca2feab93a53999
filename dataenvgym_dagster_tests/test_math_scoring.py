"""Math scoring: the completion's last box against the reference by math-verify, in worker processes."""

import time

import pytest

from dataenvgym_dagster.domain.math import MATH, MathDomain, MathItem
from dataenvgym_dagster.domain.math.equivalence import EquivalencePool
from dataenvgym_dagster.domain.types import Problem

# math-verify gives up on this comparison only after its own 5 s; sympy works on it all that time.
SLOW = ("equivalent", "9^{9^{9^{9}}}", "10^{10^{10}}")


def problem(answer: str, question: str = "q", **payload) -> Problem:
    return Problem(example_id=f"e-{answer}", skill="algebra/level_1", question=question, answer=answer, payload=payload)


@pytest.mark.parametrize(
    ("gold", "prediction"),
    [("\\frac{1}{2}", "0.5"), ("2\\sqrt2", "\\sqrt8"), ("\\dfrac{3}{4}", "\\frac34"), ("12", "12\\text{ cm}"), ("\\frac{49\\pi}{4}", "12.25\\pi")],
)
def test_equivalent_answers_in_other_forms_are_correct(gold, prediction):
    (score,) = MATH.score([problem(gold)], [f"The answer is $\\boxed{{{prediction}}}$."])
    assert (score.value, score.extracted, score.verdict) == (1.0, prediction, "correct")


def test_a_different_value_is_wrong_and_the_extracted_answer_is_recorded():
    (score,) = MATH.score([problem("\\frac{1}{2}")], ["\\boxed{1} then \\boxed{\\frac{1}{3}}"])
    assert (score.value, score.extracted, score.verdict) == (0.0, "\\frac{1}{3}", "wrong answer")


def test_a_completion_without_a_box_is_wrong_with_its_own_verdict():
    (score,) = MATH.score([problem("5")], ["5"])
    assert (score.correct, score.extracted, score.verdict) == (False, "", "no boxed answer")


def test_a_scorer_timeout_is_a_wrong_answer_and_does_not_hang_the_evaluation():
    pool = EquivalencePool(workers=2, timeout_s=4.0)
    try:
        started = time.monotonic()
        verdicts = pool.judge_all([SLOW, ("equivalent", "\\frac{1}{2}", "0.5"), SLOW, ("equivalent", "3", "4")])
        elapsed = time.monotonic() - started
        assert verdicts == ["timeout", "correct", "timeout", "wrong answer"]
        # 'timeout', not math-verify's own 'wrong answer' after 5 s: the pool gave up first, killed the
        # worker and started another (seconds on a busy machine), and the evaluation went on.
        assert elapsed < 60.0, f"the pool took {elapsed:.1f} s for four comparisons"
        assert pool.replaced == 2
        # The killed workers were replaced: the pool keeps judging.
        assert pool.judge_all([("equivalent", "2\\sqrt2", "\\sqrt8")]) == ["correct"]
        domain = MathDomain(pool=pool)
        slow, fine = problem("9^{9^{9^{9}}}"), problem("2")
        scores = domain.score([slow, fine], ["\\boxed{10^{10^{10}}}", "\\boxed{2}"])
        assert [(s.value, s.verdict) for s in scores] == [(0.0, "timeout"), (1.0, "correct")]
    finally:
        pool.close()


def test_procedural_problems_verify_and_a_tampered_answer_or_question_does_not():
    import random

    rng = random.Random(5)
    drafts = [MATH.sample(skill, rng) for skill in MATH.taxonomy.skills]
    problems = [Problem(example_id=str(i), skill="x/y", **d.model_dump()) for i, d in enumerate(drafts)]
    assert all(MATH.verify(problems))
    wrong_answer = [p.model_copy(update={"answer": p.answer + "+1"}) for p in problems[:5]]
    wrong_question = [p.model_copy(update={"question": p.question.replace("$", "$1", 1)}) for p in problems[5:10]]
    assert not any(MATH.verify(wrong_answer + wrong_question))


def test_teacher_problems_need_a_parsable_boxed_answer_that_sympy_confirms_where_it_can():
    items = {
        "equation solved": MathItem(question="Solve for $x$: $2x + 3 = 7$.", solution="Subtract 3, divide by 2: $x = \\boxed{2}$."),
        "equation wrong": MathItem(question="Solve for $x$: $2x + 3 = 7$.", solution="$x = \\boxed{3}$"),
        "expression right": MathItem(question="Compute $\\frac{3}{4} + 2^3$.", solution="$= \\boxed{\\frac{35}{4}}$"),
        "expression wrong": MathItem(question="Compute $\\frac{3}{4} + 2^3$.", solution="$= \\boxed{9}$"),
        "word problem": MathItem(question="In how many ways can 3 people sit in a row?", solution="$3! = \\boxed{6}$"),
        "no box": MathItem(question="How many primes are below 10?", solution="There are 4."),
    }
    drafts = {name: MATH.draft(item) for name, item in items.items()}
    assert drafts["equation solved"].answer == "2" and drafts["no box"].answer == ""
    problems = [Problem(example_id=name, skill="algebra/level_1", **d.model_dump()) for name, d in drafts.items()]
    verdicts = dict(zip(items, MATH.verify(problems), strict=True))
    assert verdicts == {
        "equation solved": True, "equation wrong": False, "expression right": True,
        "expression wrong": False, "word problem": True, "no box": False,
    }


def test_a_worker_that_died_between_calls_is_replaced_without_losing_a_comparison():
    pool = EquivalencePool(workers=1, timeout_s=30.0)
    try:
        assert pool.judge_all([("equivalent", "1", "1.0")]) == ["correct"]
        pool._workers[0].process.kill()  # a worker lost to the OOM killer, say
        pool._workers[0].process.join()
        verdicts = pool.judge_all([("equivalent", "2", "2"), ("equivalent", "\\frac{1}{2}", "0.5")])
        assert verdicts == ["correct", "correct"]  # the task went to its replacement
        assert pool.replaced == 1
    finally:
        pool.close()


def test_the_default_worker_count_leaves_a_core_to_the_parent_as_measured_on_two_cores():
    from dataenvgym_dagster.domain.math.equivalence import default_workers

    # `make math-benchmark` on the 2-core machine: a second worker gave no gain, so 1 there.
    assert [default_workers(cpus) for cpus in (1, 2, 4, 16, 64)] == [1, 1, 3, 8, 8]
