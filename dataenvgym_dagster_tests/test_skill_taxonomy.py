"""Skill discovery as an asset: versioned per iteration, with the mapping from old skills to new."""

import polars as pl
import pytest
from dagster import AssetKey, AssetRecordsFilter

from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.discovery import DiscoveredSkills, GoldSkillDiscoverer, skill_mapping
from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.types import Problem
from dataenvgym_dagster.experiments import ExperimentSettings
from dataenvgym_dagster.loop import steps
from dataenvgym_dagster.machinery.warehouse import Warehouse

PROBLEMS = [
    Problem(example_id=f"v{i}", question=f"{i}+{i}", answer=str(2 * i), skill=skill)
    for i, skill in enumerate(["addition/one_digit", "addition/one_digit", "addition/three_digit", "modulo/by_one_digit"])
]


def test_the_gold_discoverer_uses_the_benchmark_labels_and_the_domain_taxonomy():
    discovered = GoldSkillDiscoverer(ARITHMETIC.taxonomy).discover("arithmetic", PROBLEMS, None)
    assert discovered.taxonomy == ARITHMETIC.taxonomy
    assert discovered.assignments == {"v0": "addition/one_digit", "v1": "addition/one_digit", "v2": "addition/three_digit", "v3": "modulo/by_one_digit"}


def test_assignments_must_use_skills_of_the_taxonomy():
    with pytest.raises(ValueError, match="not in the taxonomy"):
        DiscoveredSkills(discoverer="x", taxonomy=SkillTaxonomy(domain="d", categories={"a": ("a/b",)}), assignments={"v0": "a/c"})


def test_when_the_taxonomy_changes_each_old_skill_maps_to_where_its_questions_went():
    old = GoldSkillDiscoverer(ARITHMETIC.taxonomy).discover("arithmetic", PROBLEMS, None)
    merged = DiscoveredSkills(
        discoverer="merger",
        taxonomy=SkillTaxonomy(domain="arithmetic", categories={"addition": ("addition/any",), "modulo": ("modulo/by_one_digit",)}),
        assignments={"v0": "addition/any", "v1": "addition/any", "v2": "addition/any", "v3": "modulo/by_one_digit"},
    )
    mapping = {old_skill: (new, share) for old_skill, new, share in skill_mapping(old, merged)}
    assert mapping["addition/one_digit"] == ("addition/any", 1.0)
    assert mapping["addition/three_digit"] == ("addition/any", 1.0)
    assert mapping["modulo/by_one_digit"] == ("modulo/by_one_digit", 1.0)
    assert mapping["subtraction/borrow"] == (None, 0.0)  # no question of it in this small set
    assert steps.taxonomy_version(old) != steps.taxonomy_version(merged)
    assert steps.taxonomy_version(old) == steps.taxonomy_version(GoldSkillDiscoverer(ARITHMETIC.taxonomy).discover("arithmetic", PROBLEMS, None))


def test_the_taxonomy_asset_records_one_version_per_iteration_and_its_mapping(completed):
    with Warehouse(completed.home).connect() as connection:
        versions = connection.sql(
            "SELECT iteration, count(DISTINCT version) AS versions, count(*) AS skills, sum(questions) AS questions "
            "FROM skill_taxonomies WHERE experiment = 'skill_list' GROUP BY 1 ORDER BY 1"
        ).pl()
        mappings = connection.sql("SELECT * FROM skill_mappings WHERE experiment = 'skill_list' AND iteration = 2").pl()
    assert versions.rows() == [(1, 1, 12, 48), (2, 1, 12, 48)]
    assert mappings["previous_version"].to_list() == mappings["version"].to_list()  # gold labels never change
    assert (mappings["old_skill"] == mappings["new_skill"]).all() and (mappings["share"] == 1.0).all()
    (record,) = completed.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("it2_skill_taxonomy"), asset_partitions=["arithmetic|skill_list"]), limit=1
    ).records
    assert record.asset_materialization.metadata["changed_skills"].value == 0


def validation_frame() -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"example_id": p.example_id, "skill": p.skill, "question": p.question, "reference": p.answer,
             "prediction": p.answer, "correct": i % 2 == 0, "answer_loss": 0.5}
            for i, p in enumerate(PROBLEMS)
        ]
    )


def test_the_environment_state_uses_the_taxonomys_labels_not_the_benchmarks():
    merged = DiscoveredSkills(
        discoverer="merger",
        taxonomy=SkillTaxonomy(domain="arithmetic", categories={"addition": ("addition/any",), "modulo": ("modulo/by_one_digit",)}),
        assignments={"v0": "addition/any", "v1": "addition/any", "v2": "addition/any", "v3": "modulo/by_one_digit"},
    )
    settings = ExperimentSettings(environment="skill_list", policy="uniform")
    state = steps.environment_state(settings, validation_frame(), merged, experiment="e", iteration=1, previous_state=None, previous_plan=None)
    assert {p.skill: (p.n, p.n_correct) for p in state.skills} == {"addition/any": (3, 2), "modulo/by_one_digit": (1, 0)}


def test_a_validation_example_the_taxonomy_does_not_label_is_a_clear_error():
    partial = GoldSkillDiscoverer(ARITHMETIC.taxonomy).discover("arithmetic", PROBLEMS[:3], None)
    settings = ExperimentSettings(environment="skill_list", policy="uniform")
    with pytest.raises(ValueError, match=r"1 validation examples \(e.g. v3\) have no skill in it1_skill_taxonomy"):
        steps.environment_state(settings, validation_frame(), partial, experiment="e", iteration=1, previous_state=None, previous_plan=None)
