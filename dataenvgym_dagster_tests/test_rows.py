import math

import polars as pl
import pytest
from pydantic import BaseModel

from dataenvgym_dagster.domain.types import EvaluationRecord, Problem
from dataenvgym_dagster.loop.rows import records


def test_rows_become_typed_records():
    frame = pl.DataFrame({"example_id": ["a"], "question": ["1+1"], "answer": ["2"], "skill": ["addition/one_digit"], "split": ["test"]})
    assert records(frame, Problem, "benchmark") == [Problem(example_id="a", question="1+1", answer="2", skill="addition/one_digit")]


def test_a_malformed_row_is_named_not_dropped():
    frame = pl.DataFrame({"example_id": ["a", "b"], "question": ["1+1", None], "answer": ["2", "3"], "skill": ["s", "s"]})
    with pytest.raises(ValueError, match=r"row 1 of benchmark_splits \(arithmetic, test\) is malformed") as raised:
        records(frame, Problem, "benchmark_splits (arithmetic, test)")
    # One line, the field and what is wrong: not pydantic's report with its documentation link.
    message = str(raised.value)
    assert "question: must be a valid string, not None" in message and "\n" not in message and "pydantic.dev" not in message


def test_a_missing_column_is_named():
    with pytest.raises(ValueError, match=r"lacks columns \['skill'\]"):
        records(pl.DataFrame({"example_id": ["a"], "question": ["q"], "answer": ["a"]}), Problem, "benchmark")


def one_by_one(frame: pl.DataFrame, model) -> list:
    return [model.model_validate(row) for row in frame.select([c for c in model.model_fields if c in frame.columns]).iter_rows(named=True)]


def test_rows_read_all_at_once_equal_rows_read_one_by_one():
    problems = pl.DataFrame({
        "example_id": ["a", "b", "c"], "skill": ["s/t"] * 3, "question": ['say "hi"\n\\ é 𝛑 \x00', "12+7", ""],
        "answer": ["hi", "19", "0"], "payload": ['{"tests": ["assert f(1) == 2"], "n": 1.5}', "{}", ""], "split": ["test"] * 3,
    })
    assert records(problems, Problem, "p") == one_by_one(problems, Problem)
    assert records(problems, Problem, "p")[0].payload == {"tests": ["assert f(1) == 2"], "n": 1.5}
    losses = [0.1, 1 / 3, -0.0, 5e-324, 1.7976931348623157e308, 2.5]
    evaluated = pl.DataFrame({
        "example_id": [str(i) for i in range(6)], "skill": ["s/t"] * 6, "question": ["q"] * 6, "reference": ["r"] * 6,
        "prediction": ["p"] * 6, "correct": [True, False] * 3, "score": [1.0, 0.0] * 3, "verdict": ["", "wrong_answer"] * 3,
        "answer_loss": losses,
    })
    read = records(evaluated, EvaluationRecord, "e")
    assert read == one_by_one(evaluated, EvaluationRecord)
    assert [repr(r.answer_loss) for r in read] == [repr(x) for x in losses]  # every float exactly, -0.0 included


def test_values_json_cannot_carry_are_read_one_by_one_as_before():
    nan = pl.DataFrame({
        "example_id": ["a"], "skill": ["s/t"], "question": ["q"], "reference": ["r"], "prediction": ["p"],
        "correct": [False], "answer_loss": [float("nan")],
    })
    [record] = records(nan, EvaluationRecord, "e")  # JSON would have written null
    assert math.isnan(record.answer_loss)
    float32 = nan.with_columns(pl.col("answer_loss").cast(pl.Float32).fill_nan(0.1))
    assert records(float32, EvaluationRecord, "e") == one_by_one(float32, EvaluationRecord)  # 0.1 as a float32 reads it


def test_nan_and_infinity_stay_what_they_are_in_a_field_that_allows_none():
    class Measured(BaseModel):
        x: float | None = None

    frame = pl.DataFrame({"x": [float("nan"), float("inf"), None, 1.5]})
    read = records(frame, Measured, "m")
    assert math.isnan(read[0].x) and read[1].x == math.inf and read[2].x is None and read[3].x == 1.5


@pytest.mark.parametrize("domain_name", ["arithmetic", "math", "code", "tool_use", "vqa"])
def test_a_drafts_row_is_the_problems_row(domain_name):
    """``Problem.draft_row`` (the pretraining corpus's rows) writes what building the Problem writes,
    payloads (solutions, unit tests, plans, image paths) included."""
    import random

    from dataenvgym_dagster.domain.registry import get_domain

    domain = get_domain(domain_name)
    rng = random.Random(7)
    for index, skill in enumerate(list(domain.taxonomy.skills) * 2):
        draft = domain.sample(skill, rng)
        built = Problem(example_id=f"p/{index}", skill=skill, **draft.model_dump()).warehouse_row()
        assert Problem.draft_row(draft, example_id=f"p/{index}", skill=skill) == built
