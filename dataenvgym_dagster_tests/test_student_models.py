"""Any Hugging Face causal LM as the student: tiny Llama, Qwen2 and Gemma-2 folders loaded like hub ids."""

import math
import random

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.types import StudentText
from dataenvgym_dagster.machinery.student.backend import StudentWeights, get_backend
from dataenvgym_dagster.machinery.student.evaluation import complete
from dataenvgym_dagster.machinery.student.settings import (
    GenerationSettings,
    LoraSettings,
    StudentSpec,
    TrainingSettings,
)
from dataenvgym_dagster.machinery.student.training import (
    SequenceTooLongError,
    encode_prompts,
    token_ids,
    tokenize_pairs,
    train_student,
)

from .tiny_students import save_tiny_student

QUIET = lambda message: None
TRAINING = TrainingSettings(batch_size=16, learning_rate=1e-2, epochs=1)


@pytest.fixture(scope="module")
def texts() -> list[StudentText]:
    rng = random.Random(1)
    skills = list(ARITHMETIC.taxonomy.skills)
    drafts = [ARITHMETIC.sample(skills[i % len(skills)], rng) for i in range(48)]
    return [StudentText(prompt=f"{d.question}=", target=d.answer[::-1]) for d in drafts]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("hub")
    return {name: save_tiny_student(root / name, name) for name in ("llama", "qwen2", "gemma2")}


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "gemma2"])
def test_a_saved_model_of_each_architecture_trains_a_lora_adapter_and_answers(tmp_path, folders, texts, architecture):
    spec = StudentSpec(model=str(folders[architecture]), lora=LoraSettings(r=4, alpha=8), generation=GenerationSettings(max_new_tokens=4))
    backend = get_backend(spec)
    report = backend.train(StudentWeights(spec.model), texts, TRAINING, tmp_path, seed=0, progress=QUIET)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    assert 0 < report.trainable_parameters < report.parameters
    # Plain peft loads the adapter folder onto the base, unchanged.
    base = AutoModelForCausalLM.from_pretrained(folders[architecture])
    assert type(base).__name__.lower().startswith(architecture)
    adapted = PeftModel.from_pretrained(base, tmp_path)
    assert any("lora_A" in name for name, _ in adapted.named_parameters())
    completions, generation = backend.complete(StudentWeights(spec.model, adapter=tmp_path), texts[:8], QUIET)
    assert generation.prompts == 8
    assert all(math.isfinite(c.target_loss) for c in completions)


def test_a_student_without_a_pad_token_trains_and_answers_in_batches_as_one_at_a_time(tmp_path, folders, texts):
    assert AutoTokenizer.from_pretrained(folders["llama"]).pad_token is None
    spec = StudentSpec(model=str(folders["llama"]), generation=GenerationSettings(max_new_tokens=5))
    report = get_backend(spec).train(StudentWeights(spec.model), texts, TRAINING, tmp_path, seed=0, progress=QUIET)
    assert report.steps == 3 and math.isfinite(report.final_loss)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    pairs = [(t.prompt, t.target) for t in texts[::5]]  # prompts of different lengths, so batches need padding
    batched, _ = complete(model, tokenizer, pairs, max_new_tokens=5, batch_size=16, progress=QUIET)
    single, _ = complete(model, tokenizer, pairs, max_new_tokens=5, batch_size=1, progress=QUIET)
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.target_loss for c in batched] == pytest.approx([c.target_loss for c in single], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "gemma2"])
def test_fast_token_ids_equal_what_the_tokenizer_call_gives(folders, texts, architecture):
    tokenizer = AutoTokenizer.from_pretrained(folders[architecture])
    chat = [] if tokenizer.chat_template is None else [
        tokenizer.apply_chat_template([{"role": "user", "content": t.prompt}], tokenize=False, add_generation_prompt=True)
        for t in texts[:4]
    ]
    batch = [t.prompt for t in texts] + [t.target for t in texts] + chat + ["", " 12 + 7 =", "é?ü", tokenizer.eos_token * 2]
    for special in (True, False):
        assert token_ids(tokenizer, batch, special_tokens=special) == tokenizer(batch, add_special_tokens=special)["input_ids"]
    assert token_ids(tokenizer, [], special_tokens=True) == []


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "gemma2"])
def test_repeated_texts_get_the_ids_the_tokenizer_call_gives_each_in_its_own_list(folders, texts, architecture):
    tokenizer = AutoTokenizer.from_pretrained(folders[architecture])
    batch = [t.target for t in texts] * 3 + [texts[0].prompt] * 4 + ["", ""]  # each distinct text is encoded once
    for special in (True, False):
        ids = token_ids(tokenizer, batch, special_tokens=special)
        assert ids == tokenizer(batch, add_special_tokens=special)["input_ids"]
        assert len({id(row) for row in ids}) == len(ids)


def test_a_pair_is_tokenized_the_same_alone_and_among_repeats(folders, texts):
    tokenizer = AutoTokenizer.from_pretrained(folders["qwen2"])
    pairs = [(t.prompt, t.target) for t in texts]
    batch = pairs + pairs[::-1] + pairs[:5]
    assert tokenize_pairs(tokenizer, batch) == [tokenize_pairs(tokenizer, [pair])[0] for pair in batch]
    assert tokenize_pairs(tokenizer, batch, chat=True) == [tokenize_pairs(tokenizer, [pair], chat=True)[0] for pair in batch]


