"""One function per loop artefact. Each takes plain inputs and returns the artefact."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import polars as pl

from dataenvgym_dagster.agents.loading import AgentError, accepted, engine_info, load_policy, run_policy
from dataenvgym_dagster.domain.discovery import DiscoveredSkills, SkillDiscoverer, skill_mapping
from dataenvgym_dagster.domain.environments import Observation, PolicyContext, get_environment
from dataenvgym_dagster.domain.environments.base import EnvironmentState, SubskillProposer
from dataenvgym_dagster.domain.plans import DataGenerationPlan
from dataenvgym_dagster.domain.protocol import SPLITS, BenchmarkFormatError, Domain, WorkedSolutions
from dataenvgym_dagster.domain.quality import check_examples
from dataenvgym_dagster.domain.teachers.chat import TeacherChat
from dataenvgym_dagster.domain.teachers.drift import EngineDrift
from dataenvgym_dagster.domain.teachers.protocol import DataGenerationEngine, GenerationResult
from dataenvgym_dagster.domain.types import EvaluationRecord, Problem, StudentText, TrainingExample
from dataenvgym_dagster.experiments.config import (
    BaseStudentSettings,
    BenchmarkSettings,
    ExperimentSettings,
    TrainingRecipe,
)
from dataenvgym_dagster.asset_names import iteration_asset_name
from dataenvgym_dagster.loop.checkpoints import (
    StudentCheckpoint,
    checkpoint_dir,
    folder_checkpoint,
    pretrained_checkpoint,
    replace_folder,
    student_weights,
)
from dataenvgym_dagster.loop.checkpoint_store import fetch, publish
from dataenvgym_dagster.loop.rows import records
from dataenvgym_dagster.loop.training_set import compose_training_set
from dataenvgym_dagster.machinery.images import (
    ImageGeneratorSettings,
    inspect_images,
    with_generated_images,
    with_image_files,
)
from dataenvgym_dagster.machinery.images import image_generator as make_image_generator
from dataenvgym_dagster.machinery.storage import Storage
from dataenvgym_dagster.machinery.student.backend import (
    CAUSAL_LM,
    Completion,
    GenerationReport,
    StudentBackend,
    TrainingReport,
    get_backend,
)
from dataenvgym_dagster.machinery.student.settings import StudentSpec
from dataenvgym_dagster.machinery.warehouse import TABLES

Progress = Callable[[str], None]


FEW_SHOT_SEED = 0  # the few-shot examples are the same for every prompt, iteration and experiment


def student_family(domain: Domain) -> str:
    """Which student backend reads the domain's problems: ``causal_lm`` unless the domain names another (vqa: ``paligemma``)."""
    return getattr(domain, "student_kind", CAUSAL_LM)


def student_texts(
    domain: Domain, problems: Iterable[Problem], student: StudentSpec, home: Path | None = None
) -> list[StudentText]:
    """The student's texts for problems in the spec's prompt format, their images as files under ``home``.

    ``student.target`` picks the target: the answer (``student_text``) or a worked solution
    ending in it (``solution_text``, see :class:`~dataenvgym_dagster.domain.protocol.WorkedSolutions`).
    ``few_shot`` puts ``few_shot_examples`` solved problems from the domain's procedural generator
    before each prompt, in the same target; ``chat`` is applied by the backend with the tokenizer's
    template. Images (recorded relative to the home) are made on first use and given to the backend
    as file paths.
    """
    problems = list(problems)
    texts = [training_text(domain, problem, student.target) for problem in problems]
    if any(text.images for text in texts):
        if home is None:
            raise ValueError(f"{domain.name} problems have images; their student texts need the home the images live under")
        texts = with_image_files(problems, texts, home)
    if student.prompt_format != "few_shot" or student.few_shot_examples == 0:
        return texts
    prefix = few_shot_prefix(domain, student.few_shot_examples, target=student.target)
    return [text.model_copy(update={"prompt": prefix + text.prompt}) for text in texts]


def training_text(domain: Domain, problem: Problem, target: str = "answer") -> StudentText:
    """The problem's student text with ``target`` ``answer`` (the domain's ``student_text``) or
    ``solution`` (its ``solution_text``; the catalogue allows it only for domains that have one)."""
    if target == "solution":
        if not isinstance(domain, WorkedSolutions):
            raise ValueError(f"student.target 'solution' needs worked solutions, which the {domain.name} domain does not have; use answer")
        return domain.solution_text(problem)
    return domain.student_text(problem)


