"""The picture of the layers stays true: imports only point downward (domain <- machinery <- orchestration)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dataenvgym_dagster"
ABOVE = {
    "domain": ("dataenvgym_dagster.machinery", "dataenvgym_dagster.loop", "dataenvgym_dagster.defs", "dataenvgym_dagster.definitions",
               "dataenvgym_dagster.cli", "dagster"),
    "machinery": ("dataenvgym_dagster.loop", "dataenvgym_dagster.defs", "dataenvgym_dagster.definitions", "dataenvgym_dagster.cli",
                  "dagster"),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_a_layer_imports_nothing_from_the_layers_above_it(layer):
    upward = {
        str(path.relative_to(PACKAGE)): sorted(name for name in _imports(path) if name.startswith(ABOVE[layer]))
        for path in (PACKAGE / layer).rglob("*.py")
    }
    assert {path: names for path, names in upward.items() if names} == {}
