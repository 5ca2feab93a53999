"""The math domain through the real loop: Dagster runs, a micro student, math-verify scoring, the warehouse."""

import polars as pl
import pytest

from dataenvgym_dagster.machinery.warehouse import Warehouse

from .conftest import MICRO_TRAINING, make_workspace

pytestmark = pytest.mark.slow

MICRO_MATH = {
    "math": {
        "benchmark": {"validation_per_skill": 1, "test_per_skill": 1, "seed": 0},
        "student": {"generation": {"max_new_tokens": 20, "batch_size": 64}},
        "base_student": {
            "architecture": {
                "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                "max_position_embeddings": 128,
            },
            "tokenizer_vocab_size": 256,
            "pretraining_examples": 300,
            "training": MICRO_TRAINING,
        },
    }
}


def query(workspace, sql: str) -> pl.DataFrame:
    with Warehouse(workspace.home).connect() as connection:
        return connection.sql(sql).pl()


def test_a_micro_math_experiment_runs_through_dagster_and_records_verdicts(tmp_path):
    workspace = make_workspace(tmp_path, {"domains": MICRO_MATH})
    workspace.run_foundations("math")
    assert workspace.run_loop("skill_list", "math").success
    results = query(workspace, "SELECT * FROM evaluation_results WHERE domain = 'math'")
    assert set(results["iteration"]) == {0, 1, 2}
    assert results.filter(pl.col("iteration") == 0).height == 2 * 35
    # Every completion got one of the scorer's verdicts, and its extracted answer is what was compared.
    assert set(results["verdict"]) <= {"correct", "wrong answer", "no boxed answer", "unparsable answer", "timeout"}
    boxed = results.filter(pl.col("verdict") != "no boxed answer")
    assert (boxed["prediction"].str.len_chars() > 0).all()
    generated = query(workspace, "SELECT * FROM generated_examples WHERE domain = 'math'")
    assert generated.height == 2 * 96
    # The offline teacher's sympy-checked problems all pass verification, with their solutions in the payload.
    assert "wrong_answer" not in set(generated["rejection_reason"].drop_nulls())
    assert generated["payload"].str.contains("boxed").all()
