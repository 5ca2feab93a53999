"""The arithmetic domain: skills, benchmark splits, student text format and answer checking."""

from __future__ import annotations

import ast
import functools
import operator
import random
import re
from collections.abc import Sequence

from dataenvgym_dagster.domain.arithmetic.generators import GENERATORS
from dataenvgym_dagster.domain.benchmark import ProceduralSource
from dataenvgym_dagster.domain.protocol import GeneratedItem
from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.types import Draft, Problem, Score, StudentText

_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Mod: "%"}
_BY_SYMBOL = {"+": operator.add, "-": operator.sub, "*": operator.mul, "%": operator.mod}

BRIEF = (
    "The domain is integer arithmetic. A question is a bare expression without spaces or '=' "
    "over non-negative integer literals and the operators + - * % and parentheses, "
    "for example `12+39`, `84-27`, `7*8`, `53%6` or `(3+4)*2`. A comparison question joins two "
    "numbers with `?`, for example `17?42`, and its answer is `<`, `>` or `=`. Every other "
    "answer is the exact result as a plain integer with no sign, spaces or units, e.g. `51`. "
    "Results are never negative: in a subtraction the first number is the larger. "
    "Vary the numbers and the difficulty within the skill."
)


# ``12+7``: two plain literals and one operator, as most questions are. Such a question is read
# without Python's parser (the teacher draws about nine questions per example it keeps, and the
# parser was a third of generating); anything else, or a literal the parser treats specially
# (leading zeros, non-ASCII digits, huge numbers), takes the parser's path.
_NUMBER = re.compile(r"0|[1-9][0-9]{0,30}")
_ONE_OPERATION = re.compile(r"(0|[1-9][0-9]{0,30})([-+*%])(0|[1-9][0-9]{0,30})")


def solve(question: str) -> str:
    """The correct answer to an arithmetic question such as ``(3+4)*2`` or ``17?42``.

    Raises ``ValueError`` for anything that is not integer arithmetic over + - * % and ``?``
    (comparison, answered with ``<``, ``>`` or ``=``).
    """
    simple = _ONE_OPERATION.fullmatch(question)
    if simple:
        return str(_apply(simple[2], int(simple[1]), int(simple[3]), question))
    return _solve_by_parsing(question)


def _apply(symbol: str, left: int, right: int, question: str) -> int:
    if symbol == "%" and right == 0:  # a teacher's question, not ours: it must be rejected, not crash the step
        raise ValueError(f"{question!r} takes a number modulo 0, which has no answer")
    return _BY_SYMBOL[symbol](left, right)


