"""The ``math`` domain: MATH (Hendrycks et al.) files in three layouts, and sympy-checked procedural problems."""

from dataenvgym_dagster.domain.math.domain import MATH, MathDomain, MathItem

__all__ = ["MATH", "MathDomain", "MathItem"]
