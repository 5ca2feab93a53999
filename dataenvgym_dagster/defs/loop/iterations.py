"""The teaching loop, unrolled: one asset group per iteration, partitioned by domain × experiment.

Iteration 0 records the experiment's settings and evaluates the base student. Iteration t ≥ 1:

    benchmark_splits (+ iteration t-1's skill_taxonomy) ─▶ skill_taxonomy
    iteration t-1's validation_evaluation + skill_taxonomy
        (+ iteration t-1's environment_state, data_generation_plan) ─▶ environment_state
        ─▶ data_generation_plan ─▶ generated_dataset
        ─▶ student_checkpoint (from iteration t-1's student_checkpoint) ─▶ validation_evaluation, test_evaluation
           (one step, ``it<t>_evaluate``, that loads the checkpoint once for both)

Keys are short (``it1_val_eval`` for iteration 1's validation_evaluation): see asset_names.py.

Dagster forbids cycles between asset keys, so each iteration has its own keys; that is also
what lets Dagster order a backfill by iteration and mark later iterations stale.
"""


from collections import Counter
from collections.abc import Iterator
from typing import Any

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Config,
    Output,
    PartitionsDefinition,
    asset,
    multi_asset,
)

from dataenvgym_dagster.agents.loading import PlanRefusedError
from dataenvgym_dagster.asset_names import iteration_asset_name
from dataenvgym_dagster.defs import image_grid
from dataenvgym_dagster.defs.metadata import (
    evaluation_metadata,
    generation_metadata,
    learning_curve_metadata,
    markdown_table,
    training_metadata,
)
from dataenvgym_dagster.defs.deployment import GPU_POOL, TEACHER_POOL, step_tags
from dataenvgym_dagster.defs.partitions import DOMAIN, EXPERIMENT, SAME_DOMAIN, loop_partitions
from dataenvgym_dagster.defs.resources import WAREHOUSE_TABLE, TeachingHome
from dataenvgym_dagster.defs.teacher import TeacherResource
from dataenvgym_dagster.domain.discovery import DiscoveredSkills
from dataenvgym_dagster.domain.environments.base import EnvironmentState
from dataenvgym_dagster.domain.plans import DataGenerationPlan
from dataenvgym_dagster.domain.protocol import SPLITS, Domain
from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.quality import kept_test_questions
from dataenvgym_dagster.experiments import ExperimentCatalog, ExperimentSettings
from dataenvgym_dagster.loop import steps
from dataenvgym_dagster.loop.checkpoints import StudentCheckpoint
from dataenvgym_dagster.machinery.student.backend import PALIGEMMA
from dataenvgym_dagster.machinery.warehouse import TABLES

NO_TEST_QUESTION_CHECK = "no_test_question_kept"


class GivenPlan(Config):
    """Run config of ``data_generation_plan``: a plan (JSON) given from outside, e.g. by a gym ``step``.

    Empty (the default): the experiment's policy makes the plan. A given plan is checked by the
    environment like any other and recorded under the policy name and version it carries.
    """

    plan: str = ""


def iteration_key(iteration: int, name: str) -> AssetKey:
    """``it<t>_<short name>`` (``it1_val_eval`` for ``validation_evaluation``): one flat key, because the
    UI labels graph nodes (and the stubs that link to other groups) with a key's last part only, cut
    past 18 characters, so that part has to say the iteration and the artefact briefly (see asset_names)."""
    return AssetKey(iteration_asset_name(iteration, name))


def _partition(context: AssetExecutionContext, teaching: TeachingHome) -> tuple[Domain, str, ExperimentSettings]:
    dimensions = context.partition_key.keys_by_dimension
    catalog = teaching.catalog()  # read at run time: an experiment added to the file runs without a restart
    # The UI offers every domain × experiment; a pair the experiment does not name fails here, first.
    catalog.check_pair(dimensions[DOMAIN], dimensions[EXPERIMENT])
    return get_domain(dimensions[DOMAIN]), dimensions[EXPERIMENT], catalog.experiment(dimensions[EXPERIMENT])


