"""Reference answers are the final \\boxed{…} (or \\fbox{…}) of a MATH solution, braces balanced; boxes joined by
"and", "or" or a comma are one answer."""

import json

import pytest

from dataenvgym_dagster.domain.math.answers import boxed_answer, last_boxed


@pytest.mark.parametrize(
    ("solution", "answer"),
    [
        ("So the answer is $\\boxed{5}$.", "5"),
        ("We get $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("Thus $x = \\boxed{\\dfrac{3}{4}}$.", "\\dfrac{3}{4}"),
        ("Nested: $\\boxed{\\frac{\\sqrt{3}}{2^{\\frac{1}{2}}}}$", "\\frac{\\sqrt{3}}{2^{\\frac{1}{2}}}"),
        ("The side is $\\boxed{12\\text{ cm}}$.", "12\\text{ cm}"),
        ("First $\\boxed{1}$, then corrected to $\\boxed{2}$.", "2"),
        ("The old release boxes with $\\fbox{7}$.", "7"),
        ("A set: $\\boxed{\\{1, 2\\}}$", "\\{1, 2\\}"),
        ("Brace-less: $\\boxed 9$.", "9"),
        ("A matrix $\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}$", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ],
)
def test_the_last_box_is_the_answer_with_balanced_braces(solution, answer):
    assert last_boxed(solution) == answer


def test_no_box_or_only_an_unclosed_one_gives_none():
    assert last_boxed("The answer is 5.") is None
    assert last_boxed("\\boxed{\\frac{1}{2}") is None


def test_a_truncated_last_box_falls_back_to_the_complete_one_before_it():
    assert last_boxed("$\\boxed{4}$ and then $\\boxed{\\frac{1") == "4"


@pytest.mark.parametrize(
    ("solution", "answer"),
    [
        ("The roots are $x = \\boxed{2}$ or $x = \\boxed{3}$.", "2, 3"),
        ("x = \\boxed{2} or x = \\boxed{3}", "2, 3"),
        ("So $a = \\boxed{1}$, $b = \\boxed{-4}$, and $c = \\boxed{\\frac{1}{2}}$.", "1, -4, \\frac{1}{2}"),
        ("First $\\boxed{1}$, then corrected to $\\boxed{2}$.", "2"),
        ("We found $\\boxed{7}$ earlier. Hence the answer is $\\boxed{8}$.", "8"),
    ],
)
def test_boxes_joined_by_and_or_or_a_comma_are_one_answer(solution, answer):
    assert boxed_answer(solution) == answer


def test_a_multi_box_reference_scores_the_full_answer_right_and_a_partial_one_wrong(tmp_path):
    from dataenvgym_dagster.domain.math import MATH
    from dataenvgym_dagster.domain.protocol import BenchmarkSpec

    # The original release's layout: MATH/{train,test}/<subject>/<n>.json
    for split in ("train", "test"):
        folder = tmp_path / split / "algebra"
        folder.mkdir(parents=True)
        (folder / "1.json").write_text(json.dumps({
            "problem": "Solve $x^2 - 5x + 6 = 0$.", "level": "Level 2", "type": "Algebra",
            "solution": "Factor: $(x-2)(x-3) = 0$, so $x = \\boxed{2}$ or $x = \\boxed{3}$.",
        }))
    (problem,) = MATH.sources["math_original"].load(BenchmarkSpec(source="math_original", path=str(tmp_path), test_per_skill=None))["test"]
    assert problem.answer == "2, 3"
    full, partial, both_boxed = MATH.score([problem] * 3, ["\\boxed{2, 3}", "\\boxed{3}", "$x = \\boxed{3}$ or $x = \\boxed{2}$"])
    assert (full.correct, partial.correct, both_boxed.correct) == (True, False, True)
