"""One micro teaching loop on the vqa domain through Dagster: images flow from benchmark to UI."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from .conftest import make_workspace

TRAINING = {"learning_rate": 0.003, "batch_size": 16, "epochs": 1, "threads": 1}
VQA_CATALOG = {
    "iterations": 1,
    "default_experiment": "skill_list",
    "domains": {
        "vqa": {
            "benchmark": {"validation_per_skill": 1, "test_per_skill": 1, "seed": 0},
            "student": {"generation": {"max_new_tokens": 2, "batch_size": 16}},
            "base_student": {
                "architecture": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
                "tokenizer_vocab_size": 96,
                "pretraining_examples": 48,
                "training": TRAINING,
            },
        }
    },
    "experiments": {"skill_list": {"policy": "weak_skills", "data_budget": 24, "training": {"settings": TRAINING}}},
}


@pytest.mark.slow
def test_a_micro_vqa_loop_trains_and_evaluates_a_paligemma_on_rendered_images(tmp_path: Path):
    workspace = make_workspace(tmp_path, VQA_CATALOG)
    workspace.run_foundations("vqa")
    result = workspace.run_loop("skill_list", "vqa")
    assert result.success

    con = duckdb.connect(str(workspace.home / "warehouse.duckdb"), read_only=True)
    evaluated = con.sql("SELECT iteration, split, count(*) FROM evaluation_results WHERE domain = 'vqa' GROUP BY ALL ORDER BY ALL").fetchall()
    assert evaluated == [(0, "test", 8), (0, "validation", 8), (1, "test", 8), (1, "validation", 8)]
    kept = con.execute("SELECT count(*) FROM generated_examples WHERE domain = 'vqa' AND passed_quality_checks").fetchone()[0]
    assert kept > 0
    # Tables hold paths and hashes; the images are files under the home named by their SHA-256.
    payload = con.execute("SELECT json_extract_string(payload, '$.image') FROM benchmark_problems WHERE domain = 'vqa' LIMIT 1").fetchone()[0]
    assert payload.startswith("images/") and (workspace.home / payload).is_file()
    # The UI shows the student's answers beside the images.
    test_metadata = result.asset_materializations_for_node("iteration_1_test_evaluation")[0].metadata
    assert test_metadata["example_images"].value.startswith("![evaluated examples](data:image/png;base64,")
    assert (workspace.home / "checkpoints" / "vqa" / "skill_list" / "iteration_1" / "model.safetensors").is_file()
