"""The one interface the loop calls to train a student and to have it answer.

A backend is chosen by the student spec (:func:`get_backend`). It reads and writes weights as
folders and hub ids (:class:`StudentWeights`), never as loop records, and texts as the domain's
:class:`StudentText` (prompt, target, images). This module imports neither torch nor
transformers: the implementations are imported when a backend is made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from dataenvgym_dagster.domain.types import StudentText
from dataenvgym_dagster.machinery.heap import freeze_long_lived
from dataenvgym_dagster.machinery.student.settings import StudentArchitecture, StudentSpec, TrainingSettings

Progress = Callable[[str], None]
CAUSAL_LM = "causal_lm"  # a text student (Llama, Gemma-2, Qwen2 ...)
PALIGEMMA = "paligemma"  # a student that reads one image beside its prompt (vqa)
FAMILIES = (CAUSAL_LM, PALIGEMMA)


FINGERPRINTED = ("*.safetensors", "*.bin", "*.json")  # the files whose change makes a model or adapter another one


@dataclass(frozen=True)
class StudentWeights:
    """Where a student's weights are: a hub id or ``save_pretrained`` folder, and optionally a PEFT adapter on it."""

    model: str
    revision: str | None = None
    adapter: Path | None = None
    digest: str | None = None
    """The checkpoint's manifest digest, where the loop has just verified the folders' files against it."""

    def version(self) -> tuple[str | None, str | None]:
        """What the model and the adapter are now: a local folder's :func:`folder_fingerprint`, a hub id's revision.

        Weights kept in memory between calls are reused only while this stays the same, so a folder
        written again at the same path (a re-materialised checkpoint) is loaded afresh."""
        local = Path(self.model)
        model = folder_fingerprint(local) if local.is_dir() else self.revision
        return model, folder_fingerprint(self.adapter) if self.adapter is not None else None


def folder_fingerprint(folder: Path) -> str:
    """A digest of the names, sizes and modification times (ns) of a model or adapter folder's weight and
    config files: it changes when the folder is written again, as the checkpoint manifests' rule has it."""
    digest = hashlib.sha256()
    for path in sorted({path for pattern in FINGERPRINTED for path in folder.glob(pattern) if path.is_file()}):
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class AnsweringModel:
    """The model (and tokenizer or processor) a backend last answered with, kept for its next answers.

    A backend evaluating the two splits of a checkpoint (one ``it<t>_evaluate`` step) loads it once.
    The model is kept while the weights are the same checkpoint, unchanged: the same folders with
    the same fingerprint (:meth:`StudentWeights.version`: a checkpoint written again at the same
    path is loaded again) and the same manifest digest. Answering changes no weight, so it is handed
    out as it is, not copied. It lives as long as its backend (the loop makes one per step), so no
    long-lived process (a Celery worker) holds a model it no longer needs.
    """

    def __init__(self, load: Callable[[StudentWeights], tuple[Any, Any]]) -> None:
        self._load = load
        self._kept: tuple[tuple, tuple[Any, Any]] | None = None

    def __call__(self, weights: StudentWeights) -> tuple[Any, Any]:
        key = (weights, weights.version())
        if self._kept is None or self._kept[0] != key:
            self._kept = None  # the old model goes before the next one is loaded
            self._kept = key, self._load(weights)
        return self._kept[1]

    def forget(self) -> None:
        self._kept = None


class Completion(BaseModel):
    """The student's greedy completion of a prompt, and its loss on the reference target."""

    text: str
    target_loss: float


class GenerationReport(BaseModel):
    prompts: int
    seconds: float
    prompts_per_second: float
    generated_tokens: int = 0
    backend: str = "hf"


class TrainingReport(BaseModel):
    """What one training run did, for asset metadata and benchmarks."""

    examples: int
    steps: int
    tokens: int
    seconds: float
    tokens_per_second: float
    final_loss: float
    loss_curve: list[tuple[int, float]]
    trainable_parameters: int = 0
    parameters: int = 0


class StudentBackend(Protocol):
    """Trains a student on texts and has it answer texts, as its spec says.

    A text's ``images`` are image files the backend can open (the loop resolves them under the home).
    """

    spec: StudentSpec

    def pretrain_tiny(
        self,
        texts: Sequence[StudentText],
        architecture: StudentArchitecture,
        vocab_size: int,
        settings: TrainingSettings,
        output_dir: Path,
        seed: int,
        progress: Progress,
    ) -> TrainingReport:
        """Build a tokenizer trained on ``texts`` and a random model of ``architecture``, pretrain it on
        ``texts`` and save both to ``output_dir`` (the ``tiny`` base student)."""

    def train(
        self,
        start: StudentWeights,
        texts: Sequence[StudentText],
        settings: TrainingSettings,
        output_dir: Path,
        seed: int,
        progress: Progress,
    ) -> TrainingReport:
        """Train from ``start`` and save to ``output_dir``: a PEFT adapter folder if the spec has ``lora``
        (continuing ``start.adapter`` when there is one), else the whole model. Tokenizer saved alongside."""

    def complete(
        self, weights: StudentWeights, texts: Sequence[StudentText], progress: Progress
    ) -> tuple[list[Completion], GenerationReport]:
        """Greedy completion of each text's prompt, and the mean loss (nats/token) of each text's target."""


def get_backend(spec: StudentSpec, family: str = CAUSAL_LM) -> StudentBackend:
    """The backend for ``spec`` and the domain's student ``family``: Hugging Face causal LMs (generation by
    transformers or, on a GPU, vLLM), or PaliGemma for domains whose problems are images."""
    if family == PALIGEMMA:
        if spec.generation.backend == "vllm":
            raise ValueError("student.generation.backend vllm serves text students only; use hf for the PaliGemma student")
        from dataenvgym_dagster.machinery.student.paligemma import PaliGemmaBackend

        freeze_long_lived("student libraries imported")
        return PaliGemmaBackend(spec)
    if family != CAUSAL_LM:
        raise ValueError(f"unknown student family {family!r}; known: {', '.join(FAMILIES)}")
    from dataenvgym_dagster.machinery.student.causal_lm import CausalLMBackend

    freeze_long_lived("student libraries imported")  # torch, transformers, peft: see machinery/heap.py
    return CausalLMBackend(spec)
