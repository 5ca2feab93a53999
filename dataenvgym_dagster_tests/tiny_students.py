"""Tiny students of the real architectures (Llama, Qwen2, Gemma-2), built here as a hub model would be.

Each is a random-initialised config of the architecture, saved with ``save_pretrained`` beside a
tokenizer trained locally with ``tokenizers``, so that the project loads it through exactly the
code path a hub id takes (``from_pretrained(folder)``). Their tokenizers differ the way real ones
do: Llama's adds BOS and has no pad token; Qwen2's adds no BOS and has a ChatML chat template;
Gemma-2's adds BOS, has a pad token and Gemma's turn template.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, Gemma2Config, LlamaConfig, PreTrainedTokenizerFast, Qwen2Config

from dataenvgym_dagster.domain.arithmetic import ARITHMETIC

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA_TURNS = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{{ message['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@dataclass(frozen=True)
class Flavour:
    config: type
    specials: dict[str, str]  # bos/eos/pad/unk as the tokenizer names them (absent: the tokenizer has none)
    extra_specials: tuple[str, ...] = ()
    chat_template: str | None = None


FLAVOURS = {
    "llama": Flavour(LlamaConfig, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    "qwen2": Flavour(
        Qwen2Config, {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, ("<|im_start|>",), CHATML
    ),
    "gemma2": Flavour(
        Gemma2Config,
        {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"},
        ("<start_of_turn>", "<end_of_turn>"),
        GEMMA_TURNS,
    ),
}


def arithmetic_corpus(count: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    skills = list(ARITHMETIC.taxonomy.skills)
    drafts = [ARITHMETIC.sample(skills[i % len(skills)], rng) for i in range(count)]
    return [f"{d.question}={d.answer[::-1]}" for d in drafts] + ["user\nmodel\nassistant\n", "Q: A: \n\n"]


def train_flavoured_tokenizer(flavour: Flavour, corpus: list[str]) -> PreTrainedTokenizerFast:
    specials = [*flavour.specials.values(), *flavour.extra_specials]
    tokenizer = Tokenizer(models.BPE(unk_token=flavour.specials.get("unk_token")))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.Punctuation(behavior="isolated")]
    )
    tokenizer.train_from_iterator(corpus, trainer=trainers.BpeTrainer(vocab_size=96, special_tokens=specials))
    bos = flavour.specials.get("bos_token")
    if bos:
        tokenizer.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tokenizer.token_to_id(bos))])
    tokenizer.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, chat_template=flavour.chat_template,
        additional_special_tokens=list(flavour.extra_specials), **flavour.specials,
    )


def save_tiny_student(folder: Path, architecture: str, seed: int = 0, max_positions: int = 512, head_dim: int = 16) -> Path:
    """A random-initialised ``architecture`` model and its tokenizer, saved as a hub snapshot would be.

    vLLM's CPU attention needs a head dimension it has kernels for: 64 works, the default 16 does not.
    """
    flavour = FLAVOURS[architecture]
    tokenizer = train_flavoured_tokenizer(flavour, arithmetic_corpus())
    sizes = {
        "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": head_dim, "max_position_embeddings": max_positions,
        "tie_word_embeddings": True, "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if architecture == "gemma2":
        sizes |= {"query_pre_attn_scalar": head_dim, "sliding_window": max_positions}
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(flavour.config(**sizes))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
