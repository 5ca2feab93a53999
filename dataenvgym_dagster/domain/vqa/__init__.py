"""Visual question answering: procedural scenes, GQA and NaturalBench, answered by a PaliGemma student."""

from dataenvgym_dagster.domain.vqa.domain import VQA, VqaDomain

__all__ = ["VQA", "VqaDomain"]