def iteration_assets(iteration: int, catalog: ExperimentCatalog) -> list[AssetsDefinition]:
    """The assets of one iteration; iteration 0 has only the settings, the base checkpoint and its evaluations."""
    partitions = loop_partitions(catalog)
    group = f"iteration_{iteration}"

    def loop_asset(name: str, ins: dict[str, AssetIn], table: str | None = None, description: str | None = None, checks=(), pool: str | None = None):
        return asset(
            pool=pool,
            op_tags=step_tags(pool) or None,
            key=iteration_key(iteration, name),
            ins=ins,
            partitions_def=partitions,
            group_name=group,
            metadata={WAREHOUSE_TABLE: table} if table else None,
            description=description,
            check_specs=[AssetCheckSpec(check, asset=iteration_key(iteration, name), blocking=True) for check in checks],
        )

    checkpoint = _checkpoint_asset(iteration, loop_asset)
    evaluations = _evaluation_assets(iteration, partitions, group)
    if iteration == 0:
        return [_experiment_config_asset(loop_asset), checkpoint, evaluations]

    taxonomy_ins = {"benchmark": AssetIn("benchmark_splits", partition_mapping=SAME_DOMAIN)}
    if iteration > 1:
        taxonomy_ins["previous"] = AssetIn(iteration_key(iteration - 1, "skill_taxonomy"))

    @loop_asset("skill_taxonomy", taxonomy_ins, pool=TEACHER_POOL)
    def skill_taxonomy(context: AssetExecutionContext, teaching: TeachingHome, teacher: TeacherResource, **inputs: Any) -> Output[DiscoveredSkills]:
        """The skills of the validation questions, organised into categories, versioned per iteration."""
        domain, experiment, settings = _partition(context, teaching)
        discoverer = teacher.discoverer(domain, settings, experiment=experiment, iteration=iteration, log=context.log.info)
        previous: DiscoveredSkills | None = inputs.get("previous")
        discovered = steps.skill_taxonomy(domain, discoverer, inputs["benchmark"], previous)
        taxonomy, mapping = steps.taxonomy_rows(discovered, previous, domain=domain.name, experiment=experiment, iteration=iteration)
        _write(teaching, "skill_taxonomies", domain.name, experiment, iteration, taxonomy)
        _write(teaching, "skill_mappings", domain.name, experiment, iteration, mapping)
        moved = mapping.filter(pl.col("old_skill") != pl.col("new_skill"))
        return Output(discovered, metadata={
            "discoverer": discovered.discoverer, "version": taxonomy["version"][0], "skills": len(discovered.taxonomy.skills),
            "categories": len(discovered.taxonomy.categories), "changed_skills": len(moved),
            "skills_by_category": markdown_table(taxonomy.select("category", "skill", "questions")),
        })

    state_ins = {
        "validation": AssetIn(iteration_key(iteration - 1, "validation_evaluation")),
        "taxonomy": AssetIn(iteration_key(iteration, "skill_taxonomy")),
    }
    if iteration > 1:
        state_ins["previous_state"] = AssetIn(iteration_key(iteration - 1, "environment_state"))
        state_ins["previous_plan"] = AssetIn(iteration_key(iteration - 1, "data_generation_plan"))

    @loop_asset("environment_state", state_ins, "environment_states")
    def environment_state(context: AssetExecutionContext, teaching: TeachingHome, **inputs: Any) -> Output[EnvironmentState]:
        """What the environment shows the policy: examples (Open-Ended), skills (Skill-List) or skill trees (Skill-Tree)."""
        _, experiment, settings = _partition(context, teaching)
        state = steps.environment_state(
            settings, inputs["validation"], inputs["taxonomy"], experiment=experiment, iteration=iteration,
            previous_state=inputs.get("previous_state"), previous_plan=inputs.get("previous_plan"),
        )
        rows = pl.DataFrame(state.warehouse_rows())
        shown = rows.filter(pl.col("kind") != "example") if settings.environment != "open_ended" else rows.filter(pl.col("accuracy") == 0).head(20)
        return Output(state, metadata={
            "environment": settings.environment, "nodes": len(rows),
            "state": markdown_table(
                shown.select("kind", "node", "parent", "n", "accuracy", "answer_loss", "previous_accuracy", "allocation"),
                percent=["accuracy", "previous_accuracy", "allocation"],
            ),
        })

    @loop_asset("data_generation_plan", {"state": AssetIn(iteration_key(iteration, "environment_state"))}, "data_generation_plans", pool=TEACHER_POOL)
    def data_generation_plan(
        context: AssetExecutionContext, teaching: TeachingHome, teacher: TeacherResource, state: EnvironmentState, config: GivenPlan
    ) -> Output[DataGenerationPlan]:
        """The policy's action: how this iteration's data budget is spent, and why (or the plan a gym step gave)."""
        domain, experiment, settings = _partition(context, teaching)
        try:
            if config.plan:
                plan = steps.given_plan(state, settings, config.plan)
            else:
                proposer = teacher.engine(domain, settings, experiment=experiment, iteration=iteration, log=context.log.info)
                chat = teacher.chat(domain.name, experiment=experiment, iteration=iteration, log=context.log.info)
                plan = steps.data_generation_plan(state, settings, proposer, chat)
        except PlanRefusedError as refused:  # the refusal and its reasons stay in policy_actions, under this partition
            here = refused.plan.model_copy(update={"domain": domain.name, "experiment": experiment, "iteration": iteration})
            _write(teaching, "policy_actions", domain.name, experiment, iteration,
                   pl.DataFrame(here.refusal_rows(refused.reasons), schema=TABLES["policy_actions"]))
            raise
        _write(teaching, "policy_actions", domain.name, experiment, iteration, pl.DataFrame(plan.action_rows(), schema=TABLES["policy_actions"]))
        table = pl.DataFrame(plan.warehouse_rows()).select("skill", "parent_skill", "count", "rationale")
        actions = Counter(action.action for action in plan.actions)
        return Output(plan, metadata={
            "environment": plan.environment, "policy": plan.policy, "policy_version": plan.policy_version,
            "examples_requested": plan.total,
            "entries": len(plan.entries), "actions": ", ".join(f"{k}: {v}" for k, v in sorted(actions.items())),
            "plan": markdown_table(table.head(40)),
        })

    dataset_ins = {
        "plan": AssetIn(iteration_key(iteration, "data_generation_plan")),
        "benchmark": AssetIn("benchmark_splits", partition_mapping=SAME_DOMAIN),
        "previous": AssetIn(iteration_key(iteration - 1, "student_checkpoint")),
        **{f"earlier_{t}": AssetIn(iteration_key(t, "generated_dataset")) for t in range(1, iteration)},
    }

    # A step holds one pool: the teacher's, unless an experiment's already_solved filter runs the student.
    dataset_pool = GPU_POOL if any(run.settings.quality.drop_solved for run in catalog.runs.values()) else TEACHER_POOL

    @loop_asset("generated_dataset", dataset_ins, "generated_examples", checks=[NO_TEST_QUESTION_CHECK], pool=dataset_pool)
    def generated_dataset(context: AssetExecutionContext, teaching: TeachingHome, teacher: TeacherResource, **inputs: Any) -> Iterator[Output | AssetCheckResult]:
        """The teacher's training examples for the plan, each with its quality verdict."""
        domain, experiment, settings = _partition(context, teaching)
        plan: DataGenerationPlan = inputs["plan"]
        student = teaching.catalog().student(domain.name, experiment)
        drift = teaching.catalog().domain(domain.name).offline_drift
        engine = teacher.engine(
            domain, settings, experiment=experiment, iteration=iteration, log=context.log.info, target=student.target, drift=drift,
        )
        frame, result = steps.generated_dataset(
            domain, engine, plan, settings, benchmark=inputs["benchmark"],
            earlier_generated=[inputs[f"earlier_{t}"] for t in range(1, iteration)], previous=inputs["previous"],
            student=student, home=teaching.checkpoint_home,
            image_generator=teaching.catalog().domain(domain.name).image_generator, store=teaching.object_store(),
        )
        for failure in result.failures:  # what the teacher could not make, and why: in the run log as well as the metadata
            context.log.warning(f"teacher {engine.name}: {failure.missing} examples missing for {failure.entry_id}: {failure.reason}")
        passed = int(frame["passed_quality_checks"].sum())
        if passed == 0:
            raise ValueError(f"no generated example for {context.partition_key} passed the quality checks; see generated_examples")
        # The LLM teacher reports calls, cache hits, tokens and cost; the offline teacher has no usage.
        usage = getattr(engine, "usage", dict)()
        images = image_grid.dataset_grid(frame, teaching.path) if steps.student_family(domain) == PALIGEMMA else {}
        yield Output(frame, metadata={**generation_metadata(frame, result), **usage, **images})
        # A blocking check: the student never trains on a test question, whatever the teacher or filters did.
        leaked = kept_test_questions(frame.filter(pl.col("passed_quality_checks"))["question"], steps.held_out_test_questions(inputs["benchmark"]))
        yield AssetCheckResult(
            check_name=NO_TEST_QUESTION_CHECK, passed=not leaked, severity=AssetCheckSeverity.ERROR,
            metadata={"test_questions_kept": len(leaked), "examples": ", ".join(leaked[:10])},
            description=None if not leaked else "generated examples equal test questions; training is blocked",
        )

    return [checkpoint, evaluations, skill_taxonomy, environment_state, data_generation_plan, generated_dataset]


