"""The paper's MATH setting, scaled down: MATH-500 and the original release's train files, a saved
Gemma-2 student loaded the way a hub id is, LoRA adapters, through real Dagster runs."""

import json

import polars as pl
import pytest

from dataenvgym_dagster.machinery.warehouse import Warehouse

from .conftest import MICRO_TRAINING, make_workspace
from .test_math_sources import write_math500, write_original
from .tiny_students import save_tiny_student

pytestmark = pytest.mark.slow


def test_math500_with_a_saved_gemma2_student_and_lora_runs_an_iteration(tmp_path):
    test_file = write_math500(tmp_path / "test")
    train_folder = write_original(tmp_path / "train")
    student = save_tiny_student(tmp_path / "gemma-2-tiny", "gemma2")
    domains = {
        "math": {
            "benchmark": {
                "source": "math500", "path": str(test_file), "validation_per_skill": 1, "test_per_skill": None,
                "options": {"train_path": str(train_folder)},
            },
            "student": {"model": str(student), "lora": {}, "generation": {"max_new_tokens": 8, "batch_size": 16}},
            "base_student": {"pretraining_examples": 64, "training": MICRO_TRAINING},
        }
    }
    experiments = {"skill_list": {"policy": "weak_skills", "data_budget": 24, "training": {"settings": MICRO_TRAINING}}}
    workspace = make_workspace(tmp_path, {"iterations": 1, "domains": domains, "experiments": experiments})
    workspace.run_foundations("math")
    assert workspace.run_loop("skill_list", "math").success

    with Warehouse(workspace.home).connect() as connection:
        results = connection.sql("SELECT * FROM evaluation_results WHERE domain = 'math' AND split = 'test'").pl()
    # Every MATH-500 problem is evaluated, under its own unique_id, by both iterations' students.
    ids = {json.loads(line)["unique_id"] for line in test_file.read_text().splitlines()}
    for iteration in (0, 1):
        assert set(results.filter(pl.col("iteration") == iteration)["example_id"]) == ids
    # Iteration 1's checkpoint is a PEFT adapter folder on the saved model, not a merged copy.
    adapter = workspace.home / "checkpoints" / "math" / "skill_list" / "iteration_1"
    assert (adapter / "adapter_config.json").exists() and not (adapter / "model.safetensors").exists()
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 16
