"""``dataenvgym sql``: the warehouse's tables and views in a read-only SQL shell, or one query at a time.

Queries run in the project's own DuckDB (the one that writes the warehouse, so versions always
match), on an in-memory connection holding every view of :mod:`~dataenvgym_dagster.machinery.warehouse`:
it never takes ``warehouse.duckdb``'s lock, so it is safe while runs write. Only statements that
read are accepted (``SELECT``, ``FROM …``, ``DESCRIBE``, ``SUMMARIZE``, ``SHOW``, ``EXPLAIN`` of those, ``PRAGMA``
statements that only report, listed in ``READING_PRAGMAS``);
anything that would write a file or change a view is refused before it runs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import TextIO

import duckdb
import polars as pl

from dataenvgym_dagster.machinery.warehouse import DERIVED_VIEWS, TABLES, Warehouse

FORMATS = ("table", "csv", "json", "markdown")
READING_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA"}  # DESCRIBE, SHOW and SUMMARIZE parse as SELECT
TABLE_ROWS = 100  # rows the `table` format prints; the other formats print every row

HELP = f"""\
Statements end with ';' and may span lines. Only reading statements run (SELECT, FROM, DESCRIBE, SUMMARIZE, SHOW).
  .tables            the warehouse's tables and views
  .schema NAME       the columns of a table or view (same as DESCRIBE NAME;)
  .format FORMAT     how results print: {', '.join(FORMATS)}
  .help              this text
  .quit              leave (or Ctrl-D)
Example: FROM accuracy_by_iteration WHERE split = 'test' ORDER BY domain, experiment, iteration;"""


class ReadOnlyError(ValueError):
    """A statement that would write, refused before it runs."""


def check_read_only(sql: str) -> list[str]:
    """The statements of ``sql`` (as SQL text), or :class:`ReadOnlyError` if one of them would write."""
    statements = duckdb.extract_statements(sql)
    if not statements:
        raise ValueError("no SQL statement given; e.g. dataenvgym sql 'FROM accuracy_by_iteration'")
    for statement in statements:
        kind = statement.type.name
        if kind == "EXPLAIN":
            kind = _explained_kind(statement.query)
        if kind == "PRAGMA" and _pragma_name(statement.query) not in READING_PRAGMAS:
            kind = f"PRAGMA {_pragma_name(statement.query)}"  # refused below, by name
        if kind not in READING_STATEMENTS:
            raise ReadOnlyError(
                f"{kind} statements are refused: dataenvgym sql only reads the warehouse ({statement.query.strip()[:60]!r}). "
                "Tables are written by materialising assets; to save a result, use --format csv > file.csv"
            )
    return [statement.query for statement in statements]


# Pragmas that only report; others change settings or run statements (import_database runs a folder's SQL files).
READING_PRAGMAS = frozenset({
    "table_info", "show", "show_tables", "show_tables_expanded", "show_databases", "database_list", "database_size",
    "storage_info", "metadata_info", "functions", "collations", "version", "platform", "user_agent",
})


def _pragma_name(sql: str) -> str:
    match = re.match(r"\s*PRAGMA\s+(\w+)", sql, re.IGNORECASE)
    return match.group(1).lower() if match else ""


# EXPLAIN, its options in brackets and ANALYZE (which runs the statement it explains).
_EXPLAIN = re.compile(r"\s*EXPLAIN\s*(?:\([^)]*\)\s*)?(?:ANALY[SZ]E\b)?(.*)", re.IGNORECASE | re.DOTALL)


def _explained_kind(sql: str) -> str:
    """The kind of statement an EXPLAIN explains (EXPLAIN ANALYZE runs it: ``EXPLAIN ANALYZE COPY …`` writes)."""
    match = _EXPLAIN.fullmatch(sql)
    try:
        explained = duckdb.extract_statements(match.group(1)) if match and match.group(1).strip() else []
    except duckdb.Error:
        explained = []
    if len(explained) != 1:
        return "unrecognised EXPLAIN"  # refused rather than guessed
    kind = explained[0].type.name
    return _explained_kind(explained[0].query) if kind == "EXPLAIN" else kind


def query(connection: duckdb.DuckDBPyConnection, sql: str) -> list[pl.DataFrame]:
    """The result of each statement in ``sql``, once every statement is known to only read."""
    results = []
    for statement in check_read_only(sql):
        relation = connection.sql(statement)
        results.append(relation.pl() if relation is not None else pl.DataFrame())
    return results


def render(frame: pl.DataFrame, fmt: str = "table") -> str:
    """``frame`` as an aligned text table, CSV, JSON (a list of objects) or a Markdown table."""
    if fmt == "csv":
        return frame.write_csv().rstrip("\n")
    if fmt == "json":
        return frame.write_json()
    if fmt == "markdown":
        return markdown(frame)
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    with pl.Config(
        tbl_rows=TABLE_ROWS, tbl_cols=-1, tbl_hide_dataframe_shape=True, tbl_width_chars=10_000, fmt_str_lengths=80,
        tbl_hide_column_data_types=True,
    ):
        text = str(frame)
    if len(frame) > TABLE_ROWS:
        text += f"\n{len(frame)} rows, {TABLE_ROWS} shown; --format csv prints them all"
    return text


def markdown(frame: pl.DataFrame) -> str:
    """A Markdown table of ``frame``, full precision (``|`` in cells escaped)."""
    def cell(value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"  # as in the csv and json formats
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in frame.iter_rows()]
    return "\n".join(lines)


def catalogue() -> pl.DataFrame:
    """The warehouse's tables and views, the way ``.tables`` lists them."""
    rows = [{"name": name, "kind": "table", "columns": len(schema)} for name, schema in TABLES.items()]
    rows += [{"name": name, "kind": "view", "columns": None} for name in DERIVED_VIEWS]
    return pl.DataFrame(rows, schema={"name": pl.String, "kind": pl.String, "columns": pl.Int64})