def _checkpoint_asset(iteration: int, loop_asset) -> AssetsDefinition:
    if iteration == 0:

        @loop_asset("student_checkpoint", {"base": AssetIn("base_student", partition_mapping=SAME_DOMAIN)})
        def base_checkpoint(context: AssetExecutionContext, teaching: TeachingHome, base: StudentCheckpoint) -> Output[StudentCheckpoint]:
            """Iteration 0's student is the domain's base student (or the experiment's own model), before any teaching."""
            domain, experiment, _ = _partition(context, teaching)
            initial = steps.initial_checkpoint(base, teaching.catalog().student(domain.name, experiment))
            return Output(initial, metadata={"checkpoint": initial.reference, "sha256": initial.sha256})

        return base_checkpoint

    ins = {
        "targeted": AssetIn(iteration_key(iteration, "generated_dataset")),
        "previous": AssetIn(iteration_key(iteration - 1, "student_checkpoint")),
        "base": AssetIn("base_student", partition_mapping=SAME_DOMAIN),
        "pretraining": AssetIn("pretraining_corpus", partition_mapping=SAME_DOMAIN),
        **{f"earlier_{t}": AssetIn(iteration_key(t, "generated_dataset")) for t in range(1, iteration)},
    }

    @loop_asset("student_checkpoint", ins, pool=GPU_POOL)
    def student_checkpoint(context: AssetExecutionContext, teaching: TeachingHome, **inputs: Any) -> Output[StudentCheckpoint]:
        """The student trained on this iteration's generated data, per the experiment's recipe."""
        domain, experiment, settings = _partition(context, teaching)
        checkpoint, report, lineage = steps.train_iteration_student(
            domain, settings, experiment=experiment, iteration=iteration,
            previous=inputs["previous"], base=inputs["base"], targeted=inputs["targeted"],
            earlier_generated=[inputs[f"earlier_{t}"] for t in range(1, iteration)],
            pretraining=inputs["pretraining"], home=teaching.checkpoint_home, progress=context.log.info,
            student=teaching.catalog().student(domain.name, experiment), store=teaching.object_store(),
        )
        _write(teaching, "lineage", domain.name, experiment, iteration, lineage)
        run = steps.training_run_row(report, domain=domain.name, experiment=experiment, iteration=iteration, recipe=settings.training.recipe)
        _write(teaching, "training_runs", domain.name, experiment, iteration, run)
        return Output(checkpoint, metadata={
            "path": checkpoint.reference, "kind": checkpoint.kind, "base": checkpoint.base_model.reference,
            "sha256": checkpoint.sha256, **training_metadata(report),
        })

    return student_checkpoint


