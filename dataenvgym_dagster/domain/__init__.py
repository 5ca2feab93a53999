"""Pure, typed domain logic: benchmarks, skills, environment states, policies, plans, teachers.

Nothing in this package imports Dagster or torch.
"""
