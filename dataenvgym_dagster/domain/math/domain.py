"""The math domain: MATH's seven types × five levels, boxed answers judged by math-verify."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from pydantic import BaseModel, Field

from dataenvgym_dagster.domain.benchmark import ProceduralSource
from dataenvgym_dagster.domain.math.answers import boxed_answer
from dataenvgym_dagster.domain.math.equivalence import EquivalencePool, shared_pool
from dataenvgym_dagster.domain.math.generators import LEVELS, TEMPLATES, TYPES, resolve
from dataenvgym_dagster.domain.math.sources import UNKNOWN_LEVEL, Math500Source, MathOriginalSource, MathParquetSource
from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.types import Draft, Problem, Score, StudentText

BRIEF = (
    "The domain is competition mathematics in the style of the MATH benchmark (Hendrycks et al.): seven types "
    "(prealgebra, algebra, number theory, counting and probability, geometry, intermediate algebra, precalculus), "
    "each at difficulty levels 1 (easiest) to 5. A skill is named '<type>/level_<n>'. Write each problem in LaTeX "
    "as a competition problem states it, with mathematics between $ signs, and with a single exact final answer "
    "(an integer, a common fraction such as \\frac{3}{4}, a simplified radical such as 2\\sqrt{3}, an expression "
    "in \\pi, or a short expression). Write a concise worked solution that ends with the final answer in "
    "\\boxed{...}, exactly once at the end, with no units or words inside the box. Vary the setting, the numbers "
    "and the steps within the skill; match the level's difficulty."
)


class MathItem(BaseModel):
    """One teacher-written MATH-style problem: a LaTeX question and a worked solution ending in a boxed answer."""

    question: str = Field(description="The problem in LaTeX, exactly as the student sees it.")
    solution: str = Field(description="A worked solution whose last \\boxed{...} holds the final answer.")


_SPACES = re.compile(r"\s+")
_SURFACE = (("\\left", ""), ("\\right", ""), ("\\,", ""), ("\\!", ""), ("\\;", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"))


class MathDomain:
    """MATH-style problems: gold skills ``<type>/level_<n>``, the student writes ``\\boxed{answer}``.

    The student reads the problem and a newline and is trained to write ``\\boxed{<answer>}``: the
    tiny CPU student learns short answers, not hundreds of tokens of solution. A real student
    (``student.target: solution``) is trained on the worked solution ending in the boxed answer
    instead (:meth:`solution_text`), as the paper's students are. Scoring extracts the
    completion's final boxed answer (see :func:`~.answers.boxed_answer`) and compares it with the reference by math-verify (gold first) in worker
    processes with a per-item timeout.
    """

    name = "math"
    brief = BRIEF
    generated_item = MathItem
    solution_item = MathItem  # the teacher writes a worked solution with every problem either way

    def __init__(self, pool: EquivalencePool | None = None) -> None:
        self.taxonomy = SkillTaxonomy(
            domain=self.name, categories={t: tuple(f"{t}/level_{level}" for level in LEVELS) for t in TYPES}
        )
        self.sources = {
            "procedural": ProceduralSource(self),
            "math_original": MathOriginalSource(),
            "math_parquet": MathParquetSource(),
            "math500": Math500Source(),
        }
        self._pool = pool

    @property
    def pool(self) -> EquivalencePool:
        return self._pool or shared_pool()

    # -- problems -------------------------------------------------------------------------
    def sample(self, skill: str, rng: random.Random) -> Draft:
        """One procedural problem of ``skill``; ``<type>/level_unknown`` (MATH's 'Level ?') draws a random level."""
        category, _, level = skill.partition("/")
        if level == UNKNOWN_LEVEL and category in TYPES:
            skill = f"{category}/level_{rng.choice(LEVELS)}"
        try:
            template = TEMPLATES[skill]
        except KeyError:
            raise KeyError(f"math has no skill {skill!r}; known skills: {', '.join(TEMPLATES)}") from None
        params = template.draw(rng)
        question, answer = resolve(skill, params)
        return Draft(
            question=question, answer=answer,
            payload={"solution": template.solution(params), "generator": skill, "params": params},
        )

    def draft(self, item: MathItem) -> Draft:
        """The teacher's problem with its solution's final boxed answer as the reference ('' if it has none)."""
        solution = item.solution.strip()
        return Draft(question=item.question.strip(), answer=boxed_answer(solution) or "", payload={"solution": solution})

    # -- the student's text format --------------------------------------------------------
    def student_text(self, problem: Problem) -> StudentText:
        return StudentText(prompt=f"{problem.question}\n", target=f"\\boxed{{{problem.answer}}}")

    def solution_text(self, problem: Problem) -> StudentText:
        """The same prompt; the target is the worked solution (payload ``solution``), which ends in its boxed
        answer (one is appended if the solution boxes none). A problem without a solution: ``\\boxed{answer}``."""
        solution = str(problem.payload.get("solution") or "").strip()
        if not solution:
            return self.student_text(problem)
        if boxed_answer(solution) is None:
            solution += f"\nThe answer is $\\boxed{{{problem.answer}}}$."
        return StudentText(prompt=f"{problem.question}\n", target=solution)

    # -- checking -------------------------------------------------------------------------
    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        """Each completion's final boxed answer against the reference, by math-verify (gold first).

        Verdicts: ``correct``, ``wrong answer``, ``no boxed answer``, ``unparsable answer``,
        ``unparsable reference``, ``timeout`` (the comparison outlived the pool's per-item
        timeout) or ``error: …``. An answer identical to the reference is correct without a
        worker round trip.
        """
        if len(problems) != len(completions):
            raise ValueError(f"score needs one completion per problem, got {len(completions)} for {len(problems)}")
        extracted = [boxed_answer(completion) for completion in completions]
        to_judge = [
            index for index, (problem, answer) in enumerate(zip(problems, extracted, strict=True))
            if answer and answer != problem.answer
        ]
        judged = dict(zip(to_judge, self.pool.judge_all([("equivalent", problems[i].answer, extracted[i]) for i in to_judge]), strict=True))
        scores = []
        for index, (problem, answer) in enumerate(zip(problems, extracted, strict=True)):
            if not answer:
                verdict = "no boxed answer"
            else:
                verdict = judged.get(index, "correct")
            scores.append(Score(value=float(verdict == "correct"), extracted=answer or "", verdict=verdict))
        return scores

    def verify(self, problems: Sequence[Problem]) -> list[bool]:
        """Whether each problem's answer is right, as far as it can be checked.

        * Procedural problems (payload ``generator`` and ``params``): the question is re-rendered
          and the answer re-solved with sympy from the parameters; both must match, and the
          solution's final boxed answer must be the answer.
        * Teacher-written problems: the answer must be non-empty and parse with math-verify; if
          the payload has a solution, its final boxed answer must be equivalent to the answer; and where
          the question is an equation in one unknown or asks to compute one closed expression,
          sympy re-solves it and the answer must equal its result. Other questions are accepted
          on a parsable answer alone (their correctness is the teacher's).
        A check that times out counts as a failure.
        """
        tasks: list[tuple[int, tuple[str, ...]]] = []
        ok = [True] * len(problems)
        for index, problem in enumerate(problems):
            answer = problem.answer.strip()
            solution = problem.payload.get("solution")
            if not answer or (solution is not None and boxed_answer(str(solution)) is None):
                ok[index] = False
                continue
            boxed = boxed_answer(str(solution)) if solution is not None else None
            if boxed is not None and boxed != answer:
                tasks.append((index, ("equivalent", answer, boxed)))
            generator, params = problem.payload.get("generator"), problem.payload.get("params")
            if generator in TEMPLATES and isinstance(params, dict):
                try:
                    question, expected = resolve(generator, params)
                except Exception:  # noqa: BLE001 -- parameters that do not fit the template are a wrong answer
                    ok[index] = False
                    continue
                if question != problem.question:
                    ok[index] = False
                elif expected != answer:
                    tasks.append((index, ("equivalent", expected, answer)))
            else:
                tasks.append((index, ("resolve", problem.question, answer)))
        verdicts = self.pool.judge_all([task for _, task in tasks])
        for (index, _), verdict in zip(tasks, verdicts, strict=True):
            if verdict not in ("correct", "unchecked"):
                ok[index] = False
        return ok

    @staticmethod
    def canonical(question: str) -> str:
        """``question`` in lower case without whitespace, LaTeX spacing commands or ``\\left``/``\\right``,
        with ``\\dfrac``/``\\tfrac`` as ``\\frac`` and without a final full stop.

        Two questions share a key when they differ only in such surface form: the same problem
        to a student. Numbers keep their order (``$x + 3 = 5$`` and ``$x + 5 = 3$`` differ).
        """
        compact = _SPACES.sub("", question.lower())
        for old, new in _SURFACE:
            compact = compact.replace(old, new)
        return compact.rstrip(".")


MATH = MathDomain()
