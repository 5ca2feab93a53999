"""The offline ``arithmetic`` domain: procedural problems with gold skill labels."""

from dataenvgym_dagster.domain.arithmetic.domain import ARITHMETIC, ArithmeticDomain

__all__ = ["ARITHMETIC", "ArithmeticDomain"]
