import itertools
import random

import pytest
from pydantic import ValidationError

from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.arithmetic.domain import _canonical_by_parsing, _solve_by_parsing, solve
from dataenvgym_dagster.domain.arithmetic.generators import GENERATORS, _uniform
from dataenvgym_dagster.domain.protocol import BenchmarkSpec
from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.types import Problem


def test_taxonomy_has_at_least_six_categories_each_with_leaf_skills():
    assert len(ARITHMETIC.taxonomy.categories) >= 6
    assert all(skills for skills in ARITHMETIC.taxonomy.categories.values())


@pytest.mark.parametrize("skill", ARITHMETIC.taxonomy.skills)
def test_every_generated_problem_verifies(skill):
    rng = random.Random(7)
    for _ in range(50):
        draft = ARITHMETIC.sample(skill, rng)
        assert ARITHMETIC.is_correct(draft.question, draft.answer), (skill, draft)


# The ranges the generators draw from, every width up to 70, and powers of two (where CPython's
# bit_length() rather than (width - 1).bit_length() decides how many draws are rejected).
RANGES = [(0, 10), (10, 100), (100, 1000), (0, 1), (2, 10), (5, 5 + 2**12)] + [(0, w) for w in range(1, 71)] + [
    (3, 3 + 2**k) for k in range(11)
]


def test_the_generators_draw_exactly_what_randrange_and_randint_draw():
    for (start, stop), seed in itertools.product(RANGES, range(100)):
        draw = _uniform(start, stop)
        ours, pythons = random.Random(seed), random.Random(seed)
        drawn = [draw(ours) for _ in range(5)]
        assert drawn == [pythons.randrange(start, stop) for _ in range(5)], (seed, start, stop)
        assert ours.getstate() == pythons.getstate()  # as many draws from the stream, so what follows is the same
        assert draw(random.Random(seed)) == random.Random(seed).randint(start, stop - 1)
        if start == 0:
            assert draw(random.Random(seed)) == random.Random(seed).randrange(stop)


def test_a_problem_drawn_again_is_the_same_frozen_draft_with_the_generators_text():
    drafts = [ARITHMETIC.sample("addition/one_digit", random.Random(seed)) for seed in range(300)]  # 55 problems
    generator = GENERATORS["addition/one_digit"]
    assert [(d.question, d.answer, d.payload) for d in drafts] == [(*generator(random.Random(s)), {}) for s in range(300)]
    first = {}
    for draft in drafts:
        assert first.setdefault(draft.question, draft) is draft  # shared, not rebuilt
    assert len(first) < 100
    with pytest.raises(ValidationError):
        drafts[0].question = "1+1"  # so sharing is safe


def test_carry_and_borrow_skills_really_carry_and_borrow():
    rng = random.Random(1)
    for _ in range(50):
        question = ARITHMETIC.sample("addition/two_digit_carry", rng).question
        a, b = map(int, question.split("+"))
        assert a % 10 + b % 10 >= 10 or a // 10 + b // 10 >= 10
        question = ARITHMETIC.sample("subtraction/borrow", rng).question
        a, b = map(int, question.split("-"))
        assert a % 10 < b % 10 and a >= b


def test_solve_handles_each_operator_and_rejects_other_code():
    assert solve("(3+4)*2") == "14"
    assert solve("47%5") == "2"
    assert solve("12?12") == "="
    assert solve("9?10") == "<"
    with pytest.raises(ValueError, match="not an arithmetic question"):
        solve("__import__('os')")
    assert not ARITHMETIC.is_correct("2**3", "8")


def test_a_question_taking_a_number_modulo_zero_is_a_wrong_answer_not_a_crash():
    """A teacher may write ``5%0``; the quality filter must reject it, not end the step with ZeroDivisionError."""
    for question in ("5%0", "(2+3)%0", "7%(1-1)", "5%0?3"):
        with pytest.raises(ValueError, match="modulo 0"):
            solve(question)
        assert not ARITHMETIC.is_correct(question, "0")


def _outcome(function, question):
    try:
        return function(question)
    except Exception as error:  # noqa: BLE001 - the same exception type is part of the behaviour
        return type(error)


def test_questions_read_without_the_parser_get_the_parsers_answers_and_keys():
    """solve and canonical skip Python's parser for ``<number><op><number>``; every question, the generators'
    and hostile ones (leading zeros, non-ASCII digits, modulo by zero, spaces, huge numbers), gets what the
    parser gives."""
    rng = random.Random(3)
    questions = [ARITHMETIC.sample(skill, rng).question for skill in ARITHMETIC.taxonomy.skills for _ in range(200)]
    questions += [
        "0+0", "00+1", "007*3", "5%0", "0%0", "12 + 7", "7+12", "1_000+1", "٣+1", "1+٣", "+1", "1+", "-3+4", "3--4",
        "9" * 31 + "+1", "9" * 40 + "*2", "1" + "0" * 5000 + "+1", "12?12", "012?12", "(3+4)*2", "3*4+5", "2**8", "",
    ]
    alphabet = "0123456789+-*%? ()"
    questions += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7))) for _ in range(3000)]
    for question in questions:
        assert _outcome(solve, question) == _outcome(_solve_by_parsing, question), question
        compact = "".join(question.split())
        expected = "?".join(map(_canonical_by_parsing, compact.split("?"))) if compact.count("?") == 1 else _canonical_by_parsing(compact)
        assert ARITHMETIC.canonical(question) == expected, question


def test_splits_are_stratified_disjoint_and_reproducible():
    spec = BenchmarkSpec(validation_per_skill=10, test_per_skill=10, seed=3)
    splits = ARITHMETIC.sources["procedural"].load(spec)
    for problems in splits.values():
        assert len(problems) == 10 * len(ARITHMETIC.taxonomy.skills)
        assert {p.skill for p in problems} == set(ARITHMETIC.taxonomy.skills)
    validation = {p.question for p in splits["validation"]}
    test = {p.question for p in splits["test"]}
    assert not validation & test
    assert len(validation) == len(splits["validation"])
    assert ARITHMETIC.sources["procedural"].load(spec) == splits


def test_student_writes_digits_least_significant_first_and_parsing_undoes_it():
    text = ARITHMETIC.student_text(Problem(example_id="e", skill="addition/two_digit_carry", question="12+39", answer="51"))
    assert (text.prompt, text.target) == ("12+39=", "15")
    assert ARITHMETIC.parse(" 15") == "51"


def test_scoring_is_exact_match_of_the_parsed_completion_and_says_why():
    problem = Problem(example_id="e", skill="addition/two_digit_carry", question="12+39", answer="51")
    right, wrong = ARITHMETIC.score([problem, problem], [" 15", "16"])
    assert (right.value, right.extracted, right.verdict, right.correct) == (1.0, "51", "correct", True)
    assert (wrong.value, wrong.extracted, wrong.correct) == (0.0, "61", False)


def test_unknown_domain_and_skill_name_the_known_ones():
    with pytest.raises(KeyError, match="available domains: arithmetic"):
        get_domain("chess")
    with pytest.raises(KeyError, match="addition/one_digit"):
        ARITHMETIC.sample("division/long", random.Random(0))