def few_shot_prefix(domain: Domain, count: int, seed: int = FEW_SHOT_SEED, target: str = "answer") -> str:
    """``count`` solved procedural problems (prompt and target) of seeded random skills, each followed by a blank line."""
    rng = random.Random(seed)
    skills = list(domain.taxonomy.skills)
    shots = []
    for index in range(count):
        skill = skills[rng.randrange(len(skills))]
        text = training_text(domain, Problem(example_id=f"few_shot/{index}", skill=skill, **domain.sample(skill, rng).model_dump()), target)
        shots.append(f"{text.prompt}{text.target}\n\n")
    return "".join(shots)


def iteration_seed(settings: ExperimentSettings, iteration: int) -> int:
    """The seed of everything random in one iteration of an experiment (policy, teacher, training order)."""
    return settings.seed * 1_000 + iteration


def problems_of(frame: pl.DataFrame, model: type[Problem], source: str) -> list[Problem]:
    """Rows of a problems table (``benchmark_problems``, ``generated_examples`` ...) as typed problems."""
    return records(frame, model, source)


# -- shared per domain --------------------------------------------------------------------------
def benchmark_splits(domain: Domain, settings: BenchmarkSettings) -> pl.DataFrame:
    """Validation and test problems from the configured source, with gold skills (table ``benchmark_problems``)."""
    source = domain.sources[settings.source]
    splits = source.load(settings)
    for split in SPLITS:
        if not splits.get(split):
            raise BenchmarkFormatError(
                f"benchmark source {settings.source!r} of {domain.name} gave no {split} problems"
                + (f" from {settings.path}" if settings.path else "")
            )
    repeated = [i for i, n in Counter(p.example_id for problems in splits.values() for p in problems).items() if n > 1]
    if repeated:
        raise BenchmarkFormatError(f"benchmark source {settings.source!r} of {domain.name} repeats example id {repeated[0]!r}")
    return pl.DataFrame(
        [{"domain": domain.name, "split": split, **problem.warehouse_row()} for split, problems in splits.items() for problem in problems],
        schema=TABLES["benchmark_problems"],
    )


def pretraining_corpus(domain: Domain, settings: BaseStudentSettings) -> pl.DataFrame:
    """A broad but shallow corpus: every skill, in the configured uneven mixture (or the head start's)."""
    rng = random.Random(settings.seed)
    skills = list(domain.taxonomy.skills)
    mixture = settings.mixture(skills)
    weights = [mixture[skill] for skill in skills]
    rows = []
    for index, skill in enumerate(rng.choices(skills, weights, k=settings.pretraining_examples)):
        row = Problem.draft_row(domain.sample(skill, rng), example_id=f"pretraining/{index:06d}", skill=skill)
        rows.append({"domain": domain.name, **row})
    return pl.DataFrame(rows, schema=TABLES["pretraining_corpus"])


def pretrain_base_student(
    domain: Domain,
    corpus: pl.DataFrame,
    settings: BaseStudentSettings,
    home: Path,
    progress: Progress,
    student: StudentSpec | None = None,
    store: Storage | None = None,
) -> tuple[StudentCheckpoint, TrainingReport | None]:
    """The domain's base student.

    ``model: tiny``: train a tokenizer on the corpus, build a random model of the domain's student
    family (a Llama; a PaliGemma for vqa) and pretrain it on the corpus (saved under the home, then
    published to ``store`` if there is an object store). A hub id or local folder: nothing is
    trained or copied; the record says which model and revision it is (and a local folder's
    weight manifest).
    """
    student = student or StudentSpec()
    if not student.is_tiny:
        progress(f"the base student of {domain.name} is {student.model} at revision {student.revision or 'main'}")
        return pretrained_checkpoint(student.model, student.revision, domain=domain.name), None
    backend = student_backend(domain, student)  # first: it imports torch (machinery/heap.py)
    problems = problems_of(corpus, Problem, f"pretraining_corpus ({domain.name})")
    texts = student_texts(domain, problems, StudentSpec(), home)  # the plain format: pretraining builds the tokenizer
    directory = checkpoint_dir(home, domain.name)
    report = _save_into_place(directory, lambda partial: backend.pretrain_tiny(
        texts, settings.architecture, settings.tokenizer_vocab_size, settings.training, partial, settings.seed, progress
    ))
    checkpoint = folder_checkpoint(home, directory, domain=domain.name)
    publish(checkpoint, home, store)
    return checkpoint, report