def run_once(warehouse: Warehouse, sql: str, fmt: str, out: TextIO | None = None) -> None:
    """Run ``sql`` (one or more statements) and print each result (to ``out``, default standard output)."""
    out = out or sys.stdout
    with warehouse.connect(private=True) as connection:  # the user's statements: nothing outlives it
        for frame in query(connection, sql):
            print(render(frame, fmt), file=out)


def shell(warehouse: Warehouse, fmt: str = "table", lines: Iterable[str] | None = None, out: TextIO | None = None) -> int:
    """The interactive shell: statements end with ``;``, dot commands as in :data:`HELP`.

    ``lines``: the input (default: the terminal, with a prompt). Returns 0, or 1 if a statement failed
    while reading from something other than a terminal (a script)."""
    interactive, out = lines is None, out or sys.stdout
    if interactive:
        try:
            import readline  # noqa: F401 - line editing and history for input()
        except ImportError:
            pass
        print(f"dataenvgym sql: {warehouse.home} (read-only). .help for help, .quit to leave.", file=out)
    source = iter(lines) if lines is not None else _prompted()
    failed = False
    buffer: list[str] = []
    with warehouse.connect(private=True) as connection:  # the user's statements: nothing outlives it
        for line in source:
            stripped = line.strip()
            if not buffer and stripped.startswith("."):
                command, _, argument = stripped.partition(" ")
                if command in (".quit", ".exit"):
                    break
                fmt, message = _dot_command(command, argument.strip(), fmt, connection)
                print(message, file=out)
                continue
            buffer.append(line)
            if not stripped.endswith(";"):
                continue
            sql, buffer = "\n".join(buffer), []
            try:
                for frame in query(connection, sql):
                    print(render(frame, fmt), file=out)
            except (duckdb.Error, ValueError) as error:
                print(f"error: {error}", file=out)
                failed = True
        if buffer and "".join(buffer).strip():  # a last statement without ';' (a script's end)
            try:
                for frame in query(connection, "\n".join(buffer)):
                    print(render(frame, fmt), file=out)
            except (duckdb.Error, ValueError) as error:
                print(f"error: {error}", file=out)
                failed = True
    return 1 if failed and not interactive else 0


def _prompted() -> Iterable[str]:
    prompt = "sql> "
    while True:
        try:
            line = input(prompt)
        except EOFError:
            print()
            return
        except KeyboardInterrupt:  # Ctrl-C drops the statement being typed, as other SQL shells do
            print()
            continue
        yield line
        prompt = "sql> " if line.strip().endswith(";") or line.strip().startswith(".") else "...> "


def _dot_command(command: str, argument: str, fmt: str, connection: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """(the format from now on, what to print) for one dot command."""
    if command == ".help":
        return fmt, HELP
    if command == ".tables":
        return fmt, render(catalogue(), fmt)
    if command == ".format":
        if argument not in FORMATS:
            return fmt, f"error: .format takes one of {', '.join(FORMATS)}, not {argument!r}"
        return argument, f"format: {argument}"
    if command == ".schema":
        if argument not in TABLES and argument not in DERIVED_VIEWS:
            return fmt, f"error: no table or view {argument!r}; .tables lists them"
        return fmt, render(connection.sql(f"DESCRIBE {argument}").pl().select("column_name", "column_type"), fmt)
    return fmt, f"error: unknown command {command}; .help lists the commands"


# -- the `dataenvgym sql` command -----------------------------------------------------------------
def add_sql_arguments(parser) -> None:
    parser.add_argument("query", nargs="?", help="SQL to run once (default: a shell; SQL piped on stdin runs as a script)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="how results print (default: table)")


def sql_command(arguments) -> int:
    """``dataenvgym sql [QUERY] [--format …]`` over ``$DATAENVGYM_HOME``'s warehouse."""
    from dataenvgym_dagster.defs.resources import home_warehouse

    warehouse = home_warehouse()
    if arguments.query is not None:
        run_once(warehouse, arguments.query, arguments.format)  # a DuckDB error: cli.py names damaged files, if any
        return 0
    if not sys.stdin.isatty():
        return shell(warehouse, arguments.format, sys.stdin.read().splitlines())
    return shell(warehouse, arguments.format)
