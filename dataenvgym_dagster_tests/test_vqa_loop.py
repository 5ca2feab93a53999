"""The micro teaching loop on the vqa domain through Dagster: images flow from benchmark to UI, the
PaliGemma student goes through the StudentBackend interface, and its checkpoints are verified."""

from __future__ import annotations

import copy
from pathlib import Path

import duckdb
import pytest

from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.loop.checkpoints import pretrained_checkpoint
from dataenvgym_dagster.machinery.student import paligemma
from dataenvgym_dagster.machinery.student.settings import StudentArchitecture

from .conftest import make_workspace
from .test_checkpoints import failure_message

TRAINING = {"learning_rate": 0.003, "batch_size": 16, "epochs": 1, "threads": 1}
ARCHITECTURE = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
VQA_CATALOG = {
    "iterations": 1,
    "default_experiment": "skill_list",
    "domains": {
        "vqa": {
            "benchmark": {"validation_per_skill": 1, "test_per_skill": 1, "seed": 0},
            "student": {"generation": {"max_new_tokens": 2, "batch_size": 16}, "lora": {"r": 16, "alpha": 32, "dropout": 0.05}},
            "base_student": {
                "architecture": ARCHITECTURE,
                "tokenizer_vocab_size": 96,
                "pretraining_examples": 48,
                "training": TRAINING,
            },
        }
    },
    "experiments": {"skill_list": {"policy": "weak_skills", "data_budget": 24, "training": {"settings": TRAINING}}},
}


def _materialization(result, iteration: int, name: str):
    """The run's materialisation of one iteration asset (a step may make several: ``it<t>_evaluate``)."""
    key = iteration_key(iteration, name)
    (event,) = [event for event in result.get_asset_materialization_events() if event.asset_key == key]
    return event.materialization


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
    con.close()
    # The UI shows the student's answers beside the images.
    test_metadata = _materialization(result, 1, "test_evaluation").metadata
    assert test_metadata["example_images"].value.startswith("![evaluated examples](data:image/png;base64,")
    checkpoint = _materialization(result, 1, "student_checkpoint").metadata
    assert checkpoint["kind"].value == "adapter" and checkpoint["base"].value == "checkpoints/vqa/base"

    # The LoRA student is a PEFT adapter folder in the checkpoint's manifest: a changed adapter is never evaluated.
    adapter = workspace.home / "checkpoints" / "vqa" / "skill_list" / "iteration_1" / "adapter_model.safetensors"
    data = adapter.read_bytes()
    middle = len(data) // 2
    adapter.write_bytes(data[:middle] + bytes(255 - b for b in data[middle : middle + 8]) + data[middle + 8 :])
    again = workspace.run_loop("skill_list", "vqa", asset_selection=[iteration_key(1, "test_evaluation")], raise_on_error=False)
    assert not again.success
    message = failure_message(again)
    assert "the iteration_1 student for vqa|skill_list" in message
    assert "has changed since it was materialised: adapter_model.safetensors (sha256" in message


def test_a_saved_paligemma_folder_is_the_base_student_as_a_hub_id_is(tmp_path: Path):
    """A student ``model`` that is not ``tiny`` is loaded with ``from_pretrained(model, revision=...)``, never trained as base."""
    folder = tmp_path / "hub" / "tiny-paligemma"
    processor = paligemma.build_processor(["answer en what colour is the circle?", "red", "blue", "yes", "no", "left", "3"], 96)
    paligemma.save_student(paligemma.build_student(StudentArchitecture(**ARCHITECTURE), processor, seed=1), processor, folder)
    catalog = copy.deepcopy(VQA_CATALOG)
    catalog["domains"]["vqa"]["student"] = {"model": str(folder), "generation": {"max_new_tokens": 2, "batch_size": 16}}
    workspace = make_workspace(tmp_path, catalog)
    workspace.run_foundations("vqa")
    assert not (workspace.home / "checkpoints" / "vqa" / "base").exists()  # nothing trained or copied

    keys = [iteration_key(0, name) for name in ("student_checkpoint", "test_evaluation")]
    result = workspace.run_loop("skill_list", "vqa", asset_selection=keys)
    assert result.success
    recorded = _materialization(result, 0, "student_checkpoint").metadata
    assert recorded["checkpoint"].value == f"{folder}@main"
    expected = pretrained_checkpoint(str(folder), None, domain="vqa")
    assert {f.name for f in expected.files} >= {"model.safetensors", "config.json"}
    con = duckdb.connect(str(workspace.home / "warehouse.duckdb"), read_only=True)
    rows = con.execute("SELECT count(*), any_value(checkpoint_sha256) FROM evaluation_results WHERE domain = 'vqa'").fetchone()
    con.close()
    assert rows == (8, expected.sha256)