def initial_checkpoint(base: StudentCheckpoint, student: StudentSpec) -> StudentCheckpoint:
    """The student an experiment starts from: the domain's base student, unless the experiment names another model."""
    if student.is_tiny:
        if base.kind == "pretrained":
            raise ValueError(
                f"the experiment's student is tiny but the {base.label} is {base.reference}; "
                "re-materialise base_student, or name a model in the experiment's student"
            )
        return base
    if base.kind == "pretrained" and (base.model, base.revision) == (student.model, student.revision):
        return base
    return pretrained_checkpoint(student.model, student.revision, domain=base.domain)



def _save_into_place(directory: Path, train: Callable[[Path], TrainingReport]) -> TrainingReport:
    """Run ``train`` into a hidden folder beside ``directory``, then rename it into place.

    A run killed while training or saving leaves only a ``.<name>.*.partial`` folder, which
    nothing reads (and the next save removes), never a half-written checkpoint at ``directory``."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    for leftover in directory.parent.glob(f".{directory.name}.*.partial"):
        shutil.rmtree(leftover, ignore_errors=True)
    partial = directory.with_name(f".{directory.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        report = train(partial)
        replace_folder(partial, directory)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return report


# -- per iteration -------------------------------------------------------------------------------
def evaluate_student(
    domain: Domain,
    checkpoint: StudentCheckpoint,
    benchmark: pl.DataFrame,
    split: str,
    *,
    experiment: str,
    iteration: int,
    student: StudentSpec,
    home: Path,
    progress: Progress,
    store: Storage | None = None,
    backend: StudentBackend | None = None,
) -> tuple[pl.DataFrame, GenerationReport]:
    """Greedy answers of the checkpoint on one split, scored by the domain (table ``evaluation_results``).

    The checkpoint is read from ``home`` (where its path is relative to), after verifying its files
    (and fetching it from ``store`` first, with an object store). ``backend`` answers (default: a new
    one for ``student``): one backend evaluating both splits of a checkpoint loads it once."""
    problems = problems_of(benchmark.filter(pl.col("split") == split), Problem, f"benchmark_splits ({domain.name}, {split})")
    if not problems:
        raise ValueError(f"benchmark_splits for {domain.name} has no {split!r} problems; re-materialise benchmark_splits")
    completions, report = _complete(domain, checkpoint, problems, student, home, progress, store, backend)
    scores = domain.score(problems, [completion.text for completion in completions])
    rows = [
        {
            "domain": domain.name, "experiment": experiment, "iteration": iteration, "split": split,
            "example_id": problem.example_id, "skill": problem.skill, "question": problem.question,
            "prediction": score.extracted, "reference": problem.answer, "correct": score.correct,
            "score": score.value, "verdict": score.verdict, "metrics": json.dumps(score.metrics, sort_keys=True),
            "completion": completion.text, "answer_loss": completion.target_loss, "checkpoint_sha256": checkpoint.sha256,
        }
        for problem, completion, score in zip(problems, completions, scores, strict=True)
    ]
    return pl.DataFrame(rows, schema=TABLES["evaluation_results"]), report


def student_backend(domain: Domain, student: StudentSpec) -> StudentBackend:
    """A backend for the domain's student: make one per step and share it between that step's evaluations."""
    return get_backend(student, student_family(domain))


def _complete(
    domain: Domain,
    checkpoint: StudentCheckpoint,
    problems: Sequence[Problem],
    student: StudentSpec,
    home: Path,
    progress: Progress,
    store: Storage | None = None,
    backend: StudentBackend | None = None,
) -> tuple[list[Completion], GenerationReport]:
    """The checkpoint's greedy completions of the problems' prompts, with each reference target's loss."""
    fetch(checkpoint, home, store)
    weights = student_weights(checkpoint, home)
    backend = backend or student_backend(domain, student)
    return backend.complete(weights, student_texts(domain, problems, student, home), progress)


def skill_taxonomy(
    domain: Domain, discoverer: SkillDiscoverer, benchmark: pl.DataFrame, previous: DiscoveredSkills | None
) -> DiscoveredSkills:
    """The discoverer's taxonomy for the validation questions, refining ``previous`` if it likes."""
    problems = records(benchmark.filter(pl.col("split") == "validation"), Problem, f"benchmark_splits ({domain.name}, validation)")
    return discoverer.discover(domain.name, problems, previous)


