"""`dataenvgym sql`: the warehouse's views in the project's own DuckDB, read-only, as a shell or one query."""

import io
import json
import re
from pathlib import Path

import pytest

from dataenvgym_dagster.cli import main
from dataenvgym_dagster.machinery.warehouse import DERIVED_VIEWS, TABLES, Warehouse
from dataenvgym_dagster.sql import ReadOnlyError, check_read_only, shell

from .test_warehouse import evaluation_rows

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home whose warehouse holds 4 test evaluations of arithmetic|e at iteration 0 (2 right)."""
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path))
    monkeypatch.delenv("DATAENVGYM_STORAGE", raising=False)
    Warehouse(tmp_path).write("evaluation_results", ["arithmetic", "e", "iteration_0__test_evaluation"], evaluation_rows(4))
    return tmp_path


def sql(capsys, *arguments: str) -> tuple[int, str, str]:
    code = main(["sql", *arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_one_shot_query_prints_a_table_of_a_view(home, capsys):
    code, out, _ = sql(capsys, "SELECT experiment, split, n, accuracy FROM accuracy_by_iteration")
    assert code == 0
    assert re.search(r"e\s+┆ test\s+┆ 4\s+┆ 0\.5", out), out


@pytest.mark.parametrize("fmt", ["csv", "json", "markdown"])
def test_each_format_prints_every_row_in_a_form_other_tools_read(home, capsys, fmt):
    code, out, _ = sql(capsys, "SELECT example_id, correct FROM evaluation_results ORDER BY example_id", "--format", fmt)
    assert code == 0
    if fmt == "csv":
        assert out.splitlines() == ["example_id,correct", "0,true", "1,false", "2,true", "3,false"]
    elif fmt == "json":
        assert json.loads(out) == [{"example_id": str(i), "correct": i % 2 == 0} for i in range(4)]
    else:
        assert out.splitlines()[:3] == ["| example_id | correct |", "|---|---|", "| 0 | true |"]


@pytest.mark.parametrize("statement", [
    "COPY (FROM evaluation_results) TO '{home}/copy.csv'",
    "CREATE TABLE t AS SELECT 1",
    "DROP VIEW evaluation_results",
    "SELECT 1; DELETE FROM evaluation_results",
    "ATTACH '{home}/other.duckdb'",
    # EXPLAIN ANALYZE runs the statement it explains.
    "EXPLAIN ANALYZE COPY (FROM evaluation_results) TO '{home}/copy.csv'",
    "explain analyse create table t as select 1",
    "EXPLAIN ANALYZE SET threads = 1",
    "PRAGMA import_database('{home}')",  # runs the folder's load.sql, whatever it holds
])
def test_statements_that_would_write_are_refused_before_anything_runs(home, capsys, statement):
    code, out, err = sql(capsys, statement.format(home=home))
    assert code == 2 and out == ""
    assert "refused: dataenvgym sql only reads the warehouse" in err
    assert not (home / "copy.csv").exists() and not (home / "other.duckdb").exists()


def test_describe_summarize_and_show_are_reading_statements():
    for statement in ("DESCRIBE evaluation_results", "SUMMARIZE evaluation_results", "SHOW TABLES", "FROM skill_accuracy",
                      "EXPLAIN FROM skill_accuracy", "EXPLAIN ANALYZE SELECT count(*) FROM evaluation_results",
                      "PRAGMA table_info('evaluation_results')", "pragma Version"):
        check_read_only(statement)
    with pytest.raises(ReadOnlyError, match="INSERT statements are refused"):
        check_read_only("INSERT INTO evaluation_results VALUES (1)")


def test_the_shell_runs_statements_over_several_lines_and_dot_commands(home):
    out = io.StringIO()
    script = [
        ".tables",
        "SELECT split,",
        "       count(*) AS n FROM evaluation_results GROUP BY split;",
        ".format csv",
        "SELECT accuracy FROM accuracy_by_iteration;",
        ".schema skill_accuracy",
        ".quit",
        "SELECT 'never reached';",
    ]
    assert shell(Warehouse(home), "table", script, out) == 0
    text = out.getvalue()
    assert all(name in text for name in [*TABLES, *DERIVED_VIEWS])  # .tables lists every table and view
    assert re.search(r"test\s+┆ 4", text)
    assert "format: csv\naccuracy\n0.5\n" in text
    assert "accuracy,DOUBLE" in text  # .schema, in the current format
    assert "never reached" not in text


def test_a_failing_statement_in_a_script_is_reported_and_the_script_goes_on(home):
    out = io.StringIO()
    code = shell(Warehouse(home), "csv", ["SELECT nope FROM evaluation_results;", "SELECT 1 AS one;"], out)
    assert code == 1
    assert 'error: Binder Error: Referencing column "nope" not found' in out.getvalue() or "nope" in out.getvalue()
    assert "one\n1" in out.getvalue()


def test_nothing_tells_the_user_to_run_the_duckdb_cli_which_is_not_installed():
    """The `duckdb` CLI is not a dependency (and PyPI's duckdb-cli lags the library): point at `dataenvgym sql`."""
    texts = [*REPOSITORY.glob("*.md"), *REPOSITORY.glob("docs/**/*.md"), *REPOSITORY.glob("dataenvgym_dagster/**/*.py"),
             *REPOSITORY.glob("benchmarks/*.py")]
    offending = [
        f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}"
        for path in texts for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"duckdb -readonly|duckdb \S+\.duckdb", line)
    ]
    assert not offending, "\n".join(offending)
