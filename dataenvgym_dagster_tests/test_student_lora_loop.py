"""The loop with a saved real-architecture student named in the catalogue, trained with LoRA adapters."""

import json

import polars as pl
import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from dataenvgym_dagster.machinery.warehouse import Warehouse

from .conftest import MICRO_CATALOG, make_workspace
from .tiny_students import save_tiny_student

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """Two iterations of the micro ``skill_list`` experiment with a tiny Llama (no pad token) as the student."""
    root = tmp_path_factory.mktemp("lora_loop")
    hub = save_tiny_student(root / "hub_llama", "llama", max_positions=64)
    arithmetic = {
        **MICRO_CATALOG["domains"]["arithmetic"],
        "student": {"model": str(hub), "lora": {"r": 4, "alpha": 8}, "generation": {"max_new_tokens": 6, "batch_size": 64}},
    }
    experiments = {"skill_list": {**MICRO_CATALOG["experiments"]["skill_list"], "quality": {"drop_solved": True}}}
    workspace = make_workspace(root, {"domains": {"arithmetic": arithmetic}, "experiments": experiments})
    workspace.run_foundations()
    assert workspace.run_loop().success
    return workspace, hub


def adapter(workspace, iteration: int):
    return workspace.home / "checkpoints" / "arithmetic" / "skill_list" / f"iteration_{iteration}"


def test_the_base_student_is_the_named_model_and_nothing_is_copied(lora_run):
    workspace, hub = lora_run
    stored = json.loads((workspace.home / "artifacts" / "arithmetic" / "base_student.json").read_text())["value"]
    assert (stored["kind"], stored["model"]) == ("pretrained", str(hub))
    assert not (workspace.home / "checkpoints" / "arithmetic" / "base").exists()


def test_each_iteration_saves_an_adapter_folder_that_plain_peft_loads(lora_run):
    workspace, hub = lora_run
    for iteration in (1, 2):
        folder = adapter(workspace, iteration)
        assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in folder.iterdir()}
        assert not list(folder.glob("model*.safetensors"))
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(hub), folder)
        assert model.peft_config["default"].r == 4


def test_iteration_2_continues_training_iteration_1s_adapter(lora_run):
    workspace, _ = lora_run
    first, second = (load_file(adapter(workspace, t) / "adapter_model.safetensors") for t in (1, 2))
    lora_a = sorted(name for name in first if "lora_A" in name)
    # A fresh adapter would start from new random lora_A matrices; a continued one moves a little from iteration 1's.
    for name in lora_a:
        similarity = torch.nn.functional.cosine_similarity(first[name].flatten(), second[name].flatten(), dim=0)
        assert similarity > 0.9, name
    with Warehouse(workspace.home).connect() as connection:
        lineage = connection.sql("SELECT checkpoint, source FROM lineage WHERE iteration = 2 AND source_kind = 'checkpoint'").pl()
    assert lineage.rows() == [("checkpoints/arithmetic/skill_list/iteration_2", "checkpoints/arithmetic/skill_list/iteration_1")]


def test_the_student_without_a_pad_token_is_evaluated_every_iteration(lora_run):
    workspace, _ = lora_run
    with Warehouse(workspace.home).connect() as connection:
        results = connection.sql("SELECT iteration, checkpoint_sha256, answer_loss FROM evaluation_results WHERE split = 'test'").pl()
    assert sorted(results["iteration"].unique()) == [0, 1, 2]
    assert results["checkpoint_sha256"].n_unique() == 3
    assert results.filter(pl.col("answer_loss").is_nan() | pl.col("answer_loss").is_infinite()).is_empty()
