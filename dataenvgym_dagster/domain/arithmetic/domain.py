"""The arithmetic domain: skills, benchmark splits, student text format and answer checking."""

from __future__ import annotations

import ast
import operator
import random
from collections.abc import Mapping

from dataenvgym_dagster.domain.arithmetic.generators import GENERATORS
from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.types import Problem

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Mod: operator.mod}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Mod: "%"}


def solve(question: str) -> str:
    """The correct answer to an arithmetic question such as ``(3+4)*2`` or ``17?42``.

    Raises ``ValueError`` for anything that is not integer arithmetic over + - * % and ``?``
    (comparison, answered with ``<``, ``>`` or ``=``).
    """
    if question.count("?") == 1:
        left, right = (int(solve(side)) for side in question.split("?"))
        return "<" if left < right else ">" if left > right else "="

    def evaluate(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](evaluate(node.left), evaluate(node.right))
        raise ValueError(f"not an arithmetic question: {question!r}")

    try:
        tree = ast.parse(question, mode="eval")
    except SyntaxError as error:
        raise ValueError(f"not an arithmetic question: {question!r}") from error
    return str(evaluate(tree.body))


class ArithmeticDomain:
    """Procedural arithmetic with gold skill labels: the gym's CartPole.

    The student sees ``<question>=`` and writes the answer's digits least-significant first
    (``12+39=`` → ``15``), which a tiny model learns far faster than the usual order because
    each digit depends only on digits it has already seen.
    """

    name = "arithmetic"

    def __init__(self) -> None:
        categories: dict[str, list[str]] = {}
        for skill in GENERATORS:
            categories.setdefault(skill.split("/", 1)[0], []).append(skill)
        self.taxonomy = SkillTaxonomy(
            domain=self.name, categories={category: tuple(skills) for category, skills in categories.items()}
        )

    # -- problems -------------------------------------------------------------------------
    def sample(self, skill: str, rng: random.Random) -> tuple[str, str]:
        """One (question, answer) for a leaf skill."""
        try:
            generator = GENERATORS[skill]
        except KeyError:
            raise KeyError(
                f"arithmetic has no skill {skill!r}; known skills: {', '.join(GENERATORS)}"
            ) from None
        return generator(rng)

    def benchmark_splits(self, per_skill: Mapping[str, int], seed: int) -> dict[str, list[Problem]]:
        """Fixed, disjoint splits stratified by skill: ``per_skill[split]`` problems per skill.

        No question appears twice within or across splits.
        """
        rng = random.Random(seed)
        seen: set[str] = set()
        splits: dict[str, list[Problem]] = {split: [] for split in per_skill}
        for skill in self.taxonomy.skills:
            for split, count in per_skill.items():
                for index in range(count):
                    question, answer = self._unseen(skill, rng, seen)
                    splits[split].append(
                        Problem(
                            example_id=f"{split}/{skill}/{index:04d}", question=question, answer=answer, skill=skill
                        )
                    )
        return splits

    def _unseen(self, skill: str, rng: random.Random, seen: set[str]) -> tuple[str, str]:
        for _ in range(10_000):
            question, answer = self.sample(skill, rng)
            if question not in seen:
                seen.add(question)
                return question, answer
        raise ValueError(f"{skill} has too few distinct problems for the requested split sizes")

    # -- the student's text format --------------------------------------------------------
    @staticmethod
    def prompt(question: str) -> str:
        return f"{question}="

    @staticmethod
    def target(answer: str) -> str:
        """The answer as the student writes it: digits least-significant first."""
        return answer[::-1]

    @staticmethod
    def parse(completion: str) -> str:
        """The student's completion back in plain notation."""
        return completion.strip()[::-1]

    # -- checking -------------------------------------------------------------------------
    @staticmethod
    def canonical(question: str) -> str:
        """``question`` without spaces, with the operands of + and * in sorted order.

        ``12 + 7``, ``7+12`` and ``7+12`` share a key: they are the same problem to a student.
        Anything that does not parse is only stripped of spaces.
        """
        compact = "".join(question.split())
        if compact.count("?") == 1:
            return "?".join(ArithmeticDomain.canonical(side) for side in compact.split("?"))
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

    @staticmethod
    def verify(question: str, answer: str) -> bool:
        """Whether ``answer`` is the correct answer to ``question``."""
        try:
            return solve(question) == answer
        except ValueError:
            return False


ARITHMETIC = ArithmeticDomain()
