"""The LLM teacher on vqa through Dagster, over real HTTP to the local OpenAI-protocol test server:
specs {instruction, image_description, answer} as structured output, rendered by the procedural
generator, and malformed replies reported with their reason rather than dropped."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance

from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.domain.vqa.questions import GENERATORS
from dataenvgym_dagster.experiments import load_catalog
from dataenvgym_dagster.machinery.warehouse import Warehouse
from dataenvgym_dagster_tests.conftest import Workspace, write_catalog
from dataenvgym_dagster_tests.openai_server import Faults, OpenAITestServer, last_user_message
from dataenvgym_dagster_tests.test_vqa_loop import VQA_CATALOG

UNDRAWABLE = "a cat asleep on a red mat"  # outside the scene grammar: the domain cannot render it


def vqa_responder(request: dict[str, Any]) -> str:
    """A vqa teacher: correct specs of the asked skill from the procedural generators, but the second of each
    reply describes an image outside the scene grammar."""
    prompt = last_user_message(request)
    rng = random.Random(request.get("seed", 0))
    skill = re.search(r"Skill: `([^`]+)`", prompt).group(1)
    count = int(re.search(r"Number of problems: (\d+)", prompt).group(1))
    specs = []
    for index in range(count):
        scene, question, answer = GENERATORS[skill](rng)
        description = UNDRAWABLE if index == 1 else scene.describe()
        specs.append({"instruction": question, "image_description": description, "answer": answer})
    return json.dumps({"problems": specs})


@pytest.mark.slow
def test_the_llm_teacher_writes_vqa_specs_whose_images_are_rendered_and_whose_failures_are_reported(tmp_path: Path, monkeypatch):
    # The first request gets a reply that is not JSON; with one parse attempt, its call fails.
    server = OpenAITestServer(responder=vqa_responder, faults=Faults(script=["malformed"])).start()
    try:
        llm = {"policy": "weak_skills", "teacher": "llm", "data_budget": 24, "shortfall_tolerance": 0.9,
               "training": {"settings": VQA_CATALOG["experiments"]["skill_list"]["training"]["settings"]}}
        catalog_file = write_catalog(tmp_path / "experiments.yaml", {**VQA_CATALOG, "experiments": {"skill_list": llm}})
        for variable, value in {
            "DATAENVGYM_EXPERIMENTS": str(catalog_file), "DATAENVGYM_TEACHER_BASE_URL": server.base_url,
            "DATAENVGYM_TEACHER_MODEL": "test-teacher", "DATAENVGYM_TEACHER_API_KEY": "sk-test",
            "DATAENVGYM_TEACHER_PARSE_ATTEMPTS": "1", "DATAENVGYM_TEACHER_BACKOFF_S": "0.005",
        }.items():
            monkeypatch.setenv(variable, value)
        home = tmp_path / "home"
        monkeypatch.setenv("DATAENVGYM_HOME", str(home))
        catalog = load_catalog(catalog_file)
        workspace = Workspace(home, catalog, build_definitions(catalog, str(home)), DagsterInstance.ephemeral())
        workspace.run_foundations("vqa")
        names = [(0, "student_checkpoint"), (0, "validation_evaluation"), (1, "skill_taxonomy"), (1, "environment_state"),
                 (1, "data_generation_plan"), (1, "generated_dataset")]
        result = workspace.run_loop("skill_list", "vqa", asset_selection=[iteration_key(t, name) for t, name in names])
        assert result.success
    finally:
        server.stop()

    # Structured output: the reply's JSON schema is the vqa spec shape.
    body = server.bodies[0]
    schema = body["response_format"]["json_schema"]["schema"]
    assert set(schema["$defs"]["VqaSpec"]["required"]) == {"instruction", "image_description", "answer"}
    assert "scene" in body["messages"][0]["content"] and "image description" in body["messages"][0]["content"]

    with Warehouse(home).connect() as connection:
        examples = connection.sql("SELECT * FROM generated_examples WHERE domain = 'vqa'").pl()
        ledger = connection.sql("SELECT outcome, error FROM teacher_calls WHERE domain = 'vqa' AND outcome <> 'ok'").pl()
    assert set(examples["teacher"]) == {"llm"} and examples["passed_quality_checks"].sum() > 0
    assert UNDRAWABLE not in " ".join(examples["payload"].to_list())  # never stored as if it had an image
    for payload in map(json.loads, examples["payload"]):
        assert payload["generator"] == "procedural" and (home / payload["image"]).is_file()
        assert Path(payload["image"]).stem == payload["sha256"]
    # The malformed reply is in the ledger and in the asset's metadata, with the reason; so are the undrawable specs.
    assert ledger["outcome"].to_list() == ["unparsed"] and "no reply parsed in 1 tries" in ledger["error"][0]
    metadata = result.asset_materializations_for_node("__".join(iteration_key(1, "generated_dataset").path))[0].metadata
    reasons = metadata["generation_failure_reasons"].value
    assert "no reply parsed in 1 tries" in reasons
    assert re.search(r"1 unusable: .*cat asleep on a red mat", reasons)
    assert metadata["generation_failures"].value == reasons.count("\n") - 1  # one table row per failure
