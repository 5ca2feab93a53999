"""An imperfect offline engine (``offline_drift``): on some skills it writes problems of other skills.

The errors are ones the quality filter cannot catch (correct problems, labelled with the skill
the plan asked for), so they reach the student; off by default, and the unchanged engine writes
exactly what it wrote before.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest

from dataenvgym_dagster.agents.loading import engine_info
from dataenvgym_dagster.domain.arithmetic.domain import ARITHMETIC
from dataenvgym_dagster.domain.arithmetic.generators import GENERATORS
from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry
from dataenvgym_dagster.domain.quality import check_examples
from dataenvgym_dagster.domain.teachers.drift import DriftingEngine, EngineDrift
from dataenvgym_dagster.domain.teachers.offline import OfflineTeacher
from dataenvgym_dagster.experiments.config import CatalogError, load_catalog
from dataenvgym_dagster.machinery.warehouse import Warehouse

from .conftest import MICRO_CATALOG, make_workspace, write_catalog

SKILLS = ARITHMETIC.taxonomy.skills
DRIFT = EngineDrift(skills=("addition/two_digit_carry", "subtraction/borrow"), rate=0.8, into=("comparison/two_digit", "comparison/three_digit"))
# Every skill of arithmetic, 20 examples each, with two questions to avoid: the offline engine's output for
# seed 7 has had this SHA-256 (of its JSON) since before drift existed; a change here changes every run.
PLAN = DataGenerationPlan(domain="arithmetic", experiment="e", iteration=1, policy="p", entries=tuple(
    PlanEntry(entry_id=f"e{i}", skill=skill, count=20, rationale="") for i, skill in enumerate(SKILLS)
))
AVOID = frozenset({"1+2", "3*4"})
UNDRIFTED_SHA256 = "6ebf196544ad63a5932e2980cb2fde71c824c5b660eb533f3242b99ad8ece527"


def written_as(question: str) -> str:
    """The skill whose generator writes problems of this shape: comparisons have a '?' (enough for this test)."""
    return "comparison" if "?" in question else "arithmetic"


def test_the_unchanged_offline_engine_writes_byte_for_byte_what_it_wrote_before():
    result = OfflineTeacher(ARITHMETIC).generate(PLAN, seed=7, avoid=AVOID)
    assert hashlib.sha256(result.model_dump_json().encode()).hexdigest() == UNDRIFTED_SHA256


def test_a_drifting_engine_writes_the_configured_share_off_skill_and_the_quality_filter_keeps_them():
    result = DriftingEngine(OfflineTeacher(ARITHMETIC), DRIFT, SKILLS).generate(PLAN, seed=7, avoid=AVOID)
    assert result.produced == PLAN.total and not result.failures
    by_skill = {skill: [e for e in result.examples if e.skill == skill] for skill in SKILLS}
    for skill in DRIFT.skills:  # labelled as asked, numbered as the engine numbers an entry, 80 % comparisons
        examples = by_skill[skill]
        assert len(examples) == 20 and len({e.example_id for e in examples}) == 20
        assert all(e.plan_entry_id == examples[0].plan_entry_id for e in examples)
        assert Counter(written_as(e.question) for e in examples) == {"comparison": 16, "arithmetic": 4}
    assert all(written_as(e.question) == "arithmetic" for e in by_skill["addition/one_digit"])
    verdicts = check_examples(ARITHMETIC, result.examples, planned_skills=SKILLS)
    drifted = {e.example_id for e in result.examples if e.skill in DRIFT.skills and written_as(e.question) == "comparison"}
    assert len(drifted) == 32 and all(v.passed for v in verdicts if v.example_id in drifted)


def test_skills_that_do_not_drift_get_what_the_unchanged_engine_writes():
    plan = PLAN.model_copy(update={"entries": tuple(e for e in PLAN.entries if e.skill not in DRIFT.skills)})
    drifting = DriftingEngine(OfflineTeacher(ARITHMETIC), DRIFT, SKILLS).generate(plan, seed=7, avoid=AVOID)
    assert drifting == OfflineTeacher(ARITHMETIC).generate(plan, seed=7, avoid=AVOID)


def test_drift_is_deterministic_per_seed():
    engine = DriftingEngine(OfflineTeacher(ARITHMETIC), DRIFT, SKILLS)
    assert engine.generate(PLAN, seed=3) == engine.generate(PLAN, seed=3)
    assert engine.generate(PLAN, seed=3) != engine.generate(PLAN, seed=4)


def test_without_into_drift_writes_every_other_skills_problems():
    assert EngineDrift(skills=("addition/one_digit",), rate=1.0).sources(SKILLS) == SKILLS[1:]


def test_only_comparisons_have_a_question_mark_so_written_as_tells_them_apart():
    for skill, generate in GENERATORS.items():
        question, _ = generate(random.Random(0))
        assert ("?" in question) == skill.startswith("comparison/")


def test_the_engine_version_changes_only_when_the_engine_drifts():
    unchanged = engine_info("offline").version
    assert "+" not in unchanged
    drifting = engine_info("offline", DRIFT).version
    assert drifting == f"{unchanged}+drift-{DRIFT.version}"
    assert EngineDrift(skills=DRIFT.skills, rate=0.5, into=DRIFT.into).version != DRIFT.version


def _with_drift(tmp_path, drift: dict) -> object:
    domain = {**MICRO_CATALOG["domains"]["arithmetic"], "offline_drift": drift}
    return write_catalog(tmp_path / "c.yaml", {"domains": {"arithmetic": domain}})


def test_the_catalogue_sets_drift_per_domain_and_leaves_it_off_by_default(tmp_path):
    assert load_catalog(write_catalog(tmp_path / "plain.yaml")).domains["arithmetic"].offline_drift is None
    catalog = load_catalog(_with_drift(tmp_path, {"skills": ["subtraction/borrow"], "rate": 0.9}))
    assert catalog.domains["arithmetic"].offline_drift == EngineDrift(skills=("subtraction/borrow",), rate=0.9)


@pytest.mark.parametrize(("drift", "message"), [
    ({"skills": ["addition/ten_digit"], "rate": 0.9},
     r"offline_drift: drift names unknown skills \['addition/ten_digit'\]; arithmetic's skills are: addition/one_digit, "),
    ({"skills": ["addition/one_digit"], "rate": 0.9, "into": ["comparison/four_digit"]}, r"unknown skills \['comparison/four_digit'\]"),
    ({"skills": list(SKILLS), "rate": 0.9}, "drift covers every skill of arithmetic"),
    ({"skills": ["addition/one_digit"], "rate": 0}, "rate"),
    ({"skills": ["addition/one_digit"], "rate": 0.5, "into": ["addition/one_digit"]}, "drifted skills themselves"),
])
def test_a_drift_the_domain_cannot_have_is_refused_with_the_reason(tmp_path, drift, message):
    with pytest.raises(CatalogError, match=message):
        load_catalog(_with_drift(tmp_path, drift))


def test_a_drifting_domain_materialises_off_skill_examples_and_records_the_drifting_engine(tmp_path):
    domain = {**MICRO_CATALOG["domains"]["arithmetic"], "offline_drift": {"skills": ["subtraction/borrow"], "rate": 1.0,
                                                                          "into": ["comparison/three_digit"]}}
    workspace = make_workspace(tmp_path, {"domains": {"arithmetic": domain}, "iterations": 1})
    workspace.run_foundations()
    assert workspace.run_loop("skill_list").success
    with Warehouse(workspace.home).connect() as connection:
        questions = connection.sql(
            "SELECT question, passed_quality_checks FROM generated_examples WHERE skill = 'subtraction/borrow'"
        ).fetchall()
        versions = connection.sql("SELECT DISTINCT teacher_version FROM experiment_runs").fetchall()
    assert questions and all("?" in question and passed for question, passed in questions)
    assert versions == [(engine_info("offline", workspace.catalog.domains["arithmetic"].offline_drift).version,)]
