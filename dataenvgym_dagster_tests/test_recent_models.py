"""A checkpoint read again in the same process is a copy of what was loaded, never a stale or shared model."""

import os

import pytest
import torch

from dataenvgym_dagster.machinery.student.backend import StudentWeights
from dataenvgym_dagster.machinery.student.causal_lm import _checkpoint_key, _load_model, load_model
from dataenvgym_dagster.machinery.student.recent_models import RecentModels, folder_identity
from dataenvgym_dagster.machinery.student.settings import StudentSpec

from .tiny_students import save_tiny_student

SPEC = StudentSpec(model="unused")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_student(tmp_path_factory.mktemp("recent") / "student", "llama", seed=0)


def counting(weights: StudentWeights, loads: list):
    def load():
        loads.append(weights.model)
        return _load_model(weights, SPEC, False)
    return load


def weights_of(model) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_a_second_read_is_a_copy_of_the_first_load_and_changing_it_changes_nothing_kept(tiny):
    recent, loads, weights = RecentModels(), [], StudentWeights(model=str(tiny))
    key = _checkpoint_key(weights, SPEC, False)
    first, tokenizer = recent.get(lambda: key, counting(weights, loads))
    original = weights_of(first)
    with torch.no_grad():
        for parameter in first.parameters():
            parameter.add_(1.0)  # what training does to the model it was given
    tokenizer.padding_side = "right"
    second, second_tokenizer = recent.get(lambda: key, counting(weights, loads))
    assert loads == [str(tiny)]  # loaded once
    assert second is not first and second_tokenizer is not tokenizer
    assert all(torch.equal(second.state_dict()[name], tensor) for name, tensor in original.items())
    assert second_tokenizer.padding_side == "left"
    assert second.lm_head.weight.data_ptr() == second.model.embed_tokens.weight.data_ptr()  # still tied, as loaded
    prompt = second_tokenizer(["12+7="], return_tensors="pt")
    reloaded = _load_model(weights, SPEC, False)[0]
    assert torch.equal(second(**prompt).logits, reloaded(**prompt).logits)


def test_files_written_again_are_loaded_again(tmp_path):
    folder = save_tiny_student(tmp_path / "student", "llama", seed=0)
    weights = StudentWeights(model=str(folder))
    before = load_model(weights, SPEC)[0]
    fresh = save_tiny_student(tmp_path / "rewritten", "llama", seed=1)
    os.rename(folder, tmp_path / "old")
    os.rename(fresh, folder)  # as a re-run puts a new checkpoint in place
    after = load_model(weights, SPEC)[0]
    reloaded = _load_model(weights, SPEC, False)[0]
    assert all(torch.equal(after.state_dict()[name], tensor) for name, tensor in reloaded.state_dict().items())
    assert not torch.equal(after.lm_head.weight, before.lm_head.weight)
    assert _checkpoint_key(weights, SPEC, False) != _checkpoint_key(StudentWeights(model=str(tmp_path / "old")), SPEC, False)


def test_a_file_edited_in_place_to_the_same_size_and_time_changes_the_key(tmp_path):
    folder = save_tiny_student(tmp_path / "student", "llama", seed=0)
    weights = StudentWeights(model=str(folder))
    key = _checkpoint_key(weights, SPEC, False)
    assert {name for name, _ in folder_identity(folder)} >= {"config.json", "model.safetensors", "tokenizer.json"}
    config = folder / "config.json"
    stat = config.stat()
    config.write_text(config.read_text().replace('"hidden_act": "silu"', '"hidden_act": "gelu"'))
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # what one clock tick allows
    assert (config.stat().st_size, config.stat().st_ino, config.stat().st_mtime_ns) == (stat.st_size, stat.st_ino, stat.st_mtime_ns)
    assert _checkpoint_key(weights, SPEC, False) != key
    assert _checkpoint_key(weights, SPEC, True) == _checkpoint_key(weights, SPEC, False)  # no adapter: the same model
    with_adapter = StudentWeights(model=str(folder), adapter=folder)  # any folder of files stands for one here
    assert _checkpoint_key(with_adapter, SPEC, True) != _checkpoint_key(with_adapter, SPEC, False)  # trainable or not


def test_files_replaced_while_loading_are_not_kept(tmp_path):
    folder = save_tiny_student(tmp_path / "student", "llama", seed=0)
    weights, recent = StudentWeights(model=str(folder)), RecentModels()

    def load_while_a_new_checkpoint_replaces_the_files():
        loaded = _load_model(weights, SPEC, False)
        os.rename(folder, tmp_path / "old")
        os.rename(save_tiny_student(tmp_path / "new", "llama", seed=1), folder)
        return loaded

    recent.get(lambda: _checkpoint_key(weights, SPEC, False), load_while_a_new_checkpoint_replaces_the_files)
    assert len(recent) == 0


def test_hub_ids_and_large_models_are_not_kept(tiny):
    assert _checkpoint_key(StudentWeights(model="google/gemma-2-2b"), SPEC, False) is None
    assert _checkpoint_key(StudentWeights(model=str(tiny), adapter=tiny / "no-adapter-here"), SPEC, False) is None
    loads, weights = [], StudentWeights(model=str(tiny))
    small = RecentModels(max_bytes=1_000)
    key = _checkpoint_key(weights, SPEC, False)
    small.get(lambda: key, counting(weights, loads))
    small.get(lambda: key, counting(weights, loads))
    assert len(loads) == 2 and len(small) == 0


def test_only_the_last_checkpoints_are_kept(tmp_path):
    recent, loads = RecentModels(capacity=2), []
    folders = [save_tiny_student(tmp_path / f"student_{seed}", "llama", seed=seed) for seed in range(3)]
    for folder in [*folders, folders[2], folders[1], folders[0]]:
        weights = StudentWeights(model=str(folder))
        recent.get(lambda: _checkpoint_key(weights, SPEC, False), counting(weights, loads))
    assert loads == [str(folders[0]), str(folders[1]), str(folders[2]), str(folders[0])]
    assert len(recent) == 2
