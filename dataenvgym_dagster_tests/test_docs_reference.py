"""The documentation covers what it documents: every warehouse table and view, every `dataenvgym` command."""

import contextlib
import io
import re
from pathlib import Path

from dataenvgym_dagster.cli import main
from dataenvgym_dagster.machinery.warehouse import DERIVED_VIEWS, TABLES

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_warehouse_reference_lists_every_table_and_view():
    text = (DOCS / "warehouse.md").read_text()
    rows = re.findall(r"^\| ((?:`[a-z_]+`(?:, )?)+) \|", text, flags=re.MULTILINE)
    documented = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row)}
    missing = sorted((set(TABLES) | set(DERIVED_VIEWS)) - documented)
    assert not missing, f"docs/warehouse.md has no row for {missing}"


def test_the_commands_table_names_every_dataenvgym_command():
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        main(["--help"])
    commands = re.search(r"\{([a-z_,]+)\}", out.getvalue()).group(1).split(",")
    text = (DOCS / "index.md").read_text()
    missing = [command for command in commands if f"dataenvgym {command}" not in text]
    assert not missing, f"docs/index.md's commands table does not mention {missing}"
