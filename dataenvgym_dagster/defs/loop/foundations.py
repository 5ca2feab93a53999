"""Per-domain assets shared by every experiment: benchmark, pretraining corpus, base student."""


import polars as pl
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, Output, asset

from dataenvgym_dagster.defs.deployment import GPU_POOL, step_tags
from dataenvgym_dagster.defs.metadata import markdown_table, training_metadata
from dataenvgym_dagster.defs.partitions import domain_partitions
from dataenvgym_dagster.defs.resources import WAREHOUSE_TABLE, TeachingHome
from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.experiments import ExperimentCatalog
from dataenvgym_dagster.loop import steps
from dataenvgym_dagster.loop.checkpoints import StudentCheckpoint

GROUP = "foundations"


def foundation_assets(catalog: ExperimentCatalog) -> list[AssetsDefinition]:
    partitions = domain_partitions(catalog)

    @asset(partitions_def=partitions, group_name=GROUP, metadata={WAREHOUSE_TABLE: "benchmark_problems"})
    def benchmark_splits(context: AssetExecutionContext, teaching: TeachingHome) -> Output[pl.DataFrame]:
        """Validation and test problems from the domain's configured benchmark source, with gold skills.

        Test problems reach the teacher only as questions to avoid; nothing trains on them."""
        domain = get_domain(context.partition_key)
        frame = steps.benchmark_splits(domain, teaching.catalog().domain(domain.name).benchmark)
        counts = frame.group_by("split", "skill", maintain_order=True).len().pivot("split", index="skill", values="len")
        return Output(frame, metadata={"rows": len(frame), "per_skill": markdown_table(counts)})

    @asset(partitions_def=partitions, group_name=GROUP, metadata={WAREHOUSE_TABLE: "pretraining_corpus"})
    def pretraining_corpus(context: AssetExecutionContext, teaching: TeachingHome) -> Output[pl.DataFrame]:
        """A broad but shallow corpus: all skills in uneven amounts, for the base student."""
        domain = get_domain(context.partition_key)
        frame = steps.pretraining_corpus(domain, teaching.catalog().domain(domain.name).base_student)
        counts = frame.group_by("skill", maintain_order=True).len().sort("skill")
        return Output(frame, metadata={"rows": len(frame), "per_skill": markdown_table(counts)})

    @asset(partitions_def=partitions, group_name=GROUP, ins={"corpus": AssetIn("pretraining_corpus")}, pool=GPU_POOL, op_tags=step_tags(GPU_POOL) or None)
    def base_student(context: AssetExecutionContext, teaching: TeachingHome, corpus: pl.DataFrame) -> Output[StudentCheckpoint]:
        """The domain's student before teaching: the tiny Llama pretrained on the corpus, or the named hub model / local folder."""
        domain = get_domain(context.partition_key)
        settings = teaching.catalog().domain(domain.name)
        checkpoint, report = steps.pretrain_base_student(
            domain, corpus, settings.base_student, teaching.checkpoint_home, context.log.info, student=settings.student,
            store=teaching.object_store(),
        )
        if report is None:
            return Output(checkpoint, metadata={"model": checkpoint.reference, "sha256": checkpoint.sha256, "files": len(checkpoint.files)})
        return Output(checkpoint, metadata={"path": checkpoint.reference, "sha256": checkpoint.sha256, **training_metadata(report)})

    return [benchmark_splits, pretraining_corpus, base_student]
