"""The ``code`` domain: procedural function writing, HumanEval and LiveCodeBench, judged in the sandbox."""

from dataenvgym_dagster.domain.code.domain import CODE, CodeDomain, CodeItem

__all__ = ["CODE", "CodeDomain", "CodeItem"]
