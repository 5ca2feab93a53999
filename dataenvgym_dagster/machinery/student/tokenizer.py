"""A tokenizer trained locally, one token per digit, saved in the Hugging Face format."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 64) -> PreTrainedTokenizerFast:
    """Train a byte-pair tokenizer on ``corpus``.

    Digits are always split one per token so the student can do column arithmetic; merges are
    only learnt inside runs of non-digit characters.
    """
    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.Punctuation(behavior="isolated")]
    )
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS.values()))
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    bos = SPECIAL_TOKENS["bos_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.token_to_id(bos))]
    )
    tokenizer.decoder = decoders.Fuse()  # tokens are pieces of one string: join without spaces
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)
    wrapped.padding_side = "left"  # generation pads on the left; training masks padding anyway
    return wrapped
