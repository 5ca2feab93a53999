"""Batched greedy decoding on the CPU, and the loss of each reference answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from pydantic import BaseModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from dataenvgym_dagster.machinery.student.training import tokenize_pairs

Progress = Callable[[str], None]


class Completion(BaseModel):
    """The student's greedy completion of a prompt, and its loss on the reference target."""

    text: str
    target_loss: float


class GenerationReport(BaseModel):
    prompts: int
    seconds: float
    prompts_per_second: float


@torch.inference_mode()
def complete(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, str]],
    max_new_tokens: int,
    batch_size: int = 256,
    threads: int = 2,
    progress: Progress = print,
) -> tuple[list[Completion], GenerationReport]:
    """Greedy completions of each prompt, and mean cross-entropy (nats/token) of each target.

    ``pairs`` are (prompt, reference target). Prompts are left-padded so that every row's
    generation starts at the same position.
    """
    torch.set_num_threads(threads)
    model.eval()
    tokenizer.padding_side = "left"
    started = time.perf_counter()
    completions: list[Completion] = []
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        encoded = tokenizer([prompt for prompt, _ in batch], return_tensors="pt", padding=True)
        generated = model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        texts = tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        losses = _target_losses(model, tokenizer, batch)
        completions += [Completion(text=text, target_loss=loss) for text, loss in zip(texts, losses, strict=True)]
        progress(f"evaluated {len(completions)}/{len(pairs)} prompts")
    seconds = time.perf_counter() - started
    return completions, GenerationReport(prompts=len(pairs), seconds=seconds, prompts_per_second=len(pairs) / seconds)


def _target_losses(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch: Sequence[tuple[str, str]]
) -> list[float]:
    features = tokenize_pairs(tokenizer, batch)
    width = max(len(f["input_ids"]) for f in features)
    # Left padding, as in generation; rotary positions make the offset irrelevant.
    input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(f["input_ids"])) + f["input_ids"] for f in features])
    labels = torch.tensor([[-100] * (width - len(f["labels"])) + f["labels"] for f in features])
    logits = model(input_ids=input_ids, attention_mask=(input_ids != tokenizer.pad_token_id).long()).logits
    shifted_labels = labels[:, 1:]
    token_losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), shifted_labels, ignore_index=-100, reduction="none"
    )
    mask = shifted_labels != -100
    return (token_losses.sum(dim=1) / mask.sum(dim=1)).tolist()
