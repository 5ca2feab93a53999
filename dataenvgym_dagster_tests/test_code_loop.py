"""The code domain in the real loop: HumanEval with a tiny student, the offline teacher and the LLM teacher."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance

from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.experiments import load_catalog
from dataenvgym_dagster.machinery.warehouse import Warehouse
from dataenvgym_dagster_tests.conftest import MICRO_TRAINING, Workspace, write_catalog
from dataenvgym_dagster_tests.openai_server import OpenAITestServer, last_user_message

CODE_HUMANEVAL = {
    "benchmark": {"source": "humaneval", "validation_per_skill": 6, "test_per_skill": 6, "seed": 0},
    "student": {"generation": {"max_new_tokens": 8, "batch_size": 16}},
    "base_student": {
        # HumanEval prompts run to hundreds of tokens; positions cost nothing but the rotary cache.
        "architecture": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "max_position_embeddings": 2048},
        "tokenizer_vocab_size": 128,
        "pretraining_examples": 200,
        "training": MICRO_TRAINING,
    },
}
EXPERIMENTS = {
    "offline": {"policy": "weak_skills", "data_budget": 32, "training": {"settings": MICRO_TRAINING}},
    "llm": {
        "policy": "weak_skills", "teacher": "llm", "discoverer": "llm", "data_budget": 24, "shortfall_tolerance": 0.3,
        "training": {"settings": MICRO_TRAINING},
    },
}


class CodeTeacherResponder:
    """Answers the code teacher's and the discoverer's prompts as a model would, one problem in four wrong.

    Problems: "return each element of xs times k" with tests computed from the solution; every
    fourth solution is off by one, so the sandbox's verification has something to reject.
    """

    def __call__(self, request: dict[str, Any]) -> str:
        prompt = last_user_message(request)
        rng = random.Random(request.get("seed", 0))
        if count := re.search(r"Number of problems: (\d+)", prompt):
            return json.dumps({"problems": [self.problem(rng, index) for index in range(int(count.group(1)))]})
        if "Questions:\n" in prompt:
            ids = re.findall(r"^(\d+)\. ", prompt.split("Questions:\n", 1)[1], re.MULTILINE)
            skills = ("string_manipulation", "list_processing", "numeric_reasoning")
            return json.dumps({"labels": [{"id": int(i), "skill": skills[int(i) % 3]} for i in ids]})
        if "Skills:\n" in prompt:
            skills = [line[2:] for line in prompt.split("Skills:\n", 1)[1].splitlines() if line.startswith("- ")]
            return json.dumps({"categories": [{"category": "python_functions", "skills": skills}]})
        return json.dumps({"error": "unrecognised prompt"})

    @staticmethod
    def problem(rng: random.Random, index: int) -> dict[str, Any]:
        k, name = rng.randint(2, 10**6), f"scale_{rng.randint(0, 10**6)}"
        off = 1 if index % 4 == 3 else 0
        inputs = [[rng.randint(-9, 9) for _ in range(rng.randint(0, 4))] for _ in range(3)]
        return {
            "question": f'def {name}(xs):\n    """Return each element of xs times {k}."""',
            "entry_point": name,
            "solution": f"def {name}(xs):\n    return [v * {k} + {off} for v in xs]",
            "tests": [{"arguments": json.dumps([xs]), "expected": json.dumps([v * k for v in xs])} for xs in inputs],
        }


def code_workspace(root: Path, monkeypatch: pytest.MonkeyPatch, server: OpenAITestServer | None = None) -> Workspace:
    catalog_file = write_catalog(
        root / "experiments.yaml", {"default_experiment": "offline", "domains": {"code": CODE_HUMANEVAL}, "experiments": EXPERIMENTS}
    )
    if server is not None:
        for variable, value in {
            "DATAENVGYM_TEACHER_BASE_URL": server.base_url, "DATAENVGYM_TEACHER_MODEL": "test-teacher",
            "DATAENVGYM_TEACHER_API_KEY": "sk-test", "DATAENVGYM_TEACHER_TIMEOUT_S": "5",
        }.items():
            monkeypatch.setenv(variable, value)
    home = root / "home"
    monkeypatch.setenv("DATAENVGYM_HOME", str(home))
    catalog = load_catalog(catalog_file)
    return Workspace(home, catalog, build_definitions(catalog, str(home), catalog_file), DagsterInstance.ephemeral())


@pytest.mark.slow
def test_humaneval_runs_end_to_end_with_the_tiny_student_and_both_teachers(tmp_path, monkeypatch):
    with OpenAITestServer(responder=CodeTeacherResponder()) as server:
        workspace = code_workspace(tmp_path, monkeypatch, server)
        workspace.run_foundations("code")
        assert workspace.run_loop("offline", domain="code").success
        assert workspace.run_loop("llm", domain="code").success
    sql = Warehouse(workspace.home).connect().sql

    results = sql("SELECT * FROM evaluation_results WHERE domain = 'code'").pl()
    test = results.filter((results["split"] == "test") & (results["experiment"] == "offline"))
    assert set(test["iteration"]) == {0, 1, 2} and test.height == 3 * 6
    assert set(test["skill"]) == {"humaneval/unlabelled"}
    # A near-random tiny student does not solve HumanEval; each failure says why.
    assert test["score"].sum() == 0 and all(re.match(r"(wrong_answer|runtime_error|compile_error|timeout)", v) for v in test["verdict"])

    generated = sql("SELECT experiment, teacher, passed_quality_checks, rejection_reason FROM generated_examples WHERE domain = 'code'").pl()
    offline = generated.filter(generated["experiment"] == "offline")
    assert offline["passed_quality_checks"].all(), "the offline teacher's procedural problems are all correct"
    llm = generated.filter(generated["experiment"] == "llm")
    assert set(llm["teacher"]) == {"llm"} and llm["passed_quality_checks"].sum() > 0
    assert set(llm.filter(~llm["passed_quality_checks"])["rejection_reason"]) == {"wrong_answer"}

    taxonomy = sql("SELECT DISTINCT discoverer, skill FROM skill_taxonomies WHERE domain = 'code' AND experiment = 'llm'").pl()
    assert set(taxonomy["discoverer"]) == {"llm"} and "python_functions/list_processing" in set(taxonomy["skill"])
    assert server.requests > 0
