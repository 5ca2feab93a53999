"""The loop's student steps for domains whose student reads images (``domain.student_kind == "paligemma"``).

Each function mirrors its text-student counterpart in :mod:`dataenvgym_dagster.loop.steps`
(which dispatches here) and differs only in what a student example is: an image file, a prefix
and a suffix. Images are resolved through the home's :class:`ImageStore`, which renders
procedural images (or extracts Parquet ones) on first use, by content hash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import shutil
from pathlib import Path

from dataenvgym_dagster.domain.protocol import Domain
from dataenvgym_dagster.domain.types import Problem
from dataenvgym_dagster.domain.vqa.images import ImageStore
from dataenvgym_dagster.experiments.config import BaseStudentSettings
from dataenvgym_dagster.loop.checkpoints import StudentCheckpoint, checkpoint_dir, folder_checkpoint, verified_path
from dataenvgym_dagster.machinery.student import paligemma
from dataenvgym_dagster.machinery.student.settings import LoraSettings, StudentSpec, TrainingSettings

Progress = Callable[[str], None]
KIND = "paligemma"


def is_visual(domain: Domain) -> bool:
    """Whether the domain's student is a PaliGemma (reads an image beside its prompt)."""
    return getattr(domain, "student_kind", None) == KIND


def visual_examples(domain: Domain, problems: Sequence[Problem], home: Path) -> list[paligemma.VisualExample]:
    """Each problem as (image file, prefix, suffix), images made under the home first where needed."""
    store = ImageStore(home)
    examples = []
    for problem in problems:
        text = domain.student_text(problem)
        if len(text.images) != 1:
            raise ValueError(f"{domain.name} problem {problem.example_id} has {len(text.images)} images; the PaliGemma student reads exactly one")
        examples.append(paligemma.VisualExample(image=store.path(problem.payload), prefix=text.prompt, suffix=text.target))
    return examples


def pretrain_base_student(
    domain: Domain, corpus: Sequence[Problem], settings: BaseStudentSettings, home: Path, progress: Progress
) -> tuple[StudentCheckpoint, paligemma.TrainingReport]:
    """Build a processor and a random tiny PaliGemma from the corpus and pretrain it on the corpus."""
    examples = visual_examples(domain, corpus, home)
    processor = paligemma.build_processor(
        (text for e in examples for text in (e.prefix, e.suffix)), settings.tokenizer_vocab_size
    )
    model = paligemma.build_student(settings.architecture, processor, settings.seed)
    progress(f"pretraining a {sum(p.numel() for p in model.parameters()):,}-parameter PaliGemma on {len(examples):,} images")
    directory = checkpoint_dir(home, domain.name)
    if directory.exists():  # files of an earlier materialisation must not join the new manifest
        shutil.rmtree(directory)
    report = paligemma.train_student(model, processor, examples, settings.training, directory, settings.seed, progress)
    return folder_checkpoint(home, directory, domain=domain.name), report


def complete(
    domain: Domain, checkpoint: StudentCheckpoint, problems: Sequence[Problem], student: StudentSpec, home: Path, progress: Progress
):
    """The checkpoint's greedy answers to the problems, with each reference answer's loss."""
    model, processor = paligemma.load_student(verified_path(checkpoint, home))
    examples = visual_examples(domain, problems, home)
    return paligemma.complete(
        model, processor, examples, student.generation.max_new_tokens, batch_size=student.generation.batch_size, progress=progress
    )


def train(
    domain: Domain,
    problems: Sequence[Problem],
    *,
    start_from: StudentCheckpoint,
    base: StudentCheckpoint,
    settings: TrainingSettings,
    lora: LoraSettings | None,
    directory: Path,
    seed: int,
    home: Path,
    progress: Progress,
) -> paligemma.TrainingReport:
    """Train from ``start_from``; with LoRA, continue the adapter it saved (on top of the base student) if it has one."""
    adapter = verified_path(start_from, home) / paligemma.ADAPTER_DIR
    if lora is not None and adapter.exists():
        model, processor = paligemma.load_student(verified_path(base, home))
        model = paligemma.with_lora(model, lora, adapter)
        progress(f"continuing the LoRA adapter of the {start_from.label}")
    else:
        model, processor = paligemma.load_student(verified_path(start_from, home))
        if lora is not None:
            model = paligemma.with_lora(model, lora)
    examples = visual_examples(domain, problems, home)
    return paligemma.train_student(model, processor, examples, settings, directory, seed, progress)
