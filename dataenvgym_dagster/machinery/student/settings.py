"""Typed settings of students, training and generation. Pure pydantic: importing this (and so
the experiment catalogue) never imports torch or transformers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TINY = "tiny"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StudentArchitecture(_Strict):
    """Size of the tiny Llama student built on the spot. The defaults give about 0.9 M parameters."""

    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 64


class LoraSettings(_Strict):
    """LoRA on all linear layers; the defaults are the DataEnvGym paper's."""

    r: int = Field(16, gt=0, description="Rank of each adapter.")
    alpha: int = Field(32, gt=0, description="Scaling numerator: updates are scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | tuple[str, ...] = Field(
        "all-linear", description="Modules that get adapters: 'all-linear' (every linear layer but the output head) or names."
    )


class TrainingSettings(_Strict):
    """How one training run updates the student. Loss is on answer tokens only."""

    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: float = Field(1.0, gt=0, description="Passes over the training examples.")
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    threads: int = Field(2, description="torch CPU threads.")

    @model_validator(mode="before")
    @classmethod
    def _lora_belongs_to_the_student(cls, data: object) -> object:
        if isinstance(data, dict) and "lora" in data:
            raise ValueError(
                "training settings have no lora: LoRA is part of the student now; move it to the domain's "
                "student.lora (or an experiment's student: {lora: ...})"
            )
        return data


class GenerationSettings(_Strict):
    """How the student answers at evaluation: greedy decoding, batched."""

    max_new_tokens: int = Field(6, gt=0, description="Generation length limit (tokens).")
    batch_size: int = Field(256, gt=0, description="Prompts decoded together.")
    backend: Literal["hf", "vllm"] = Field("hf", description="hf: transformers generate; vllm: the GPU extra.")


class StudentSpec(_Strict):
    """Which model is the student, how it is loaded, prompted and decoded.

    ``model: tiny`` is a random model of the domain's student family (a Llama; a PaliGemma for
    vqa) with a locally trained tokenizer, pretrained on the domain's procedural corpus (see
    ``base_student``). Anything else is a Hugging Face hub id or
    a local ``save_pretrained`` folder, loaded through the same code path.
    """

    model: str = Field(TINY, description="'tiny', a hub id (google/gemma-2-2b) or a local save_pretrained folder.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of ``model``.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"
    device: Literal["auto", "cpu", "cuda"] = Field(
        "cpu", description="Where the student trains and answers; auto: cuda when available. cuda trains in bf16."
    )
    prompt_format: Literal["plain", "few_shot", "chat"] = Field(
        "plain", description="plain: the domain's prompt; few_shot: solved examples first; chat: the tokenizer's chat template."
    )
    few_shot_examples: int = Field(3, ge=0, description="Solved examples before the prompt with prompt_format few_shot.")
    target: Literal["answer", "solution"] = Field(
        "answer",
        description="What the student is trained to write. answer: the answer alone (math: \\boxed{answer}; code: the "
        "program), as the tiny student needs; solution: a worked solution ending in the answer (math: the solution "
        "ending in \\boxed{answer}; code: an explanation, then the program), as a real student (the paper's Gemma-2-2B) "
        "learns. Domains without worked solutions train on the answer either way.",
    )
    generation: GenerationSettings = GenerationSettings()
    lora: LoraSettings | None = Field(
        None, description="Train LoRA adapters (saved as PEFT adapter folders); null: full fine-tuning."
    )

    @property
    def is_tiny(self) -> bool:
        return self.model == TINY
