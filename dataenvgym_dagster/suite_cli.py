"""``dataenvgym suite …`` and ``dataenvgym leaderboard``: run a suite of experiments, print the leaderboard."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add the ``suite`` and ``leaderboard`` commands; returns the handler of each."""
    suite = commands.add_parser("suite", help="run a suite of the catalogue (domains × environments × agents × seeds)")
    actions = suite.add_subparsers(dest="suite_command", required=True)
    actions.add_parser("list", help="the catalogue's suites and their partitions")
    run = actions.add_parser("run", help="run every partition of a suite not finished yet, then print its leaderboard")
    run.add_argument("name")
    board = commands.add_parser("leaderboard", help="the leaderboard of agents over finished runs (the `leaderboard` view)")
    board.add_argument("--suite", default=None, help="only the runs of this suite of the catalogue")
    board.add_argument("--format", choices=("markdown", "html", "csv"), default="markdown")
    board.add_argument("--output", type=Path, default=None, help="write to this file instead of printing")
    return {"suite": suite_command, "leaderboard": leaderboard_command}


def suite_command(arguments: argparse.Namespace) -> int:
    from dataenvgym_dagster.experiments import load_catalog

    catalog = load_catalog()
    if arguments.suite_command == "list":
        for name, suite in catalog.suites.items():
            print(
                f"{name}: {len(catalog.suite_partitions(name))} partitions = {len(suite.domains)} domains × "
                f"{len(suite.experiments(name))} (environment, agent) × {len(suite.seeds)} seeds "
                f"[{', '.join(suite.domains)}] [{', '.join(suite.experiments(name))}]"
            )
        if not catalog.suites:
            print("the catalogue has no suites; add a `suites:` block (see docs/leaderboard.md)")
        return 0
    return run_suite_command(catalog, arguments.name)


def run_suite_command(catalog, name: str) -> int:
    from dataenvgym_dagster.cli import _instance
    from dataenvgym_dagster.definitions import build_definitions
    from dataenvgym_dagster.defs.resources import default_home, home_warehouse
    from dataenvgym_dagster.defs.suites import run_suite

    catalog.suite(name)  # an unknown suite fails here, naming the known ones
    home = default_home()
    progress = run_suite(build_definitions(catalog, str(home)), _instance(home), catalog, name, QUIET)
    try:
        print()
        print(_board(home_warehouse(home), catalog, name, "markdown"))
    except LookupError as error:
        print(f"no leaderboard yet: {error}", file=sys.stderr)
    return 1 if progress.failed else 0


def _board(warehouse, catalog, suite: str | None, format: str) -> str:
    from dataenvgym_dagster import leaderboard

    names = None if suite is None else set(catalog.suite(suite).experiments(suite))
    board = leaderboard.load(warehouse, names)
    if format == "html":
        return leaderboard.html_page(board, title=f"DataEnvGym leaderboard{f': suite {suite}' if suite else ''}")
    return leaderboard.FORMATS[format](board)


def write_output(path: Path, text: str) -> None:
    """``text`` into ``path``: a file (through a link, to its target) is replaced whole, never left
    half-written, with its permissions kept; anything else (``/dev/stdout``, a pipe) is written to."""
    from dataenvgym_dagster.machinery.storage import replace_file

    target = path.resolve()
    if target.exists() and not target.is_file():
        with open(target, "w", encoding="utf-8") as stream:
            stream.write(text)
        return
    mode = target.stat().st_mode if target.exists() else None
    replace_file(target, text.encode())
    if mode is not None:
        target.chmod(mode)


def leaderboard_command(arguments: argparse.Namespace) -> int:
    from dataenvgym_dagster.defs.resources import home_warehouse
    from dataenvgym_dagster.experiments import load_catalog

    text = _board(home_warehouse(), load_catalog(), arguments.suite, arguments.format)
    if arguments.output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        write_output(arguments.output, text)
        print(f"wrote {arguments.output}", file=sys.stderr)
    return 0