def test_chat_prompts_are_the_same_tokens_at_training_and_at_evaluation(folders):
    tokenizer = AutoTokenizer.from_pretrained(folders["qwen2"])
    pairs = [("12+39=", "15"), ("7*8=", "65")]
    prompts = encode_prompts(tokenizer, [p for p, _ in pairs], chat=True)
    features = tokenize_pairs(tokenizer, pairs, chat=True)
    for prompt_ids, feature in zip(prompts, features, strict=True):
        assert feature["input_ids"][: len(prompt_ids)] == prompt_ids
        assert feature["labels"][: len(prompt_ids)] == [-100] * len(prompt_ids)
        assert feature["labels"][-1] == tokenizer.eos_token_id
    rendered = tokenizer.decode(prompts[0])
    assert rendered.startswith("<|im_start|>user") and rendered.rstrip("\n").endswith("<|im_start|>assistant")


def test_a_student_trained_on_chat_prompts_is_evaluated_on_chat_prompts(tmp_path, folders, texts):
    chat = StudentSpec(model=str(folders["qwen2"]), prompt_format="chat", generation=GenerationSettings(max_new_tokens=4))
    plain = chat.model_copy(update={"prompt_format": "plain"})
    settings = TrainingSettings(batch_size=8, learning_rate=1e-2, epochs=4)
    get_backend(chat).train(StudentWeights(chat.model), texts, settings, tmp_path, seed=0, progress=QUIET)
    trained = StudentWeights(str(tmp_path))
    chat_loss = [c.target_loss for c in get_backend(chat).complete(trained, texts, QUIET)[0]]
    plain_loss = [c.target_loss for c in get_backend(plain).complete(trained, texts, QUIET)[0]]
    # The student learnt its answers after the template's assistant turn, not after the bare prompt.
    assert sum(chat_loss) < sum(plain_loss)


def test_a_chat_prompt_format_without_a_chat_template_is_refused(folders):
    tokenizer = AutoTokenizer.from_pretrained(folders["llama"])
    with pytest.raises(ValueError, match="has no chat template"):
        encode_prompts(tokenizer, ["1+1="], chat=True)


def test_answers_of_hundreds_of_tokens_train_and_one_too_long_for_the_model_is_named(tmp_path, folders):
    long_answer = "".join(str(i % 10) for i in range(300))
    pairs = [("12+39=", long_answer), ("3*4=", "21")]
    model = AutoModelForCausalLM.from_pretrained(folders["gemma2"])
    tokenizer = AutoTokenizer.from_pretrained(folders["gemma2"])
    report = train_student(model, tokenizer, pairs, TrainingSettings(batch_size=2), tmp_path, seed=0, progress=QUIET)
    assert report.tokens > 300
    too_long = [("12+39=", long_answer * 2)]
    with pytest.raises(SequenceTooLongError, match=r"pair 0 .* more than the student's 512 positions"):
        tokenize_pairs(tokenizer, too_long, max_length=model.config.max_position_embeddings)


def test_full_fine_tuning_of_a_saved_model_saves_a_whole_model(tmp_path, folders, texts):
    spec = StudentSpec(model=str(folders["gemma2"]))
    before = torch.cat([p.flatten() for p in AutoModelForCausalLM.from_pretrained(spec.model).parameters()])
    get_backend(spec).train(StudentWeights(spec.model), texts, TRAINING, tmp_path, seed=0, progress=QUIET)
    assert (tmp_path / "model.safetensors").exists() and not (tmp_path / "adapter_config.json").exists()
    after = torch.cat([p.flatten() for p in AutoModelForCausalLM.from_pretrained(tmp_path).parameters()])
    assert after.numel() == before.numel() and not torch.equal(after, before)


def test_a_backend_answering_twice_loads_a_checkpoint_once_and_one_written_again_at_its_path_afresh(tmp_path, folders, texts):
    import dataclasses
    import shutil

    from dataenvgym_dagster.machinery.student.causal_lm import load_model

    spec = StudentSpec(model=str(folders["llama"]), lora=LoraSettings(r=4, alpha=8), generation=GenerationSettings(max_new_tokens=4))
    adapter, other = tmp_path / "iteration_1", tmp_path / "elsewhere"
    get_backend(spec).train(StudentWeights(spec.model), texts[:16], TrainingSettings(batch_size=4, learning_rate=5e-2), other, seed=1, progress=QUIET)
    get_backend(spec).train(StudentWeights(spec.model), texts, TRAINING, adapter, seed=0, progress=QUIET)
    weights = StudentWeights(spec.model, adapter=adapter, digest="manifest of iteration 1")
    backend = get_backend(spec)  # the loop makes one per evaluation step, for both splits
    first, _ = backend.complete(weights, texts[:8], QUIET)
    kept, _ = backend.answering(weights)
    again, _ = backend.complete(weights, texts[:8], QUIET)
    assert backend.answering(weights)[0] is kept and again == first
    assert get_backend(spec).answering(weights)[0] is not kept  # another backend (another step) loads its own

    # Another checkpoint's manifest, then other weights at the same path, written behind the backend's back
    # (by another process, say): each is loaded afresh, and answers as a fresh load of it does.
    assert backend.answering(dataclasses.replace(weights, digest="another manifest"))[0] is not kept
    kept, _ = backend.answering(weights)
    shutil.copytree(other, adapter, dirs_exist_ok=True)
    rewritten, _ = backend.complete(weights, texts[:8], QUIET)
    assert backend.answering(weights)[0] is not kept
    model, tokenizer = load_model(weights, spec)
    fresh, _ = complete(model.merge_and_unload(), tokenizer, [(t.prompt, t.target) for t in texts[:8]], 4)
    assert [c.target_loss for c in rewritten] == [c.target_loss for c in fresh] != [c.target_loss for c in first]