def _evaluation_assets(iteration: int, partitions: PartitionsDefinition, group: str) -> AssetsDefinition:
    """Both evaluations of the iteration's checkpoint, in one step (``it<t>_evaluate``).

    The two splits are evaluated one after the other by the same process, so the checkpoint is
    loaded once (a vLLM engine started once) wherever the step runs: in process, in a fresh process
    per step (the daemon, the cluster) or on a GPU node. Each stays an asset of its own, with its
    own table file, metadata and lineage, and either can be materialised alone.
    """
    checkpoint, benchmark = iteration_key(iteration, "student_checkpoint"), AssetKey("benchmark_splits")
    deps = [AssetDep(checkpoint), AssetDep(benchmark, partition_mapping=SAME_DOMAIN)]
    specs = [
        AssetSpec(
            iteration_key(iteration, f"{split}_evaluation"), deps=deps, group_name=group, partitions_def=partitions,
            metadata={WAREHOUSE_TABLE: "evaluation_results"}, description=f"The iteration's student scored on the {split} split.",
        ).with_io_manager_key("io_manager")  # a table the warehouse IO manager stores, as the single assets' outputs
        for split in SPLITS
    ]
    ins = {"checkpoint": AssetIn(checkpoint), "benchmark": AssetIn(benchmark)}  # the mapping is on the dependency

    @multi_asset(
        name=f"it{iteration}_evaluate", specs=specs, ins=ins, can_subset=True, pool=GPU_POOL, op_tags=step_tags(GPU_POOL) or None,
    )
    def evaluate(context: AssetExecutionContext, teaching: TeachingHome, checkpoint: StudentCheckpoint, benchmark: pl.DataFrame) -> Iterator[Output]:
        domain, experiment, _ = _partition(context, teaching)
        student = teaching.catalog().student(domain.name, experiment)
        backend = steps.student_backend(domain, student)  # loads the checkpoint once for both splits, frees it at the end
        for split in SPLITS:  # validation first: the next iteration reads it
            key = iteration_key(iteration, f"{split}_evaluation")
            if key not in context.selected_asset_keys:
                continue
            results, report = steps.evaluate_student(
                domain, checkpoint, benchmark, split, experiment=experiment, iteration=iteration, student=student,
                home=teaching.checkpoint_home, progress=lambda message, split=split: context.log.info(f"{split}: {message}"),
                store=teaching.object_store(), backend=backend,
            )
            metadata = evaluation_metadata(results, report)
            if steps.student_family(domain) == PALIGEMMA:  # a grid of images with question, answer and prediction
                metadata.update(image_grid.evaluation_grid(results, benchmark, teaching.path))
            if split == "test":
                metadata.update(learning_curve_metadata(teaching.warehouse(), results, teaching.path / "plots"))
            yield Output(results, output_name=context.assets_def.get_output_name_for_asset_key(key), metadata=metadata)

    return evaluate


def _write(teaching: TeachingHome, table: str, domain: str, experiment: str, iteration: int, rows: pl.DataFrame) -> None:
    """Rows an asset records beside its main output, stored under the asset's partition."""
    teaching.warehouse().write(table, [domain, experiment, f"iteration_{iteration}"], rows)


def _experiment_config_asset(loop_asset) -> AssetsDefinition:
    @loop_asset("experiment_config", {}, "experiment_runs")
    def experiment_config(context: AssetExecutionContext, teaching: TeachingHome) -> Output[pl.DataFrame]:
        """What this domain × experiment partition runs (environment, policy, teacher, seed, budget), for SQL comparisons."""
        domain, experiment, settings = _partition(context, teaching)
        name = teaching.catalog().run(experiment).name
        row = steps.experiment_row(domain.name, experiment, name, settings, teaching.catalog().domain(domain.name).offline_drift)
        return Output(row, metadata={
            "environment": settings.environment, "policy": settings.policy, "policy_version": row["policy_version"][0],
            "seed": settings.seed, "teacher": settings.teacher, "teacher_version": row["teacher_version"][0],
        })

    return experiment_config
