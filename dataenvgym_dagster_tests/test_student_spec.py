"""The catalogue's student spec: where LoRA lives, its defaults, and the prompt formats the loop builds."""

import pytest

from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.types import Problem
from dataenvgym_dagster.experiments.config import CatalogError, load_catalog
from dataenvgym_dagster.loop.steps import few_shot_prefix, student_texts
from dataenvgym_dagster.machinery.student.settings import LoraSettings, StudentSpec

from .conftest import MICRO_CATALOG, write_catalog


def test_an_experiment_turns_on_lora_with_the_papers_defaults(tmp_path):
    experiments = {**MICRO_CATALOG["experiments"], "skill_list": {**MICRO_CATALOG["experiments"]["skill_list"], "student": {"lora": {}}}}
    catalog = load_catalog(write_catalog(tmp_path / "experiments.yaml", {"experiments": experiments}))
    lora = catalog.student("arithmetic", "skill_list").lora
    assert (lora.r, lora.alpha, lora.dropout, lora.target_modules) == (16, 32, 0.05, "all-linear")
    assert catalog.student("arithmetic", "skill_list_no_state").lora is None


def test_lora_under_training_settings_is_refused_with_where_it_moved(tmp_path):
    training = {"settings": {"learning_rate": 0.003, "lora": {"r": 16}}}
    experiments = {"skill_list": {"policy": "weak_skills", "training": training}}
    with pytest.raises(CatalogError, match=r"move it to the domain's student\.lora"):
        load_catalog(write_catalog(tmp_path / "experiments.yaml", {"experiments": experiments}))


def problems(count: int) -> list[Problem]:
    import random

    rng = random.Random(5)
    skill = ARITHMETIC.taxonomy.skills[0]
    return [Problem(example_id=f"p{i}", skill=skill, **ARITHMETIC.sample(skill, rng).model_dump()) for i in range(count)]


def test_few_shot_prompts_start_with_the_same_solved_procedural_problems():
    plain = student_texts(ARITHMETIC, problems(3), StudentSpec())
    shots = student_texts(ARITHMETIC, problems(3), StudentSpec(prompt_format="few_shot", few_shot_examples=2))
    prefix = few_shot_prefix(ARITHMETIC, 2)
    assert prefix.count("\n\n") == 2
    for before, after in zip(plain, shots, strict=True):
        assert after.prompt == prefix + before.prompt
        assert after.target == before.target
    # Each shot is a solved problem: its prompt followed by its target.
    first_shot = prefix.split("\n\n")[0]
    question, answer = first_shot.split("=")
    assert ARITHMETIC.student_text(Problem(example_id="x", skill="s", question=question, answer=answer[::-1])).target == answer


def test_plain_and_chat_prompts_are_the_domains_own_text():
    texts = student_texts(ARITHMETIC, problems(2), StudentSpec(prompt_format="chat"))
    assert [t.prompt for t in texts] == [ARITHMETIC.student_text(p).prompt for p in problems(2)]
    assert LoraSettings().r == 16


def test_an_invalid_student_override_is_refused_in_one_line_with_the_field(tmp_path):
    experiments = {**MICRO_CATALOG["experiments"], "skill_list": {
        **MICRO_CATALOG["experiments"]["skill_list"], "student": {"generation": {"batch_size": -3}},
    }}
    with pytest.raises(CatalogError) as raised:
        load_catalog(write_catalog(tmp_path / "experiments.yaml", {"experiments": experiments}))
    message = str(raised.value)
    assert "experiments.skill_list.student is invalid for domain arithmetic: generation.batch_size: must be greater than 0, not -3" in message
    assert "\n" not in message and "pydantic.dev" not in message
