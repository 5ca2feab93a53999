"""The tiny PaliGemma student behind the StudentBackend interface: one prefix for training and evaluation,
LoRA adapters carried across iterations as checkpoints whose every file is in the manifest."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.types import Problem
from dataenvgym_dagster.loop.checkpoints import ChecksumMismatchError, StudentCheckpoint, folder_checkpoint, student_weights
from dataenvgym_dagster.loop.steps import evaluate_student, student_texts
from dataenvgym_dagster.machinery.student import paligemma
from dataenvgym_dagster.machinery.student.backend import PALIGEMMA, StudentWeights, get_backend
from dataenvgym_dagster.machinery.student.settings import LoraSettings, StudentArchitecture, StudentSpec, TrainingSettings
from dataenvgym_dagster.machinery.warehouse import TABLES

VQA = get_domain("vqa")
TINY = StudentArchitecture(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64)
QUICK = TrainingSettings(learning_rate=0.01, batch_size=8, epochs=2, warmup_ratio=0.0, threads=1)
LORA = StudentSpec(lora=LoraSettings(r=16, alpha=32, dropout=0.05), generation={"max_new_tokens": 2, "batch_size": 8})
quiet = lambda message: None  # noqa: E731


def _problems(count: int, seed: int) -> list[Problem]:
    rng = random.Random(seed)
    skills = VQA.taxonomy.skills
    return [Problem(example_id=f"p/{i}", skill=skills[i % len(skills)], **VQA.sample(skills[i % len(skills)], rng).model_dump()) for i in range(count)]


def _texts(count: int, seed: int, home: Path):
    return student_texts(VQA, _problems(count, seed), StudentSpec(), home)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StudentCheckpoint]:
    """A home and a tiny PaliGemma pretrained (one step) as its base student, saved with save_pretrained as a hub model is."""
    home = tmp_path_factory.mktemp("vqa_home")
    directory = home / "checkpoints" / "vqa" / "base"
    backend = get_backend(StudentSpec(), PALIGEMMA)
    backend.pretrain_tiny(_texts(8, 0, home), TINY, 96, QUICK.model_copy(update={"epochs": 1}), directory, 0, quiet)
    return home, folder_checkpoint(home, directory, domain="vqa")


def test_training_and_evaluation_read_the_same_prefix(base):
    home, checkpoint = base
    _, processor = paligemma.load_student(student_weights(checkpoint, home))
    examples = paligemma.visual_examples(_texts(4, 1, home))
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


def test_a_text_without_exactly_one_image_is_refused_by_name():
    text = VQA.student_text(_problems(1, 0)[0]).model_copy(update={"images": ()})
    with pytest.raises(ValueError, match="has 0 images; the PaliGemma student reads exactly one"):
        paligemma.visual_examples([text])


@pytest.fixture(scope="module")
def first_adapter(base) -> StudentCheckpoint:
    """Iteration 1's LoRA student: a PEFT adapter folder on the base, recorded as an adapter checkpoint."""
    home, checkpoint = base
    directory = home / "checkpoints" / "vqa" / "x" / "iteration_1"
    get_backend(LORA, PALIGEMMA).train(student_weights(checkpoint, home), _texts(8, 2, home), QUICK, directory, 0, quiet)
    return folder_checkpoint(home, directory, domain="vqa", experiment="x", iteration=1, base=checkpoint)


def test_a_lora_adapter_saved_by_one_iteration_is_loaded_and_trained_on_by_the_next(base, first_adapter):
    home, _ = base
    first_dir = home / first_adapter.path
    saved = load_file(first_dir / "adapter_model.safetensors")
    assert any("vision_tower" in name for name in saved) and any("language_model" in name for name in saved)
    # Every file that decides what the student computes is in the manifest, the adapter's included.
    assert {"adapter_model.safetensors", "adapter_config.json"} <= {f.name for f in first_adapter.files}

    # The next iteration starts from that adapter (on the base student), not from fresh adapters.
    weights = student_weights(first_adapter, home)
    assert weights.adapter == first_dir
    continued, _ = paligemma.load_student(weights, trainable=True)
    loaded = {name: tensor for name, tensor in continued.state_dict().items() if "lora_" in name}
    name = next(n for n in saved if "lora_B" in n)
    match = next(v for k, v in loaded.items() if k.replace(".default", "") == name)
    assert torch.count_nonzero(saved[name]) and torch.equal(match, saved[name])  # lora_B starts at zero when fresh

    messages: list[str] = []
    second_dir = home / "checkpoints" / "vqa" / "x" / "iteration_2"
    get_backend(LORA, PALIGEMMA).train(weights, _texts(8, 3, home), QUICK, second_dir, 1, messages.append)
    assert any(f"continuing the LoRA adapter at {first_dir}" in m for m in messages)
    assert not torch.equal(load_file(second_dir / "adapter_model.safetensors")[name], saved[name])


def test_fresh_lora_adapters_depend_on_the_seed_not_on_what_the_process_drew_before(base, tmp_path):
    home, checkpoint = base
    saved = []
    for run, draws in enumerate((0, 5)):
        torch.rand(draws)  # an adapter loaded earlier in the process (an evaluation's) draws from torch's generator
        get_backend(LORA, PALIGEMMA).train(student_weights(checkpoint, home), _texts(8, 2, home), QUICK, tmp_path / str(run), 0, quiet)
        saved.append(load_file(tmp_path / str(run) / "adapter_model.safetensors"))
    assert saved[0].keys() == saved[1].keys() and all(torch.equal(saved[0][name], saved[1][name]) for name in saved[0])


def test_evaluation_refuses_a_vqa_checkpoint_whose_adapter_changed(base, first_adapter):
    home, _ = base
    benchmark = pl.DataFrame(
        [{"domain": "vqa", "split": "test", **p.warehouse_row()} for p in _problems(4, 5)], schema=TABLES["benchmark_problems"]
    )
    arguments = dict(experiment="x", iteration=1, student=LORA, home=home, progress=quiet)
    results, _ = evaluate_student(VQA, first_adapter, benchmark, "test", **arguments)
    assert results.height == 4 and results["checkpoint_sha256"].unique().to_list() == [first_adapter.sha256]

    adapter = home / first_adapter.path / "adapter_model.safetensors"
    original = adapter.read_bytes()
    try:
        middle = len(original) // 2  # inside the tensors (the last bytes may be zeros of an untrained lora_B)
        adapter.write_bytes(original[:middle] + bytes(255 - b for b in original[middle : middle + 8]) + original[middle + 8 :])
        with pytest.raises(ChecksumMismatchError, match=r"iteration_1 student for vqa\|x at .* has changed since it was "
                           r"materialised: adapter_model.safetensors \(sha256"):
            evaluate_student(VQA, first_adapter, benchmark, "test", **arguments)
    finally:
        adapter.write_bytes(original)


def test_batched_answers_equal_one_at_a_time_answers(base):
    home, checkpoint = base
    model, processor = paligemma.load_student(StudentWeights(model=str(home / checkpoint.path)))
    examples = paligemma.visual_examples(_texts(6, 4, home))
    batched, _ = paligemma.complete(model, processor, examples, 3, batch_size=6, threads=1, progress=quiet)
    single, _ = paligemma.complete(model, processor, examples, 3, batch_size=1, threads=1, progress=quiet)
    assert [c.text for c in batched] == [c.text for c in single]
    assert [round(c.target_loss, 4) for c in batched] == [round(c.target_loss, 4) for c in single]
