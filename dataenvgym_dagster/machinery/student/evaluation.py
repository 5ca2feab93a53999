"""Batched greedy decoding with transformers, and the loss of each reference answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from dataenvgym_dagster.machinery.student.backend import Completion, GenerationReport
from dataenvgym_dagster.machinery.student.training import (
    encode_prompts,
    max_positions,
    prepare_tokenizer,
    tokenize_pairs,
)

Progress = Callable[[str], None]

__all__ = ["Completion", "GenerationReport", "complete", "left_padded"]


def left_padded(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows padded on the left to one width, and their attention mask (1 on real tokens), from lengths."""
    width = max(len(row) for row in rows)
    ids = torch.tensor([[pad_id] * (width - len(row)) + list(row) for row in rows], device=device)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    return ids, mask


@torch.inference_mode()
def complete(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, str]],
    max_new_tokens: int,
    batch_size: int = 256,
    threads: int = 2,
    progress: Progress = print,
    chat: bool = False,
) -> tuple[list[Completion], GenerationReport]:
    """Greedy completions of each prompt, and mean cross-entropy (nats/token) of each target.

    ``pairs`` are (prompt, reference target). Prompts are encoded exactly as at training
    (``encode_prompts``) and left-padded so that every row's generation starts at the same position.
    """
    torch.set_num_threads(threads)
    prepare_tokenizer(tokenizer)
    model.eval()
    tokenizer.padding_side = "left"
    limit = max_positions(model)
    started = time.perf_counter()
    completions: list[Completion] = []
    generated_tokens = 0
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        prompts = encode_prompts(tokenizer, [prompt for prompt, _ in batch], chat)
        longest = max(len(ids) for ids in prompts)
        if limit is not None and longest + max_new_tokens > limit:
            progress(
                f"warning: a prompt of {longest} tokens plus max_new_tokens {max_new_tokens} exceeds the student's "
                f"{limit} positions; its answer may be cut short"
            )
        input_ids, attention_mask = left_padded(prompts, tokenizer.pad_token_id, model.device)
        generated = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = generated[:, input_ids.shape[1] :]
        generated_tokens += int((new_tokens != tokenizer.pad_token_id).sum())
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        losses = _target_losses(model, tokenizer, batch, chat)
        completions += [Completion(text=text, target_loss=loss) for text, loss in zip(texts, losses, strict=True)]
        progress(f"evaluated {len(completions)}/{len(pairs)} prompts")
    seconds = time.perf_counter() - started
    return completions, GenerationReport(
        prompts=len(pairs), seconds=seconds, prompts_per_second=len(pairs) / seconds, generated_tokens=generated_tokens
    )


def _target_losses(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch: Sequence[tuple[str, str]], chat: bool
) -> list[float]:
    features = tokenize_pairs(tokenizer, batch, chat=chat, max_length=max_positions(model))
    # Left padding, as in generation; rotary positions make the offset irrelevant.
    input_ids, attention_mask = left_padded([f["input_ids"] for f in features], tokenizer.pad_token_id, model.device)
    labels, _ = left_padded([f["labels"] for f in features], -100, model.device)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
    shifted_labels = labels[:, 1:]
    token_losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), shifted_labels, ignore_index=-100, reduction="none"
    )
    mask = shifted_labels != -100
    return (token_losses.sum(dim=1) / mask.sum(dim=1)).tolist()