def taxonomy_rows(discovered: DiscoveredSkills, previous: DiscoveredSkills | None, *, domain: str, experiment: str, iteration: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows for ``skill_taxonomies`` (one per skill) and ``skill_mappings`` (where each old skill went)."""
    version = taxonomy_version(discovered)
    questions = Counter(discovered.assignments.values())
    key = {"domain": domain, "experiment": experiment, "iteration": iteration}
    taxonomy = pl.DataFrame(
        [
            {**key, "discoverer": discovered.discoverer, "version": version, "category": category, "skill": skill, "questions": questions[skill]}
            for category, skills in discovered.taxonomy.categories.items()
            for skill in skills
        ],
        schema=TABLES["skill_taxonomies"],
    )
    moves = skill_mapping(previous, discovered) if previous else [(skill, skill, 1.0) for skill in discovered.taxonomy.skills]
    mapping = pl.DataFrame(
        [
            {**key, "previous_version": taxonomy_version(previous) if previous else None, "version": version,
             "old_skill": old, "new_skill": new, "share": share}
            for old, new, share in moves
        ],
        schema=TABLES["skill_mappings"],
    )
    return taxonomy, mapping


def taxonomy_version(discovered: DiscoveredSkills) -> str:
    """A short content hash: equal taxonomies and assignments have equal versions."""
    payload = json.dumps([discovered.taxonomy.model_dump(), sorted(discovered.assignments.items())], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def environment_state(
    settings: ExperimentSettings,
    validation: pl.DataFrame,
    taxonomy: DiscoveredSkills,
    *,
    experiment: str,
    iteration: int,
    previous_state: EnvironmentState | None,
    previous_plan: DataGenerationPlan | None,
) -> EnvironmentState:
    """The experiment's environment observes the previous iteration's validation results.

    Each result is relabelled with the skill the iteration's taxonomy assigns its question.
    """
    evaluated = records(validation, EvaluationRecord, iteration_asset_name(iteration - 1, "validation_evaluation"))
    unlabelled = [r.example_id for r in evaluated if r.example_id not in taxonomy.assignments]
    if unlabelled:
        raise ValueError(
            f"{len(unlabelled)} validation examples (e.g. {unlabelled[0]}) have no skill in {iteration_asset_name(iteration, 'skill_taxonomy')}; "
            "re-materialise skill_taxonomy after changing the benchmark"
        )
    relabelled = [r.model_copy(update={"skill": taxonomy.assignments[r.example_id]}) for r in evaluated]
    observation = Observation(
        domain=taxonomy.taxonomy.domain, experiment=experiment, iteration=iteration, taxonomy=taxonomy.taxonomy,
        validation=relabelled, previous_state=previous_state, previous_plan=previous_plan,
    )
    return get_environment(settings.environment).observe(observation)


def data_generation_plan(
    state: EnvironmentState, settings: ExperimentSettings, proposer: SubskillProposer | None, chat: TeacherChat | None = None
) -> DataGenerationPlan:
    """The experiment's policy's plan for this iteration's data budget, once the environment accepts it.

    Raises :class:`AgentError` (the policy cannot be loaded, raises or returns something else) or
    :class:`PlanRefusedError` (the plan breaks the environment's rules), each naming the agent,
    the partition and the iteration.
    """
    try:
        loaded = load_policy(settings.environment, settings.policy)
    except AgentError as error:
        raise AgentError(f"{error} (experiment {state.experiment!r}, domain {state.domain}, iteration {state.iteration})") from error
    context = PolicyContext(
        budget=settings.data_budget, seed=iteration_seed(settings, state.iteration), proposer=proposer, chat=chat,
    )
    return run_policy(loaded, settings.environment, state, context)


def given_plan(state: EnvironmentState, settings: ExperimentSettings, plan_json: str) -> DataGenerationPlan:
    """A plan given from outside the loop (a gym step), checked by the environment like a policy's."""
    return accepted(settings.environment, state, DataGenerationPlan.model_validate_json(plan_json), settings.data_budget)


def experiment_row(
    domain: str, experiment: str, name: str, settings: ExperimentSettings, drift: EngineDrift | None = None
) -> pl.DataFrame:
    """The ``experiment_runs`` row: what an experiment partition ran (agents by name and version), for comparisons in SQL.

    ``drift``: the domain's ``offline_drift``, recorded in the offline engine's version."""
    try:
        policy = load_policy(settings.environment, settings.policy)
        teacher = engine_info(settings.teacher, drift)
    except AgentError as error:
        raise AgentError(f"{error} (experiment {experiment!r}, domain {domain}, iteration 0)") from error
    return pl.DataFrame(
        [{
            "domain": domain, "experiment": experiment, "name": name, "environment": settings.environment,
            "policy": settings.policy, "policy_version": policy.info.version, "uses_state": policy.uses_state,
            "teacher": settings.teacher, "teacher_version": teacher.version, "discoverer": settings.discoverer, "seed": settings.seed, "data_budget": settings.data_budget,
            "recipe": str(settings.training.recipe), "settings": settings.model_dump_json(),
        }],
        schema=TABLES["experiment_runs"],
    )


class GenerationShortfallError(RuntimeError):
    """The teacher produced fewer examples than the plan asked for, beyond the tolerance."""


def generated_dataset(
    domain: Domain,
    engine: DataGenerationEngine,
    plan: DataGenerationPlan,
    settings: ExperimentSettings,
    *,
    benchmark: pl.DataFrame,
    earlier_generated: list[pl.DataFrame],
    previous: StudentCheckpoint | None = None,
    student: StudentSpec | None = None,
    home: Path | None = None,
    image_generator: ImageGeneratorSettings | None = None,
    store: Storage | None = None,
) -> tuple[pl.DataFrame, GenerationResult]:
    """The teacher's examples for the plan, each with its quality verdict (table ``generated_examples``).

    Examples with images (vqa) have them made under ``home``: by the procedural renderer, or by
    the diffusers pipeline ``image_generator`` names; the image filters read those files.

    Raises :class:`GenerationShortfallError` when the teacher made too few examples: the
    student is never trained on less data than the plan asked for without anyone noticing.
    """
    benchmark_questions = benchmark["question"].to_list()
    earlier_questions = [q for frame in earlier_generated for q in frame.filter(pl.col("passed_quality_checks"))["question"]]
    avoid = frozenset(benchmark_questions) | frozenset(settings.quality.earlier_to_avoid(earlier_questions))
    result = engine.generate(plan, seed=iteration_seed(settings, plan.iteration), avoid=avoid)
    if result.shortfall > settings.shortfall_tolerance:
        failures = "; ".join(f"{f.entry_id}: {f.missing} missing ({f.reason})" for f in result.failures[:5])
        raise GenerationShortfallError(
            f"teacher {engine.name!r} produced {result.produced} of {result.requested} requested examples for "
            f"{plan.domain}|{plan.experiment} iteration {plan.iteration} ({result.shortfall:.1%} short, tolerance "
            f"{settings.shortfall_tolerance:.1%}). {failures or 'No failure was reported.'} "
            "Check the teacher (see the teacher_calls ledger), or raise shortfall_tolerance in the experiment."
        )
    examples = list(result.examples)
    image_checks = None
    if any(example.payload.get("image") for example in examples):
        if home is None:
            raise ValueError(f"{domain.name} examples have images; generated_dataset needs the home they are made under")
        if image_generator is not None and image_generator.kind == "diffusers":
            generator = make_image_generator(image_generator, home)
            examples = with_generated_images(examples, generator, seed=iteration_seed(settings, plan.iteration))
        image_checks = inspect_images(examples, home)
    solved = _solved_by(domain, previous, examples, student or StudentSpec(), home, store) if settings.quality.drop_solved else None
    verdicts = check_examples(
        domain, examples, planned_skills={entry.skill for entry in plan.entries}, settings=settings.quality,
        benchmark_questions=benchmark_questions, test_questions=held_out_test_questions(benchmark),
        earlier_questions=earlier_questions, solved=solved, images=image_checks,
    )
    frame = pl.DataFrame(
        [
            {
                "domain": plan.domain, "experiment": plan.experiment, "iteration": plan.iteration,
                **example.warehouse_row(), "teacher": engine.name,
                "passed_quality_checks": verdict.passed, "rejection_reason": verdict.reason,
            }
            for example, verdict in zip(examples, verdicts, strict=True)
        ],
        schema=TABLES["generated_examples"],
    )
    return frame, result


def held_out_test_questions(benchmark: pl.DataFrame) -> list[str]:
    """The benchmark's test questions, which no training example may equal."""
    return benchmark.filter(pl.col("split") == "test")["question"].to_list()


def _solved_by(
    domain: Domain,
    checkpoint: StudentCheckpoint | None,
    examples: Sequence[TrainingExample],
    student: StudentSpec,
    home: Path | None,
    store: Storage | None = None,
) -> dict[str, bool]:
    """Whether the checkpoint already answers each example correctly, as the domain scores it."""
    if checkpoint is None or home is None:
        raise ValueError("drop_solved needs the previous iteration's student_checkpoint and the home it is stored in")
    completions, _ = _complete(domain, checkpoint, examples, student, home, lambda message: None, store)
    scores = domain.score(examples, [completion.text for completion in completions])
    return {example.example_id: score.correct for example, score in zip(examples, scores, strict=True)}


def train_iteration_student(
    domain: Domain,
    settings: ExperimentSettings,
    *,
    experiment: str,
    iteration: int,
    previous: StudentCheckpoint,
    base: StudentCheckpoint,
    targeted: pl.DataFrame,
    earlier_generated: list[pl.DataFrame],
    pretraining: pl.DataFrame,
    home: Path,
    progress: Progress,
    student: StudentSpec | None = None,
    store: Storage | None = None,
) -> tuple[StudentCheckpoint, TrainingReport, pl.DataFrame]:
    """Train the iteration's student; returns the checkpoint, the report and its lineage rows.

    With ``student.lora`` the checkpoint is a PEFT adapter on the base model: ``continue_with_replay``
    trains the previous iteration's adapter further, ``retrain_from_base`` a fresh one.
    """
    student = student or StudentSpec()
    seed = iteration_seed(settings, iteration)
    training_set, sources = compose_training_set(settings.training, targeted, earlier_generated, pretraining, seed)
    start_from = initial_checkpoint(base, student) if settings.training.recipe is TrainingRecipe.retrain_from_base else previous
    problems = problems_of(training_set, Problem, f"iteration_{iteration} training set")
    progress(f"training from the {start_from.label} ({start_from.reference}) on {len(problems):,} examples ({sources})")
    directory = checkpoint_dir(home, domain.name, experiment, iteration)
    for needed in (start_from, base):  # from the object store into the local cache, verified (no-op without one)
        fetch(needed, home, store)
    texts = student_texts(domain, problems, student, home)
    weights = student_weights(start_from, home)
    backend = student_backend(domain, student)
    report = _save_into_place(
        directory, lambda partial: backend.train(weights, texts, settings.training.settings, partial, seed, progress)
    )
    adapter_base = start_from.base_model if student.lora is not None else None
    checkpoint = folder_checkpoint(
        home, directory, domain=domain.name, experiment=experiment, iteration=iteration, base=adapter_base
    )
    publish(checkpoint, home, store)
    lineage_sources = [("checkpoint", start_from.reference, 0)] + [
        ("dataset", iteration_asset_name(iteration, "generated_dataset"), sources["this_iteration"])
    ]
    if "replay" in sources:
        lineage_sources.append(("dataset", "replay: pretraining_corpus + earlier generated_dataset", sources["replay"]))
    else:
        lineage_sources += [
            ("dataset", iteration_asset_name(earlier, "generated_dataset"), frame.filter(pl.col("passed_quality_checks")).height)
            for earlier, frame in enumerate(earlier_generated, start=1)
        ]
    lineage = pl.DataFrame(
        [
            {
                "domain": domain.name, "experiment": experiment, "iteration": iteration, "checkpoint": checkpoint.reference,
                "checkpoint_sha256": checkpoint.sha256, "source_kind": kind, "source": source, "examples": examples,
            }
            for kind, source, examples in lineage_sources
        ]
    )
    return checkpoint, report, lineage


def training_run_row(report: TrainingReport, *, domain: str, experiment: str, iteration: int, recipe: str) -> pl.DataFrame:
    """The ``training_runs`` warehouse row for one trained checkpoint."""
    return pl.DataFrame(
        [{
            "domain": domain, "experiment": experiment, "iteration": iteration, "recipe": recipe,
            "examples": report.examples, "steps": report.steps, "tokens": report.tokens, "seconds": report.seconds,
            "tokens_per_second": report.tokens_per_second, "final_loss": report.final_loss,
        }]
    )
