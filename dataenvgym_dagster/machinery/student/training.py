"""Supervised fine-tuning of a student on (prompt, target) pairs with the Hugging Face Trainer."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from pydantic import BaseModel
from transformers.utils import logging as _transformers_logging
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

from dataenvgym_dagster.machinery.student.settings import TrainingSettings

_transformers_logging.disable_progress_bar()  # a 1 MB student needs no progress bars over the run log

Progress = Callable[[str], None]


class TrainingReport(BaseModel):
    """What one training run did, for asset metadata and benchmarks."""

    examples: int
    steps: int
    tokens: int
    seconds: float
    tokens_per_second: float
    final_loss: float
    loss_curve: list[tuple[int, float]]


def tokenize_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]]) -> list[dict[str, list[int]]]:
    """``<s> prompt target </s>`` with labels on the target and end-of-sequence tokens only."""
    prompts = tokenizer([prompt for prompt, _ in pairs])["input_ids"]
    targets = tokenizer([target for _, target in pairs], add_special_tokens=False)["input_ids"]
    features = []
    for prompt_ids, target_ids in zip(prompts, targets, strict=True):
        answer = [*target_ids, tokenizer.eos_token_id]
        features.append({"input_ids": prompt_ids + answer, "labels": [-100] * len(prompt_ids) + answer})
    return features


class _LogProgress(TrainerCallback):
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
) -> TrainingReport:
    """Fine-tune ``model`` on ``pairs`` and save it (LoRA merged) with its tokenizer to ``output_dir``."""
    if not pairs:
        raise ValueError("no training examples: the generated dataset is empty")
    torch.set_num_threads(settings.threads)
    features = tokenize_pairs(tokenizer, pairs)
    steps = max(1, math.ceil(len(features) * settings.epochs / settings.batch_size))
    if settings.lora is not None:
        model = get_peft_model(
            model,
            LoraConfig(
                r=settings.lora.r,
                lora_alpha=settings.lora.alpha,
                lora_dropout=settings.lora.dropout,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            ),
        )
    tokenizer.padding_side = "right"
    callback = _LogProgress(progress, steps)
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
        use_cpu=True,
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
    trained = trainer.model.merge_and_unload() if settings.lora is not None else trainer.model
    trained.save_pretrained(output_dir, safe_serialization=True)
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
    )


def load_student(directory: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A student checkpoint saved by ``save_pretrained``, on the CPU, with a left-padding tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    return model, tokenizer
