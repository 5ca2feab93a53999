"""The student machinery on a micro model: tokenizer, training (full and LoRA), batched decoding."""

import math
import random

import pytest
import torch
from peft import PeftModel

from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.machinery.student.evaluation import complete
from dataenvgym_dagster.machinery.student.model import build_student
from dataenvgym_dagster.machinery.student.settings import LoraSettings, StudentArchitecture, TrainingSettings
from dataenvgym_dagster.machinery.student.tokenizer import train_tokenizer
from dataenvgym_dagster.machinery.student.training import load_student, train_student

MICRO = StudentArchitecture(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)


@pytest.fixture(scope="module")
def pairs():
    rng = random.Random(0)
    drafts = [ARITHMETIC.sample(skill, rng) for skill in ARITHMETIC.taxonomy.skills for _ in range(20)]
    return [(f"{d.question}=", d.answer[::-1]) for d in drafts]


@pytest.fixture(scope="module")
def tokenizer(pairs):
    return train_tokenizer(prompt + target for prompt, target in pairs)


def test_the_tokenizer_gives_one_token_per_digit_and_round_trips(tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("(12+39)*4=")["input_ids"])
    assert tokens == ["<s>", "(", "1", "2", "+", "3", "9", ")", "*", "4", "="]
    assert tokenizer.decode(tokenizer("731?42=<")["input_ids"], skip_special_tokens=True) == "731?42=<"


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("lora", [None, LoraSettings()], ids=["full", "lora"])
def test_training_updates_the_student_and_saves_a_loadable_checkpoint(tmp_path, tokenizer, pairs, lora):
    model = build_student(MICRO, tokenizer, seed=0)
    before = weights(model).clone()
    report = train_student(
        model, tokenizer, pairs, TrainingSettings(batch_size=16, learning_rate=3e-3), tmp_path, seed=0,
        progress=lambda _: None, lora=lora,
    )
    assert report.steps == math.ceil(len(pairs) / 16)
    assert report.tokens > 0 and report.final_loss > 0
    if lora is None:
        reloaded, reloaded_tokenizer = load_student(tmp_path)
        assert len(reloaded_tokenizer) == len(tokenizer)
    else:
        # LoRA students are saved as PEFT adapter folders, never merged copies; plain peft loads them.
        assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
        assert not (tmp_path / "model.safetensors").exists()
        reloaded = PeftModel.from_pretrained(build_student(MICRO, tokenizer, seed=0), tmp_path).merge_and_unload()
    assert not torch.equal(weights(reloaded), before)
    assert weights(reloaded).numel() == before.numel()


def test_fresh_lora_adapters_depend_on_the_seed_not_on_what_the_process_drew_before(tmp_path, tokenizer, pairs):
    saved = []
    for run, draws in enumerate((0, 7)):
        model = build_student(MICRO, tokenizer, seed=0)  # seeds the generator itself
        torch.rand(draws)  # e.g. an adapter loaded for an evaluation in the same process draws from the global generator
        train_student(
            model, tokenizer, pairs[:32], TrainingSettings(batch_size=16), tmp_path / str(run),
            seed=3, progress=lambda _: None, lora=LoraSettings(),
        )
        saved.append(PeftModel.from_pretrained(build_student(MICRO, tokenizer, seed=0), tmp_path / str(run)))
    first, second = ({n: p for n, p in model.named_parameters() if "lora_" in n} for model in saved)
    assert first and all(torch.equal(first[name], second[name]) for name in first)


def test_batched_left_padded_decoding_matches_one_prompt_at_a_time(tmp_path, tokenizer, pairs):
    model = build_student(MICRO, tokenizer, seed=0)
    train_student(model, tokenizer, pairs, TrainingSettings(batch_size=16, learning_rate=3e-3), tmp_path, 0, lambda _: None)
    model, tokenizer = load_student(tmp_path)
    sample = pairs[::25]  # prompts of different lengths, so batches need padding
    batched, _ = complete(model, tokenizer, sample, max_new_tokens=6, batch_size=64, progress=lambda _: None)
    single, _ = complete(model, tokenizer, sample, max_new_tokens=6, batch_size=1, progress=lambda _: None)
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.target_loss for c in batched] == pytest.approx([c.target_loss for c in single], rel=1e-4, abs=1e-5)
