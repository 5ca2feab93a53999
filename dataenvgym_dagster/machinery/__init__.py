"""Machinery behind narrow interfaces: student training and evaluation, the warehouse.

No Dagster imports here either; the orchestration layer calls into these modules.
"""
