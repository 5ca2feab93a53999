"""Supervised fine-tuning of a student on (prompt, target) pairs with the Hugging Face Trainer.

Whole models are saved with ``save_pretrained``; LoRA students are saved as PEFT adapter folders
(``adapter_config.json`` + ``adapter_model.safetensors``), never merged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as _transformers_logging

from dataenvgym_dagster.machinery.student.backend import TrainingReport
from dataenvgym_dagster.machinery.student.settings import LoraSettings, TrainingSettings

_transformers_logging.disable_progress_bar()  # a 1 MB student needs no progress bars over the run log

Progress = Callable[[str], None]

__all__ = ["TrainingReport", "load_student", "prepare_tokenizer", "tokenize_pairs", "train_student"]


class SequenceTooLongError(ValueError):
    """A prompt and its target do not fit in the student's positions."""


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give a tokenizer without a pad token one (its end-of-sequence token), so batches can be padded.

    Padding is always masked by explicit attention masks built from lengths, so a pad token equal
    to a real token is harmless. A tokenizer without an end-of-sequence token cannot end answers.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError(
            f"the student's tokenizer ({type(tokenizer).__name__}, {tokenizer.name_or_path or 'unnamed'}) has no "
            "end-of-sequence token, so the student cannot learn where an answer ends; set eos_token in tokenizer_config.json"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], chat: bool = False) -> list[list[int]]:
    """Token ids of each prompt as the student reads it, at training and at evaluation alike.

    Plain prompts get whatever special tokens the tokenizer adds (BOS for Llama and Gemma, none for
    Qwen2). With ``chat``, each prompt is one user turn in the tokenizer's chat template followed by
    the assistant's turn opening; the template writes its own special tokens.
    """
    if not prompts:
        return []
    if not chat:
        return token_ids(tokenizer, prompts, special_tokens=True)
    if not tokenizer.chat_template:
        raise ValueError(
            f"prompt_format is chat but the student's tokenizer ({tokenizer.name_or_path or 'unnamed'}) has no chat "
            "template; use prompt_format plain or few_shot, or a tokenizer with chat_template set"
        )
    rendered = [
        tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        for prompt in prompts
    ]
    return token_ids(tokenizer, rendered, special_tokens=False)


def token_ids(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, special_tokens: bool) -> list[list[int]]:
    """Each text's token ids, as ``tokenizer(texts, add_special_tokens=special_tokens)["input_ids"]`` gives them.

    A fast tokenizer's Rust backend encodes the batch directly (``encode_batch_fast``, which skips
    the character offsets nobody here reads): the same ids in a third of the time, which was most of
    what a training step spent outside training (``benchmarks/stage_timings.py``). A tokenizer without
    that backend (a slow, pure-Python one) goes through ``__call__``.

    Each distinct text is encoded once: a text's ids do not depend on the others in the batch
    (padding, if a tokenizer had it on, pads to the longest text, which stays in the batch), and
    training sets repeat texts a lot (arithmetic: 910 distinct targets and 8,365 distinct prompts
    among 11,534 pairs), which halved a training step's tokenization. Every text still gets its
    own list.
    """
    distinct = list(dict.fromkeys(texts))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        encoded = tokenizer(distinct, add_special_tokens=special_tokens)["input_ids"]
    else:
        encoded = [encoding.ids for encoding in backend.encode_batch_fast(distinct, add_special_tokens=special_tokens)]
    if len(distinct) == len(texts):
        return encoded
    by_text = dict(zip(distinct, encoded, strict=True))
    return [list(by_text[text]) for text in texts]


def max_positions(model: PreTrainedModel) -> int | None:
    """How many tokens the model reads at once, if its config says."""
    return getattr(model.config, "max_position_embeddings", None)