def _solve_by_parsing(question: str) -> str:
    """:func:`solve` through Python's parser: any question."""
    if question.count("?") == 1:
        left, right = (int(solve(side)) for side in question.split("?"))
        return "<" if left < right else ">" if left > right else "="

    def evaluate(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _SYMBOLS:
            return _apply(_SYMBOLS[type(node.op)], evaluate(node.left), evaluate(node.right), question)
        raise ValueError(f"not an arithmetic question: {question!r}")

    try:
        tree = ast.parse(question, mode="eval")
    except SyntaxError as error:
        raise ValueError(f"not an arithmetic question: {question!r}") from error
    return str(evaluate(tree.body))


@functools.lru_cache(maxsize=1 << 16)
def _shared_draft(question: str, answer: str) -> Draft:
    """One :class:`Draft` per problem, shared: drafts are frozen, and building one costs pydantic a validation.

    The offline teacher draws again when a problem is not new, and once a skill's problems are used
    up it draws up to 20 times per example: 97 % of the default run's 210 000 draws repeat a problem
    drawn before (11 700 distinct ones). Sharing them took generation from 0.95 to 0.6 s, the same data.
    """
    return Draft(question=question, answer=answer)


class ArithmeticDomain:
    """Procedural arithmetic with gold skill labels: the gym's CartPole.

    The student sees ``<question>=`` and writes the answer's digits least-significant first
    (``12+39=`` → ``15``), which a tiny model learns far faster than the usual order because
    each digit depends only on digits it has already seen. Scoring is exact match.
    """

    name = "arithmetic"
    brief = BRIEF
    generated_item = GeneratedItem

    def __init__(self) -> None:
        categories: dict[str, list[str]] = {}
        for skill in GENERATORS:
            categories.setdefault(skill.split("/", 1)[0], []).append(skill)
        self.taxonomy = SkillTaxonomy(
            domain=self.name, categories={category: tuple(skills) for category, skills in categories.items()}
        )
        self.sources = {"procedural": ProceduralSource(self)}

    # -- problems -------------------------------------------------------------------------
    def sample(self, skill: str, rng: random.Random) -> Draft:
        """One problem of a leaf skill."""
        try:
            generator = GENERATORS[skill]
        except KeyError:
            raise KeyError(
                f"arithmetic has no skill {skill!r}; known skills: {', '.join(GENERATORS)}"
            ) from None
        return _shared_draft(*generator(rng))

    def draft(self, item: GeneratedItem) -> Draft:
        return Draft(question=item.question.strip(), answer=item.answer.strip())

    # -- the student's text format --------------------------------------------------------
    def student_text(self, problem: Problem) -> StudentText:
        """``<question>=`` and the answer's digits least-significant first."""
        return StudentText(prompt=f"{problem.question}=", target=problem.answer[::-1])

    @staticmethod
    def parse(completion: str) -> str:
        """The student's completion back in plain notation."""
        return completion.strip()[::-1]

    # -- checking -------------------------------------------------------------------------
    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        """Exact match of the parsed completion with the reference answer."""
        scores = []
        for problem, completion in zip(problems, completions, strict=True):
            answer = self.parse(completion)
            correct = answer == problem.answer
            scores.append(Score(value=float(correct), extracted=answer, verdict="correct" if correct else "wrong answer"))
        return scores

    def verify(self, problems: Sequence[Problem]) -> list[bool]:
        return [self.is_correct(problem.question, problem.answer) for problem in problems]

    @staticmethod
    def is_correct(question: str, answer: str) -> bool:
        """Whether ``answer`` is the correct answer to ``question``."""
        try:
            return solve(question) == answer
        except ValueError:
            return False

    @staticmethod
    @functools.lru_cache(maxsize=1 << 16)  # the teacher and the quality filter ask for the same questions' forms
    def canonical(question: str) -> str:
        """``question`` without spaces, with the operands of + and * in sorted order.

        ``12 + 7``, ``7+12`` and ``7+12`` share a key: they are the same problem to a student.
        Anything that does not parse is only stripped of spaces.
        """
        compact = "".join(question.split())
        if compact.count("?") == 1:
            return "?".join(ArithmeticDomain.canonical(side) for side in compact.split("?"))
        if _NUMBER.fullmatch(compact):
            return compact
        simple = _ONE_OPERATION.fullmatch(compact)
        if simple:
            left, symbol, right = simple.groups()
            if symbol in "+*":
                left, right = sorted((left, right))
            return f"({left}{symbol}{right})"
        return _canonical_by_parsing(compact)


def _canonical_by_parsing(compact: str) -> str:
    """:meth:`ArithmeticDomain.canonical` of a question without spaces, through Python's parser: any question."""
    try:
        tree = ast.parse(compact, mode="eval")
    except SyntaxError:
        return compact

    def render(node: ast.AST) -> str:
        if isinstance(node, ast.BinOp) and type(node.op) in _SYMBOLS:
            left, right = render(node.left), render(node.right)
            if isinstance(node.op, (ast.Add, ast.Mult)):
                left, right = sorted((left, right))
            return f"({left}{_SYMBOLS[type(node.op)]}{right})"
        return ast.unparse(node)

    return render(tree.body)


ARITHMETIC = ArithmeticDomain()
