"""The tiny PaliGemma student: one prefix for training and evaluation, LoRA adapters carried across iterations."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.types import Problem
from dataenvgym_dagster.loop.checkpoints import StudentCheckpoint, folder_checkpoint
from dataenvgym_dagster.loop.visual_student import train, visual_examples
from dataenvgym_dagster.machinery.student import paligemma
from dataenvgym_dagster.machinery.student.settings import LoraSettings, StudentArchitecture, TrainingSettings

VQA = get_domain("vqa")
TINY = StudentArchitecture(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64)
QUICK = TrainingSettings(learning_rate=0.01, batch_size=8, epochs=2, warmup_ratio=0.0, threads=1)


def _problems(count: int, seed: int) -> list[Problem]:
    rng = random.Random(seed)
    skills = VQA.taxonomy.skills
    return [Problem(example_id=f"p/{i}", skill=skills[i % len(skills)], **VQA.sample(skills[i % len(skills)], rng).model_dump()) for i in range(count)]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StudentCheckpoint]:
    """A home and a tiny PaliGemma saved as its base student (save_pretrained, as a hub model is)."""
    home = tmp_path_factory.mktemp("vqa_home")
    examples = visual_examples(VQA, _problems(16, 0), home)
    processor = paligemma.build_processor(text for e in examples for text in (e.prefix, e.suffix))
    model = paligemma.build_student(TINY, processor, seed=0)
    directory = home / "checkpoints" / "vqa" / "base"
    paligemma.save_student(model, processor, directory)
    return home, folder_checkpoint(home, directory, domain="vqa")


def test_training_and_evaluation_read_the_same_prefix(base):
    home, checkpoint = base
    _, processor = paligemma.load_student(home / checkpoint.path)
    examples = visual_examples(VQA, _problems(4, 1), home)
    training = paligemma.training_batch(processor, examples)
    evaluation = paligemma.generation_batch(processor, examples)
    for row in range(len(examples)):
        prefix = training["input_ids"][row][training["token_type_ids"][row] == 0]  # right-padded: prefix, then suffix
        prefix = prefix[prefix != processor.tokenizer.pad_token_id]
        prompt = evaluation["input_ids"][row][evaluation["attention_mask"][row] == 1]  # left-padded
        assert torch.equal(prefix, prompt)
        decoded = processor.tokenizer.decode(prompt[processor.image_seq_length :], skip_special_tokens=True)
        assert decoded.strip() == examples[row].prefix and examples[row].prefix.startswith("answer en ")
        # Only the answer and its end-of-sequence carry a loss.
        labelled = training["labels"][row][training["labels"][row] != -100]
        assert processor.tokenizer.decode(labelled, skip_special_tokens=True).strip() == examples[row].suffix


def test_a_lora_adapter_saved_by_one_iteration_is_loaded_and_trained_on_by_the_next(base):
    home, checkpoint = base
    lora = LoraSettings(r=16, alpha=32, dropout=0.05)
    first_dir = home / "checkpoints" / "vqa" / "x" / "iteration_1"
    messages: list[str] = []
    train(VQA, _problems(8, 2), start_from=checkpoint, base=checkpoint, settings=QUICK, lora=lora, directory=first_dir,
          seed=0, home=home, progress=messages.append)
    adapter = first_dir / paligemma.ADAPTER_DIR
    saved = load_file(adapter / "adapter_model.safetensors")
    assert any("vision_tower" in name for name in saved) and any("language_model" in name for name in saved)
    first = folder_checkpoint(home, first_dir, domain="vqa", experiment="x", iteration=1)

    # The next iteration starts from that adapter (on the base student), not from fresh adapters.
    model, _ = paligemma.load_student(home / checkpoint.path)
    continued = paligemma.with_lora(model, lora, adapter)
    loaded = {name: tensor for name, tensor in continued.state_dict().items() if "lora_" in name}
    name = next(n for n in saved if "lora_B" in n)
    match = next(v for k, v in loaded.items() if k.replace(".default", "") == name)
    assert torch.count_nonzero(saved[name]) and torch.equal(match, saved[name])  # lora_B starts at zero when fresh

    second_dir = home / "checkpoints" / "vqa" / "x" / "iteration_2"
    train(VQA, _problems(8, 3), start_from=first, base=checkpoint, settings=QUICK, lora=lora, directory=second_dir,
          seed=1, home=home, progress=messages.append)
    assert any("continuing the LoRA adapter of the iteration_1 student" in m for m in messages)
    assert not torch.equal(load_file(second_dir / paligemma.ADAPTER_DIR / "adapter_model.safetensors")[name], saved[name])


def test_batched_answers_equal_one_at_a_time_answers(base):
    home, checkpoint = base
    model, processor = paligemma.load_student(home / checkpoint.path)
    examples = visual_examples(VQA, _problems(6, 4), home)
    batched, _ = paligemma.complete(model, processor, examples, 3, batch_size=6, threads=1, progress=lambda m: None)
    single, _ = paligemma.complete(model, processor, examples, 3, batch_size=1, threads=1, progress=lambda m: None)
    assert [c.text for c in batched] == [c.text for c in single]
    assert [round(c.target_loss, 4) for c in batched] == [round(c.target_loss, 4) for c in single]
