"""Quality filters: every rejected example has one reason, and nothing generated equals a benchmark question."""

import pytest

from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.quality import QualitySettings, check_examples, kept_test_questions
from dataenvgym_dagster.domain.types import TrainingExample

SKILLS = {"addition/two_digit_carry", "comparison/two_digit"}


def example(index: int, question: str, answer: str, skill: str = "addition/two_digit_carry") -> TrainingExample:
    return TrainingExample(example_id=f"e{index}", question=question, answer=answer, skill=skill, plan_entry_id="p")


def reasons(examples, **kwargs) -> list[str | None]:
    return [verdict.reason for verdict in check_examples(ARITHMETIC, examples, planned_skills=SKILLS, **kwargs)]


def test_wrong_answers_and_unplanned_skills_are_rejected():
    assert reasons([example(0, "18+25", "43"), example(1, "18+25", "42"), example(2, "3*3", "9", "multiplication/one_digit")]) == [
        None, "wrong_answer", "unknown_skill",
    ]


def test_exact_and_near_duplicates_within_a_dataset_are_dropped_after_the_first():
    examples = [example(0, "18+25", "43"), example(1, "18+25", "43"), example(2, "25 + 18", "43"), example(3, "17?42", "<")]
    examples[3] = example(3, "17?42", "<", "comparison/two_digit")
    assert reasons(examples) == [None, "duplicate", "duplicate", None]
    assert reasons(examples, settings=QualitySettings(deduplicate="off")) == [None, None, None, None]


def test_nothing_generated_may_equal_or_nearly_equal_a_benchmark_question():
    assert reasons([example(0, "18+25", "43"), example(1, "25+18", "43"), example(2, "19+25", "44")], benchmark_questions=["18+25"]) == [
        "benchmark_overlap", "benchmark_overlap", None,
    ]


def test_earlier_iterations_count_as_duplicates_only_when_deduplicating_across_the_experiment():
    examples = [example(0, "18+25", "43")]
    assert reasons(examples, earlier_questions=["18+25"]) == [None]
    assert reasons(examples, earlier_questions=["18+25"], settings=QualitySettings(deduplicate="experiment")) == ["duplicate"]


def test_already_solved_examples_are_dropped_only_when_asked_and_only_with_the_students_answers():
    examples = [example(0, "18+25", "43"), example(1, "19+25", "44")]
    settings = QualitySettings(drop_solved=True)
    assert reasons(examples, settings=settings, solved={"e0": True, "e1": False}) == ["already_solved", None]
    with pytest.raises(ValueError, match="student's answer to e1 is unknown"):
        reasons(examples, settings=settings, solved={"e0": True})


def test_the_canonical_form_treats_commutative_operands_as_the_same_problem():
    assert ARITHMETIC.canonical("12 + 7") == ARITHMETIC.canonical("7+12")
    assert ARITHMETIC.canonical("2*(4+3)") == ARITHMETIC.canonical("(3+4)*2")
    assert ARITHMETIC.canonical("9-3") != ARITHMETIC.canonical("3-9")
    assert ARITHMETIC.canonical("not maths") == "notmaths"


def test_a_test_question_is_dropped_even_when_benchmark_exclusion_is_off():
    examples = [example(0, "18+25", "43"), example(1, "25+18", "43")]
    off = QualitySettings(exclude_benchmark=False, deduplicate="off")
    assert reasons(examples, settings=off, benchmark_questions=["18+25"], test_questions=["18+25"]) == ["benchmark_overlap", None]


def test_the_guard_before_training_lists_kept_test_questions():
    assert kept_test_questions(["1+2", "3+4"], ["3+4", "5+6"]) == ["3+4"]
    assert kept_test_questions(["1+2"], ["3+4"]) == []
