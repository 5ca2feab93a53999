"""Any Hugging Face causal LM as the student: loaded by hub id or local folder, trained with the
Trainer (whole model or LoRA adapters), answering with transformers' ``generate`` or vLLM."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from dataenvgym_dagster.domain.types import StudentText
from dataenvgym_dagster.machinery.student.backend import (
    AnsweringModel,
    Completion,
    GenerationReport,
    Progress,
    StudentWeights,
    TrainingReport,
)
from dataenvgym_dagster.machinery.student.settings import StudentArchitecture, StudentSpec, TrainingSettings
from dataenvgym_dagster.machinery.student.training import prepare_tokenizer, train_student

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda``: ``auto`` is cuda when a GPU is visible; asking for cuda without one is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("student.device is cuda but torch sees no GPU; set student.device to cpu or auto")
    return device


def load_model(
    weights: StudentWeights, spec: StudentSpec, *, trainable: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model and tokenizer at ``weights``, exactly as ``from_pretrained(model, revision=...)`` loads a hub id.

    An adapter is applied with ``PeftModel.from_pretrained`` (trainable if asked); its folder's
    tokenizer is used, since training saves the tokenizer beside the adapter.
    """
    dtype = "auto" if spec.dtype == "auto" else DTYPES[spec.dtype]
    model = AutoModelForCausalLM.from_pretrained(weights.model, revision=weights.revision, dtype=dtype)
    source = weights.adapter if weights.adapter is not None else weights.model
    revision = None if weights.adapter is not None else weights.revision
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(source, revision=revision))
    tokenizer.padding_side = "left"
    if weights.adapter is not None:
        model = PeftModel.from_pretrained(model, weights.adapter, is_trainable=trainable)
    return model.to(resolve_device(spec.device)), tokenizer


class CausalLMBackend:
    """The student backend for Hugging Face causal LMs (Llama, Gemma-2, Qwen2 ...)."""

    def __init__(self, spec: StudentSpec) -> None:
        self.spec = spec
        self.answering = AnsweringModel(self._load_for_answers)

    def _load_for_answers(self, weights: StudentWeights) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        model, tokenizer = load_model(weights, self.spec)
        if isinstance(model, PeftModel):
            model = model.merge_and_unload()  # same function, fewer matrix products per token
        return model, tokenizer

    @property
    def chat(self) -> bool:
        return self.spec.prompt_format == "chat"

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
        """A byte-pair tokenizer trained on the texts, a random Llama of ``architecture``, pretrained on them."""
        from dataenvgym_dagster.machinery.student.model import build_student
        from dataenvgym_dagster.machinery.student.tokenizer import train_tokenizer

        self.answering.forget()
        pairs = [(text.prompt, text.target) for text in texts]
        tokenizer = train_tokenizer((prompt + target for prompt, target in pairs), vocab_size)
        model = build_student(architecture, tokenizer, seed)
        progress(f"pretraining a {sum(p.numel() for p in model.parameters()):,}-parameter student on {len(pairs):,} examples")
        return train_student(model, tokenizer, pairs, settings, output_dir, seed, progress)

    def train(
        self,
        start: StudentWeights,
        texts: Sequence[StudentText],
        settings: TrainingSettings,
        output_dir: Path,
        seed: int,
        progress: Progress,
    ) -> TrainingReport:
        """LoRA (per the spec) continues ``start.adapter`` if there is one, else starts a fresh adapter;
        full fine-tuning trains every weight (merging ``start.adapter`` into the model first)."""
        self.answering.forget()  # its memory is wanted back for training
        model, tokenizer = load_model(start, self.spec, trainable=self.spec.lora is not None)
        if self.spec.lora is None and isinstance(model, PeftModel):
            model = model.merge_and_unload()
        pairs = [(text.prompt, text.target) for text in texts]
        return train_student(
            model, tokenizer, pairs, settings, output_dir, seed, progress,
            lora=self.spec.lora, device=resolve_device(self.spec.device), chat=self.chat,
        )

    def complete(
        self, weights: StudentWeights, texts: Sequence[StudentText], progress: Progress
    ) -> tuple[list[Completion], GenerationReport]:
        if self.spec.generation.backend == "vllm":
            from dataenvgym_dagster.machinery.student.vllm_generation import complete_with_vllm

            return complete_with_vllm(weights, texts, self.spec, progress)
        from dataenvgym_dagster.machinery.student.evaluation import complete

        model, tokenizer = self.answering(weights)
        pairs = [(text.prompt, text.target) for text in texts]
        generation = self.spec.generation
        return complete(
            model, tokenizer, pairs, generation.max_new_tokens, batch_size=generation.batch_size,
            progress=progress, chat=self.chat,
        )
