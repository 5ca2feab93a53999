"""NaturalBench's question, image and group accuracy as the warehouse view ``vqa_group_metrics``, on a hand-made case."""

from __future__ import annotations

import polars as pl
import pytest

from dataenvgym_dagster.domain.types import Problem, Score
from dataenvgym_dagster.domain.vqa.naturalbench import group_accuracy
from dataenvgym_dagster.machinery.warehouse import TABLES, Warehouse

# Two NaturalBench rows (groups) of four instances, and whether the student got each right.
# Group A: all four. Group B: question 0 wrong on both images, question 1 right on both.
RIGHT = {
    "A": {"q0_i0": True, "q0_i1": True, "q1_i0": True, "q1_i1": True},
    "B": {"q0_i0": False, "q0_i1": False, "q1_i0": True, "q1_i1": True},
}


def _problems(split: str) -> list[Problem]:
    return [
        Problem(
            example_id=f"naturalbench/{split}/{group}/{instance}", skill="naturalbench/yes_no", question=f"[image {group}] q?",
            answer="yes", payload={"group": group, "instance": instance, "answer_type": "yes_no"},
        )
        for group, instances in RIGHT.items() for instance in instances
    ]


def _evaluations(problems: list[Problem], iteration: int, right: dict[str, bool]) -> pl.DataFrame:
    rows = [
        {
            "domain": "vqa", "experiment": "nb", "iteration": iteration, "split": "test", "example_id": p.example_id,
            "skill": p.skill, "question": p.question, "prediction": "yes" if right[p.example_id] else "no", "reference": "yes",
            "correct": right[p.example_id], "score": float(right[p.example_id]), "verdict": "", "metrics": "{}",
            "completion": "", "answer_loss": 0.0, "checkpoint_sha256": "x",
        }
        for p in problems
    ]
    return pl.DataFrame(rows, schema=TABLES["evaluation_results"])


def test_the_view_gives_question_image_and_group_accuracy_as_naturalbench_defines_them(tmp_path):
    warehouse = Warehouse(tmp_path)
    problems = _problems("test")
    procedural = Problem(example_id="procedural/0", skill="colour/lone_shape", question="[image k] What colour?", answer="red")
    benchmark = pl.DataFrame(
        [{"domain": "vqa", "split": "test", **p.warehouse_row()} for p in [*problems, procedural]], schema=TABLES["benchmark_problems"]
    )
    warehouse.write("benchmark_problems", ["vqa"], benchmark)
    right = {p.example_id: RIGHT[p.payload["group"]][p.payload["instance"]] for p in problems}
    warehouse.write("evaluation_results", ["vqa", "nb", "iteration_0"], _evaluations(problems, 0, right))
    everything = {example_id: True for example_id in right}
    warehouse.write("evaluation_results", ["vqa", "nb", "iteration_1"], _evaluations(problems, 1, everything))

    with warehouse.connect() as connection:
        rows = connection.sql("SELECT * FROM vqa_group_metrics ORDER BY iteration").pl()
    assert rows.select("iteration", "groups", "n", "incomplete_groups").rows() == [(0, 2, 8, 0), (1, 2, 8, 0)]
    first = rows.row(0, named=True)
    # By hand: 6 of 8 instances; questions A0 A1 B1 of 4; images A0 A1 of 4 (B's images each have a wrong question); group A of 2.
    assert (first["accuracy"], first["question_accuracy"], first["image_accuracy"], first["group_accuracy"]) == (0.75, 0.75, 0.5, 0.5)
    assert rows.row(1, named=True)["group_accuracy"] == 1.0
    # The same figures as the domain's own function.
    scores = [Score(value=float(right[p.example_id]), extracted="", verdict="") for p in problems]
    assert group_accuracy(problems, scores) == pytest.approx(
        {name: first[name] for name in ("accuracy", "question_accuracy", "image_accuracy", "group_accuracy")}
    )


def test_a_group_missing_an_instance_is_counted_apart_not_mixed_in(tmp_path):
    warehouse = Warehouse(tmp_path)
    problems = _problems("test")
    benchmark = pl.DataFrame([{"domain": "vqa", "split": "test", **p.warehouse_row()} for p in problems], schema=TABLES["benchmark_problems"])
    warehouse.write("benchmark_problems", ["vqa"], benchmark)
    right = {p.example_id: RIGHT[p.payload["group"]][p.payload["instance"]] for p in problems[:-1]}  # B's q1_i1 not evaluated
    warehouse.write("evaluation_results", ["vqa", "nb", "iteration_0"], _evaluations(problems[:-1], 0, right))
    with warehouse.connect() as connection:
        row = connection.sql("SELECT groups, incomplete_groups, group_accuracy FROM vqa_group_metrics").fetchall()
    assert row == [(1, 1, 1.0)]
