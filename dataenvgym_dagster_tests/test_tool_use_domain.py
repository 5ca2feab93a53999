"""The tool-use domain: MnMs files, plan metrics, plan validation and the procedural source."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from dataenvgym_dagster.domain.benchmark import ProceduralSource
from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec
from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.tool_use import TOOL_USE
from dataenvgym_dagster.domain.tool_use.catalogue import load_catalogue
from dataenvgym_dagster.domain.tool_use.generators import skill_of
from dataenvgym_dagster.domain.tool_use.plans import PlanStep, parse_completion, plan_from_steps, plan_problems
from dataenvgym_dagster.domain.tool_use.scoring import PUBLISHED, published_metrics
from dataenvgym_dagster.domain.types import Problem

MNMS = Path(__file__).parent / "fixtures" / "mnms"
CATALOGUE = load_catalogue()


def mnms(tmp_path: Path | None = None, **spec) -> dict[str, list[Problem]]:
    return TOOL_USE.sources["mnms"].load(BenchmarkSpec(source="mnms", path=str(tmp_path or MNMS), test_per_skill=None, **spec))


def problem(plan: list[dict], question: str = "Detect the objects in 1.jpg and count them.") -> Problem:
    draft = TOOL_USE.draft(TOOL_USE.generated_item.model_validate({"request": question, "plan": plan}))
    return Problem(example_id="p", skill="image+ml/object_detection>count", **draft.model_dump())


DETECT_COUNT = [
    {"name": "object detection", "args": {"image": "1.jpg"}},
    {"name": "count", "args": {"objects": "<node-0>.objects"}},
]


def score(gold: list[dict], completion: str):
    (result,) = TOOL_USE.score([problem(gold)], [completion])
    return result


# -- the catalogue ---------------------------------------------------------------------------------
def test_the_catalogue_ships_the_33_mnms_tools_with_typed_arguments():
    assert len(CATALOGUE) == 33
    assert {c: sum(t.category == c for t in CATALOGUE) for c in ("ml", "image", "api")} == {"ml": 13, "image": 11, "api": 9}
    assert CATALOGUE["select object"].inputs == {"objects": "list[dict]", "object_name": "text"}
    assert CATALOGUE["get_location"].outputs == {"lon": "text", "lat": "text"}  # MnMs code names work too
    assert get_domain("tool_use") is TOOL_USE


# -- the MnMs loader -------------------------------------------------------------------------------
def test_mnms_test_split_is_the_filtered_file_and_validation_is_the_rest_of_human_verified():
    splits = mnms()
    assert sorted(p.example_id for p in splits["test"]) == ["mnms/108", "mnms/17", "mnms/3", "mnms/42"]
    assert sorted(p.example_id for p in splits["validation"]) == ["mnms/230", "mnms/311", "mnms/5"]
    by_id = {p.example_id: p for split in splits.values() for p in split}
    color_pop = by_id["mnms/311"]
    assert color_pop.answer == "object detection > select object > color pop"
    assert color_pop.skill == "image+ml/object_detection>select_object"
    assert color_pop.payload["plan"][2] == {"id": 2, "name": "color pop", "args": {"image": "<node-0>.image", "object": "<node-1>.object"}}
    assert by_id["mnms/108"].skill == "api/get_year_fact" and by_id["mnms/42"].skill == "api/get_location>get_weather"
    assert all(p.payload["gold_plan_valid"] for p in by_id.values())


def test_mnms_files_may_also_be_one_json_array(tmp_path):
    for name in ("test_human_verified_filtered.json", "test_human_verified.json"):
        records = [json.loads(line) for line in (MNMS / name).read_text().splitlines()]
        (tmp_path / name).write_text(json.dumps(records))
    assert mnms(tmp_path) == mnms()


def test_a_malformed_plan_str_is_an_error_naming_the_record(tmp_path):
    shutil.copytree(MNMS, tmp_path, dirs_exist_ok=True)
    with (tmp_path / "test_human_verified.json").open("a") as file:
        bad = {"id": 999, "user_request": "Caption 1.jpg", "plan_str": "[{'id': 0, 'name': 'image captioning', 'args': {'image': '1.jpg'}", "code_str": ""}
        file.write(json.dumps(bad) + "\n")
    with pytest.raises(BenchmarkFormatError, match=r"test_human_verified.json line 8 \(id 999\): plan_str does not parse"):
        mnms(tmp_path)


def test_plan_str_is_read_as_a_literal_and_never_evaluated(tmp_path):
    shutil.copytree(MNMS, tmp_path, dirs_exist_ok=True)
    marker = tmp_path / "evaluated"
    record = {"id": 7, "user_request": "x", "plan_str": f"__import__('pathlib').Path({str(marker)!r}).touch()", "code_str": ""}
    (tmp_path / "test_human_verified_filtered.json").write_text(json.dumps(record) + "\n")
    with pytest.raises(BenchmarkFormatError, match=r"id 7\): plan_str does not parse"):
        mnms(tmp_path)
    assert not marker.exists()


def test_a_plan_naming_an_unknown_tool_or_a_record_without_id_is_an_error(tmp_path):
    shutil.copytree(MNMS, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "test_human_verified_filtered.json"
    path.write_text(json.dumps({"id": 8, "user_request": "x", "plan_str": "[{'id': 0, 'name': 'teleport', 'args': {}}]", "code_str": ""}) + "\n")
    with pytest.raises(BenchmarkFormatError, match=r"id 8\): the plan names tools \['teleport'\]"):
        mnms(tmp_path)
    path.write_text(json.dumps({"user_request": "x", "plan_str": "[]", "code_str": ""}) + "\n")
    with pytest.raises(BenchmarkFormatError, match="'id' must be an integer"):
        mnms(tmp_path)


def test_a_missing_file_names_the_path_and_the_expected_layout(tmp_path):
    with pytest.raises(BenchmarkFormatError, match=r"test_human_verified_filtered.json does not exist.*zixianma/mnms"):
        mnms(tmp_path)


# -- metrics ---------------------------------------------------------------------------------------
def test_an_exact_plan_scores_one_on_every_metric():
    result = score(DETECT_COUNT, '[["object detection","image"],["count","objects"]]')
    assert (result.value, result.verdict, result.extracted) == (1.0, "correct", "object detection > count")
    fractions = ("plan_accuracy", "plan_argname_accuracy", "example_tool_precision", "example_tool_recall", "example_tool_f1", "example_argname_f1", "plan_valid")
    assert {name: result.metrics[name] for name in fractions} == dict.fromkeys(fractions, 1.0)
    assert (result.metrics["argname_gold"], result.metrics["argname_predicted"], result.metrics["argname_matched"]) == (2, 2, 2)
    assert result.metrics["tool_gold:count"] == result.metrics["tool_predicted:count"] == 1.0


def test_reordered_tools_lose_plan_accuracy_but_keep_the_per_example_tool_f1():
    result = score(DETECT_COUNT, '[["count","objects"],["object detection","image"]]')
    assert (result.value, result.verdict) == (0.0, "wrong order")
    assert result.metrics["example_tool_f1"] == 1.0 and result.metrics["example_argname_f1"] == 1.0
    assert result.metrics["plan_valid"] == 0.0  # count's objects come from no earlier step


def test_a_missing_tool_keeps_precision_and_halves_recall():
    result = score(DETECT_COUNT, '[["object detection","image"]]')
    assert result.verdict == "missing tools"
    assert (result.metrics["example_tool_precision"], result.metrics["example_tool_recall"]) == (1.0, 0.5)
    assert result.metrics["example_tool_f1"] == pytest.approx(2 / 3)
    assert result.metrics["plan_valid"] == 1.0 and "tool_predicted:count" not in result.metrics


def test_a_wrong_argument_name_keeps_plan_accuracy_but_lowers_argument_f1_and_validity():
    result = score(DETECT_COUNT, '[{"name": "object detection", "args": {"picture": "1.jpg"}}, {"name": "count", "args": {"objects": "<node-0>.objects"}}]')
    assert (result.value, result.verdict) == (1.0, "correct")
    assert result.metrics["example_argname_f1"] == pytest.approx(0.5) and result.metrics["plan_valid"] == 0.0
    assert (result.metrics["plan_argname_accuracy"], result.metrics["argname_matched"]) == (0.0, 1.0)


CAPTION_SUMMARY = [
    {"name": "image captioning", "args": {"image": "2.jpg"}},
    {"name": "text summarization", "args": {"text": "<node-0>.text"}},
]
# Five predictions: exact; a missing tool; a wrong tool; exact; a wrong argument name.
FIVE = [
    (DETECT_COUNT, '[["object detection","image"],["count","objects"]]'),
    (DETECT_COUNT, '[["object detection","image"]]'),
    (CAPTION_SUMMARY[:1], '[["image classification","image"]]'),
    (CAPTION_SUMMARY, '[["image captioning","image"],["text summarization","text"]]'),
    (DETECT_COUNT, '[{"name": "object detection", "args": {"picture": "1.jpg"}}, {"name": "count", "args": {"objects": "<node-0>.objects"}}]'),
]


def test_published_tool_f1_is_a_macro_average_over_tools_pooled_over_examples():
    scores = TOOL_USE.score([problem(gold) for gold, _ in FIVE], [completion for _, completion in FIVE])
    figures = published_metrics([s.metrics for s in scores])
    assert set(figures) == set(PUBLISHED)
    # Per tool (examples holding it, as sets): object detection P 3/3 R 3/3; count P 2/2 R 2/3;
    # image captioning P 1/1 R 1/2; image classification P 0/1 R 0/0; text summarization P 1/1 R 1/1.
    f1 = [1.0, 0.8, 2 / 3, 0.0, 1.0]
    assert figures["tool_precision"] == pytest.approx(100 * 4 / 5)
    assert figures["tool_recall"] == pytest.approx(100 * (1 + 2 / 3 + 1 / 2 + 0 + 1) / 5)
    assert figures["tool_f1"] == pytest.approx(100 * sum(f1) / 5)
    assert figures["plan_accuracy"] == pytest.approx(60.0) and figures["plan_argname_accuracy"] == pytest.approx(40.0)


def test_published_argname_f1_pools_tool_and_sorted_argument_labels_over_examples():
    scores = TOOL_USE.score([problem(gold) for gold, _ in FIVE], [completion for _, completion in FIVE])
    figures = published_metrics([s.metrics for s in scores])
    # Labels `tool--arguments`: matched 2+1+0+2+1 = 6 of 8 predicted and 9 gold.
    precision, recall = 6 / 8, 6 / 9
    assert (figures["argname_precision"], figures["argname_recall"]) == pytest.approx((100 * precision, 100 * recall))
    assert figures["argname_f1"] == pytest.approx(100 * 2 * precision * recall / (precision + recall))
    # The per-example means, kept under their own names, differ from the published figures.
    assert sum(s.metrics["example_tool_f1"] for s in scores) / 5 == pytest.approx((1 + 2 / 3 + 0 + 1 + 1) / 5)


def test_a_plan_written_as_a_python_literal_like_mnms_plan_str_parses():
    record = json.loads((MNMS / "test_human_verified_filtered.json").read_text().splitlines()[0])
    plan = parse_completion(record["plan_str"])
    assert [step.name for step in plan] == ["image captioning", "text summarization"]
    assert plan[1].args == {"text": "<node-0>.text"}
    completion = f"Here is the plan: {record['plan_str']} and that is all."
    (result,) = TOOL_USE.score([problem(CAPTION_SUMMARY)], [completion.replace("2327921.jpg", "2.jpg")])
    assert (result.value, result.verdict, result.metrics["plan_valid"]) == (1.0, "correct", 1.0)
    assert parse_completion("[{'name': 'count', 'args': {'objects': None}}") is None  # unclosed: no plan


def test_an_unparsable_completion_scores_zero_with_verdict_unparsable():
    # The last: a tiny student's completion from the leaderboard suite, a list where an argument name goes
    # (it once crashed the evaluation with TypeError: unhashable type: 'list').
    for completion in ("", "I would detect the objects", '[["object detection", "image"', "[1, 2]", "{}", '[["count", ["objects"]]]'):
        result = score(DETECT_COUNT, completion)
        assert (result.value, result.verdict, result.extracted) == (0.0, "unparsable", "")
        gold_only = {"argname_gold": 2.0, "tool_gold:object detection": 1.0, "tool_gold:count": 1.0}
        assert {k: v for k, v in result.metrics.items() if v} == gold_only  # the gold still counts for recall


def test_code_fences_and_trailing_text_are_tolerated():
    fenced = 'Here is the plan:\n```json\n[{"name": "object detection", "args": {"image": "1.jpg"}}, {"name": "count", "args": {"objects": "<node-0>.objects"}}]\n```\nDone.'
    assert score(DETECT_COUNT, fenced).metrics == score(DETECT_COUNT, '[["object detection","image"],["count","objects"]]').metrics
    assert score(DETECT_COUNT, '[["object detection","image"],["count","objects"]] and some more [').value == 1.0


def test_every_per_example_metric_is_a_fraction_or_a_count():
    completions = ('[["count","objects"]]', '[["get weather","lon","lat"],["count","objects"],["tag","image"]]', "[]")
    for completion in completions:
        metrics = score(DETECT_COUNT, completion).metrics
        counts = {"argname_gold", "argname_predicted", "argname_matched"}
        assert all(0.0 <= value <= 1.0 for name, value in metrics.items() if name not in counts)
        assert all(metrics[name] == int(metrics[name]) >= 0 for name in counts)


# -- plan validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ([{"name": "teleport", "args": {}}], "is not a tool"),
        ([{"name": "image captioning", "args": {"img": "1.jpg"}}], "are not arguments of image captioning"),
        ([{"name": "question answering", "args": {"text": "abc"}}], "misses arguments ['question']"),
        ([{"name": "image captioning", "args": {"image": "<node-1>.image"}}, {"name": "image generation", "args": {"text": "x"}}], "not an earlier step"),
        ([{"name": "image captioning", "args": {"image": "1.jpg"}}, {"name": "count", "args": {"objects": "<node-0>.objects"}}], "'objects' is not an output of image captioning"),
        ([{"name": "image generation", "args": {"text": "a cat"}}, {"name": "text summarization", "args": {"text": "<node-0>.image"}}], "needs text but image generation.image is image"),
        ([["image captioning", "image"], ["image crop left", "image"]], "which no earlier step outputs"),
        ([["count", "objects"]], "which only tools make"),
        ([], "no steps"),
    ],
)
def test_invalid_plans_are_rejected_with_the_reason(steps, problem):
    problems = plan_problems(plan_from_steps(steps), CATALOGUE)
    assert any(problem in p for p in problems), problems


def test_references_inside_a_text_are_checked_but_may_be_of_any_type():
    plan = plan_from_steps([
        {"name": "count", "args": {"objects": "x"}},
        {"name": "text generation", "args": {"text": "a story about <node-0>.number dogs"}},
    ])
    assert plan_problems(plan, CATALOGUE) == []


def test_verify_rejects_plans_the_catalogue_does_not_allow():
    good = problem(DETECT_COUNT)
    wrong_argument = problem([{"name": "object detection", "args": {"photo": "1.jpg"}}])
    unknown_tool = problem([{"name": "teleport", "args": {}}])
    mislabelled = good.model_copy(update={"answer": "count"})
    assert TOOL_USE.verify([good, wrong_argument, unknown_tool, mislabelled]) == [True, False, False, False]


def test_near_duplicate_requests_share_a_canonical_form():
    assert TOOL_USE.canonical("Count the dogs in 1.jpg!") == TOOL_USE.canonical("  count the DOGS in 1 jpg")
    assert TOOL_USE.canonical("Count the dogs in 1.jpg") != TOOL_USE.canonical("Count the dogs in 2.jpg")


# -- the procedural source -------------------------------------------------------------------------
def test_every_procedural_skill_yields_valid_plans_of_that_skill_that_the_student_format_round_trips():
    rng = random.Random(0)
    for skill in TOOL_USE.taxonomy.skills:
        problems = [Problem(example_id=f"{skill}/{i}", skill=skill, **TOOL_USE.sample(skill, rng).model_dump()) for i in range(20)]
        assert all(TOOL_USE.verify(problems)), skill
        plans = [TOOL_USE.gold_plan(p) for p in problems]
        assert {skill_of(plan, CATALOGUE) for plan in plans} == {skill}
        assert all(1 <= len(plan) <= 3 for plan in plans)
        targets = [TOOL_USE.student_text(p).target for p in problems]
        assert all(s.value == 1.0 for s in TOOL_USE.score(problems, targets)), skill


def test_skills_differ_in_difficulty_and_have_large_problem_spaces():
    rng = random.Random(1)
    lengths = {skill: {len(TOOL_USE.gold_plan(Problem(example_id="x", skill=skill, **TOOL_USE.sample(skill, rng).model_dump()))) for _ in range(30)}
               for skill in TOOL_USE.taxonomy.skills}
    assert lengths["ml/image_captioning"] == {1} and lengths["api+image+ml/object_detection>count"] == {3}
    assert lengths["image+ml/object_detection>select_object"] == {2, 3}  # the last tool varies
    questions = {TOOL_USE.sample("api/get_math_fact", rng).question for _ in range(500)}
    assert len(questions) > 450


def test_the_offline_generator_also_writes_problems_for_skills_labelled_on_mnms():
    rng = random.Random(0)
    for p in mnms()["validation"] + mnms()["test"]:
        draft = TOOL_USE.sample(p.skill, rng)
        assert skill_of(plan_from_steps(draft.payload["plan"]), CATALOGUE) == p.skill


def test_unknown_skill_names_are_errors_naming_the_skill():
    with pytest.raises(ValueError, match="'teleport', which is not a tool"):
        TOOL_USE.sample("ml/teleport", random.Random(0))


def test_the_procedural_source_draws_disjoint_splits_per_skill():
    splits = ProceduralSource(TOOL_USE).load(BenchmarkSpec(validation_per_skill=5, test_per_skill=5))
    assert len(splits["validation"]) == len(splits["test"]) == 5 * len(TOOL_USE.taxonomy.skills)
    assert not {p.question for p in splits["validation"]} & {p.question for p in splits["test"]}


def test_the_brief_carries_the_catalogue_and_the_plan_shape():
    assert "select object(objects: list[dict], object_name: text) -> {object: object}" in TOOL_USE.brief
    assert "<node-k>.<output>" in TOOL_USE.brief
    assert parse_completion('[{"name": "count", "args": {"objects": "<node-0>.objects"}}]') == (PlanStep(name="count", args={"objects": "<node-0>.objects"}),)


# -- the warehouse view ----------------------------------------------------------------------------
def test_the_tool_use_metrics_view_gives_the_published_metrics_in_percent(tmp_path):
    import polars as pl

    from dataenvgym_dagster.machinery.warehouse import TABLES, Warehouse

    completions = [completion for _, completion in FIVE] + ["no plan"]
    problems = [problem(gold) for gold, _ in FIVE] + [problem(DETECT_COUNT)]
    scores = TOOL_USE.score(problems, completions)
    rows = pl.DataFrame(
        [
            {
                "domain": "tool_use", "experiment": "e", "iteration": 0, "split": "test", "example_id": f"p{i}",
                "skill": p.skill, "question": p.question, "prediction": s.extracted, "reference": p.answer,
                "correct": s.correct, "score": s.value, "verdict": s.verdict, "metrics": json.dumps(s.metrics),
                "completion": c, "answer_loss": 0.0, "checkpoint_sha256": "x",
            }
            for i, (p, s, c) in enumerate(zip(problems, scores, completions, strict=True))
        ],
        schema=TABLES["evaluation_results"],
    )
    warehouse = Warehouse(tmp_path)
    warehouse.write("evaluation_results", ["tool_use", "e", "iteration_0_test_evaluation"], rows)
    with warehouse.connect() as connection:
        view = connection.execute(f"SELECT n, {', '.join(PUBLISHED)}, plan_valid, unparsable FROM tool_use_metrics").fetchone()
    published = published_metrics([s.metrics for s in scores])
    assert view[0] == 6
    assert view[1:-2] == pytest.approx(tuple(published[name] for name in PUBLISHED))
    assert view[-2:] == pytest.approx((100 * 4 / 6, 100 / 6))  # examples 1 to 4 are valid plans; one is unparsable


def test_a_single_tool_skill_cannot_claim_categories_its_tool_lacks():
    with pytest.raises(ValueError, match="name a tool pair"):
        TOOL_USE.sample("api+ml/image_captioning", random.Random(0))
