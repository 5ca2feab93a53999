import polars as pl
import pytest

from dataenvgym_dagster.domain.types import Problem
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
