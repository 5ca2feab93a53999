"""Math's procedural source: sympy-checked MATH-style problems for 7 types x 5 levels, in large problem spaces."""

import random

import pytest

from dataenvgym_dagster.domain.math import MATH
from dataenvgym_dagster.domain.math.answers import last_boxed
from dataenvgym_dagster.domain.math.generators import TYPES
from dataenvgym_dagster.domain.protocol import BenchmarkSpec
from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.types import Problem


def test_the_math_domain_is_registered_with_seven_types_as_categories_and_five_levels_each():
    assert get_domain("math") is MATH
    assert set(MATH.taxonomy.categories) == set(TYPES) and len(TYPES) == 7
    assert MATH.taxonomy.categories["algebra"] == tuple(f"algebra/level_{n}" for n in range(1, 6))


@pytest.mark.parametrize("skill", MATH.taxonomy.skills)
def test_every_skill_writes_latex_problems_with_worked_solutions_ending_in_the_boxed_answer(skill):
    rng = random.Random(11)
    drafts = [MATH.sample(skill, rng) for _ in range(20)]
    for draft in drafts:
        assert "$" in draft.question and draft.answer
        assert last_boxed(draft.payload["solution"]) == draft.answer
    problems = [Problem(example_id=str(i), skill=skill, **d.model_dump()) for i, d in enumerate(drafts)]
    assert all(MATH.verify(problems))


@pytest.mark.parametrize("skill", MATH.taxonomy.skills)
def test_every_skill_has_thousands_of_distinct_problems_so_the_filters_do_not_exhaust_it(skill):
    rng = random.Random(3)
    keys = {MATH.canonical(MATH.sample(skill, rng).question) for _ in range(600)}
    # At least ~10 000 equally likely problems: 600 draws from 10 000 give ~582 distinct ones.
    assert len(keys) >= 565, f"{skill}: only {len(keys)} distinct problems in 600 draws"


def test_level_unknown_skills_of_real_files_draw_from_the_type_s_levels():
    draft = MATH.sample("geometry/level_unknown", random.Random(0))
    assert draft.payload["generator"].startswith("geometry/level_")
    with pytest.raises(KeyError, match="math has no skill 'topology/level_1'"):
        MATH.sample("topology/level_1", random.Random(0))


def test_procedural_splits_are_stratified_disjoint_and_reproducible():
    spec = BenchmarkSpec(validation_per_skill=3, test_per_skill=4, seed=2)
    splits = MATH.sources["procedural"].load(spec)
    assert len(splits["validation"]) == 3 * 35 and len(splits["test"]) == 4 * 35
    assert not {p.question for p in splits["validation"]} & {p.question for p in splits["test"]}
    assert MATH.sources["procedural"].load(spec) == splits


def test_the_student_reads_the_problem_and_writes_the_boxed_answer():
    problem = Problem(example_id="e", skill="algebra/level_1", question="Solve for $x$: $x + 2 = 5$.", answer="3")
    text = MATH.student_text(problem)
    assert (text.prompt, text.target) == ("Solve for $x$: $x + 2 = 5$.\n", "\\boxed{3}")
    (score,) = MATH.score([problem], [text.target])
    assert score.correct


def test_canonical_ignores_surface_form_but_not_the_numbers():
    assert MATH.canonical("Compute $\\dfrac{1}{2} + \\left( 3 \\right)$.") == MATH.canonical("compute $\\frac{1}{2}+(3)$")
    assert MATH.canonical("Solve for $x$: $x + 3 = 5$.") != MATH.canonical("Solve for $x$: $x + 5 = 3$.")


def test_the_teacher_brief_asks_for_worked_solutions_with_boxed_answers_and_speaks_only_of_math():
    assert "\\boxed" in MATH.brief and "worked solution" in MATH.brief
    assert "arithmetic" not in MATH.brief.lower() or "competition" in MATH.brief
    assert set(MATH.generated_item.model_fields) == {"question", "solution"}
