"""Catalogue errors in one line: the entry, the field, its line in the file, what is allowed.

pydantic's own report spans lines, repeats the input (``input_value=…``) and links to its
documentation; a user editing ``experiments.yaml`` needs where and what instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from dataenvgym_dagster.domain.errors import MAX_LISTED, describe_problem, flat

# A check across the whole catalogue (pydantic puts it at the root) names its field first
# ("domains.arithmetic.offline_drift: drift names unknown skills …"): the line is that field's.
NAMED_FIELD = re.compile(r"(?:domains|experiments|suites)(?:\.[\w/-]+)+")


def _node_at(root: yaml.Node | None, location: Sequence[Any]) -> yaml.Node | None:
    """The YAML node of the deepest key (or sequence item) along ``location``: where the field is written."""
    node, found = root, root
    for part in location:
        child = None
        if isinstance(node, yaml.MappingNode):
            pair = next(((key, value) for key, value in node.value if getattr(key, "value", None) == str(part)), None)
            if pair is not None:
                found, child = pair
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            found = child = node.value[part]
        if child is None:
            break
        node = child
    return found


def _line(text: str | None, location: Sequence[Any]) -> str:
    if text is None:
        return ""
    try:
        node = _node_at(yaml.compose(text), location)
    except yaml.YAMLError:
        return ""
    return f" (line {node.start_mark.line + 1})" if node is not None else ""


def describe_validation_error(error: ValidationError, text: str | None = None) -> str:
    """One line for every problem of ``error`` (the same problem repeated by YAML anchors once), each as
    ``<field> (line N): <what is wrong>``; ``text`` is the YAML the data came from, for line numbers."""
    seen: dict[str, str] = {}
    for item in error.errors():
        location = [part for part in item["loc"] if not str(part).startswith("function-")]
        field = ".".join(str(part) for part in location) or "the file"
        problem = describe_problem(item)
        if not location and (named := NAMED_FIELD.match(problem)) and (line := _line(text, named[0].split("."))):
            seen.setdefault(problem, f"{line.strip(' ()')}: {problem}")  # "line 34: domains.….offline_drift: …"
            continue
        seen.setdefault(problem + field.rsplit(".", 1)[-1], f"{field}{_line(text, location)}: {problem}")
    problems = [flat(problem) for problem in seen.values()]  # a key or a validator's message may hold newlines
    more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return "; ".join(problems[:MAX_LISTED]) + more


def describe_yaml_error(error: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: line, column and the problem."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def duplicate_key(text: str) -> str | None:
    """The first key written twice in one mapping of ``text``, as ``<path> (lines A and B)``; None if none is.

    PyYAML keeps the last of two equal keys without a word, so a second experiment pasted under an
    existing name would silently replace the first. Keys are compared by the value YAML makes of
    them (``1``, ``0x1`` and ``1.0``, ``yes`` and ``true`` are the same key, as in the dict it builds). Keys that a mapping takes from
    a YAML merge (``<<: *shared``) and then sets itself are overrides, not duplicates: only keys
    written in the mapping itself are compared (and, inside it, those of an inline merge's mappings).
    """
    constructor = yaml.SafeLoader("")  # builds a scalar key's value the way safe_load does
    seen_nodes: set[int] = set()

    def position(mark: yaml.Mark, other: yaml.Mark) -> str:
        if mark.line == other.line:
            return f"line {mark.line + 1}, columns {other.column + 1} and {mark.column + 1}"
        return f"lines {other.line + 1} and {mark.line + 1}"

    def visit(node: yaml.Node | None, path: str) -> str | None:
        if node is None or id(node) in seen_nodes:  # an alias is checked where its anchor is written
            return None
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            return next((found for index, item in enumerate(node.value) if (found := visit(item, f"{path}[{index}]"))), None)
        if not isinstance(node, yaml.MappingNode):
            return None
        marks: dict[Any, yaml.Mark] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                if found := visit(value, path):
                    return found
                continue
            if not isinstance(key, yaml.ScalarNode):
                continue
            built = constructor.construct_object(key)  # equal as Python dict keys are: 1, 1.0 and true are one key
            where = flat(f"{path}.{key.value}" if path else key.value)
            if built in marks:
                return f"{where} ({position(key.start_mark, marks[built])})"
            marks[built] = key.start_mark
            if found := visit(value, where):
                return found
        return None

    return visit(yaml.compose(text), "")
