"""The teaching loop's steps, each a plain function from inputs to outputs.

Orchestration (``dataenvgym_dagster.defs``) calls exactly one of these per asset; nothing here
imports Dagster.
"""
