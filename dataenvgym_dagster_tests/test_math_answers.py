"""Reference answers are the last \\boxed{…} (or \\fbox{…}) of a MATH solution, braces balanced."""

import pytest

from dataenvgym_dagster.domain.math.answers import last_boxed


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
