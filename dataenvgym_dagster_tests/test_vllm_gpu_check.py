"""`make gpu-check-cpu`: the GPU check's script runs end to end on the CPU through vLLM's CPU build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_the_gpu_check_script_trains_and_evaluates_a_gemma2_student_on_the_cpu(tmp_path):
    arguments = ["--cpu", "--train-examples", "64", "--eval-prompts", "16", "--max-new-tokens", "4", "--keep", str(tmp_path)]
    environment = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # the engine in the script's process: faster to start
    done = subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, env=environment, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "student: Gemma-2 with small (--cpu) dimensions" in done.stdout
    assert "training (LoRA r16, float32): 64 examples" in done.stdout
    assert "identical greedy completions on the first 16 prompts: 100%" in done.stdout, done.stdout
    assert (tmp_path / "iteration_1" / "adapter_model.safetensors").is_file()