def tokenize_pairs(
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, str]],
    *,
    chat: bool = False,
    max_length: int | None = None,
) -> list[dict[str, list[int]]]:
    """``prompt target <eos>`` with labels on the target and end-of-sequence tokens only.

    Attention masks are explicit (ones over every real token), so padding never depends on the
    pad token's id. A pair longer than ``max_length`` tokens raises :class:`SequenceTooLongError`
    naming it: truncating would silently train on a cut answer.
    """
    prepare_tokenizer(tokenizer)
    prompts = encode_prompts(tokenizer, [prompt for prompt, _ in pairs], chat)
    targets = token_ids(tokenizer, [target for _, target in pairs], special_tokens=False)
    eos = tokenizer.eos_token_id  # a property that looks up the token each time: once, not once per pair
    features = []
    for index, (prompt_ids, target_ids) in enumerate(zip(prompts, targets, strict=True)):
        answer = [*target_ids, eos]
        length = len(prompt_ids) + len(answer)
        if max_length is not None and length > max_length:
            raise SequenceTooLongError(
                f"pair {index} ({pairs[index][0][:60]!r} ...) is {length} tokens (prompt {len(prompt_ids)} + answer "
                f"{len(answer)}), more than the student's {max_length} positions; use a student with more positions "
                "(base_student.architecture.max_position_embeddings for the tiny one) or shorter problems"
            )
        features.append(
            {"input_ids": prompt_ids + answer, "attention_mask": [1] * length, "labels": [-100] * len(prompt_ids) + answer}
        )
    return features


def lora_model(model: PreTrainedModel, lora: LoraSettings) -> PeftModel:
    """``model`` with fresh LoRA adapters (the base weights frozen)."""
    modules = lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules)
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=modules, task_type="CAUSAL_LM"
    )
    return get_peft_model(model, config)


class LogProgress(TrainerCallback):
    """Reports the Trainer's logged losses to ``progress`` and keeps the loss curve (every student backend's)."""

    def __init__(self, progress: Progress, total_steps: int) -> None:
        self.progress, self.total_steps, self.curve = progress, total_steps, []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.curve.append((state.global_step, float(logs["loss"])))
            self.progress(f"training step {state.global_step}/{self.total_steps}: loss {logs['loss']:.4f}")


def train_student(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, str]],
    settings: TrainingSettings,
    output_dir: Path,
    seed: int,
    progress: Progress = print,
    *,
    lora: LoraSettings | None = None,
    device: str = "cpu",
    chat: bool = False,
) -> TrainingReport:
    """Fine-tune ``model`` on ``pairs`` and save it with its tokenizer to ``output_dir``.

    ``model`` may already be a :class:`PeftModel` (a previous adapter, loaded trainable): its
    adapter is trained further. Otherwise ``lora`` adds fresh adapters, and ``None`` trains every
    weight. A PEFT model is saved as an adapter folder; a whole model with ``save_pretrained``.
    ``device`` cuda trains in bf16 mixed precision.
    """
    if not pairs:
        raise ValueError("no training examples: the generated dataset is empty")
    torch.set_num_threads(settings.threads)
    features = tokenize_pairs(tokenizer, pairs, chat=chat, max_length=max_positions(model))
    steps = max(1, math.ceil(len(features) * settings.epochs / settings.batch_size))
    if lora is not None and not isinstance(model, PeftModel):
        # Fresh adapters are drawn from torch's global generator: seed it, so that they do not depend on what
        # the process drew before (loading an adapter for an evaluation draws; a daemon's fresh process has not).
        torch.manual_seed(seed)
        model = lora_model(model, lora)
    tokenizer.padding_side = "right"
    callback = LogProgress(progress, steps)
    arguments = TrainingArguments(
        output_dir=str(output_dir / "trainer"),
        per_device_train_batch_size=settings.batch_size,
        max_steps=steps,
        learning_rate=settings.learning_rate,
        warmup_steps=math.ceil(settings.warmup_ratio * steps),
        weight_decay=settings.weight_decay,
        lr_scheduler_type="cosine",
        logging_steps=max(1, steps // 10),
        save_strategy="no",
        report_to="none",
        use_cpu=device == "cpu",
        bf16=device == "cuda",
        seed=seed,
        data_seed=seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=features,  # a list is a map-style dataset
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes to ``progress``, not stdout
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    tokenizer.padding_side = "left"
    trainer.model.save_pretrained(output_dir, safe_serialization=True)
    tokenizer.save_pretrained(output_dir)
    tokens = round(sum(len(f["input_ids"]) for f in features) * settings.epochs)
    return TrainingReport(
        examples=len(features),
        steps=steps,
        tokens=tokens,
        seconds=seconds,
        tokens_per_second=tokens / seconds,
        final_loss=callback.curve[-1][1] if callback.curve else float(result.training_loss),
        loss_curve=callback.curve,
        trainable_parameters=sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        parameters=sum(p.numel() for p in trainer.model.parameters()),
    )


def load_student(directory: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A whole-model checkpoint saved by ``save_pretrained``, on the CPU in float32, with a left-padding tokenizer."""
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(directory))
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    return model, tokenizer
