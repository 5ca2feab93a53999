"""Tool-use plans: reading them (MnMs records, student completions), writing them, validating them.

A plan is an ordered list of tool calls, each ``{"name": <tool>, "args": {<argument>: <value>}}``
(MnMs also numbers them with ``id``). A value is a literal taken from the request or a reference
``<node-k>.<output>`` to an output of the earlier step ``k``; references may sit inside a text.

The student writes the same JSON in a compact rendering, one array per step:
``[["object detection","image"],["count","objects"]]`` (the tool name, then its argument
names). Arguments without values are bound by type to the outputs of earlier steps.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dataenvgym_dagster.domain.tool_use.catalogue import ToolCatalogue

REFERENCE = re.compile(r"<node-(\d+)>\.(\w+)")
TOOL_MADE = {"object", "list[dict]"}  # types no request spells out: only tools output them
_FENCE = re.compile(r"```(?:json|python)?\s*(.*?)```", re.DOTALL)


class PlanStep(BaseModel):
    """One tool call. ``args`` values are ``None`` when a plan names its arguments only (the compact form)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="The tool, exactly as the catalogue names it, e.g. 'image captioning'.")
    args: dict[str, Any] = Field(default_factory=dict)


Plan = tuple[PlanStep, ...]


def tool_names(plan: Sequence[PlanStep]) -> str:
    """``object detection > count``: the plan's ordered tool names, the domain's short reference answer."""
    return " > ".join(step.name for step in plan)


def compact(plan: Sequence[PlanStep]) -> str:
    """The student's rendering: ``[["object detection","image"],["count","objects"]]``."""
    return json.dumps([[step.name, *step.args] for step in plan], separators=(",", ":"))


def mnms_json(plan: Sequence[PlanStep]) -> list[dict[str, Any]]:
    """The plan as MnMs writes it: ``[{"id": 0, "name": ..., "args": {...}}, ...]``."""
    return [{"id": index, "name": step.name, "args": dict(step.args)} for index, step in enumerate(plan)]


def plan_from_steps(steps: Any) -> Plan:
    """A plan from a parsed JSON (or Python-literal) value: a list of ``{name, args}`` objects or of
    ``[name, argument, ...]`` arrays. Raises ``ValueError`` saying what is wrong."""
    # ValueError, not TypeError, for every malformed plan: readers catch one exception type.
    if not isinstance(steps, list):
        raise ValueError(f"a plan is a list of steps, got {type(steps).__name__}")  # noqa: TRY004
    plan = []
    for index, step in enumerate(steps):
        if isinstance(step, dict):
            name, args = step.get("name"), step.get("args") or {}
            if not isinstance(args, dict):
                raise ValueError(f"step {index}: args must be an object, got {type(args).__name__}")  # noqa: TRY004
        elif isinstance(step, list) and step:
            # Checked before dict.fromkeys: a student's [name, ["x"]] would raise TypeError (unhashable) there.
            if not all(isinstance(arg, str) for arg in step[1:]):
                raise ValueError(f"step {index}: argument names must be strings")
            name, args = step[0], dict.fromkeys(step[1:])
        else:
            raise ValueError(f"step {index} is neither {{name, args}} nor [name, argument, ...]: {step!r}")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"step {index} has no tool name")
        plan.append(PlanStep(name=name.strip().replace("_", " "), args={str(k): v for k, v in args.items()}))
    return tuple(plan)


def parse_completion(completion: str) -> Plan | None:
    """The plan in a completion, or None when there is none.

    Reads JSON or a Python literal (single quotes, ``None``: the very format of MnMs's ``plan_str``).
    Tolerates code fences, text before the first ``[`` and anything after the array ends.
    """
    fenced = _FENCE.search(completion)
    text = fenced.group(1) if fenced else completion
    start = text.find("[")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        literal = _bracketed(text, start)
        if literal is None:
            return None
        try:
            value = ast.literal_eval(literal)  # a literal, never eval: the completion is untrusted text
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    try:
        plan = plan_from_steps(value)
    except ValueError:
        return None
    return plan or None


def _bracketed(text: str, start: int) -> str | None:
    """``text[start:end]``: the ``[…]`` opening at ``start`` up to its matching ``]`` (quotes respected), or None."""
    depth, quote, escaped = 0, "", False
    for position in range(start, len(text)):
        character = text[position]
        if quote:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == quote:
                quote = ""
        elif character in "'\"":
            quote = character
        elif character in "[{(":
            depth += 1
        elif character in "]})":
            depth -= 1
            if depth == 0:
                return text[start : position + 1]
    return None


def plan_problems(plan: Sequence[PlanStep], catalogue: ToolCatalogue) -> list[str]:
    """Why ``plan`` is not a valid plan over ``catalogue``; empty when it is valid.

    Valid means: at least one step; every tool exists; every argument name is one of its tool's
    and none is missing; every reference ``<node-k>.<key>`` names an earlier step and one of its
    outputs, of the argument's type when the reference is the whole value. A step whose arguments
    carry no values (the compact form) binds them by type: its ``object`` and ``list[dict]``
    inputs must come from earlier steps, and a later step must take some type an earlier step
    outputs, so the steps connect.
    """
    if not plan:
        return ["the plan has no steps"]
    problems: list[str] = []
    produced: set[str] = set()
    for index, step in enumerate(plan):
        tool = catalogue.get(step.name)
        if tool is None:
            problems.append(f"step {index}: {step.name!r} is not a tool")
            produced = produced | {"?"}
            continue
        unknown = [arg for arg in step.args if arg not in tool.inputs]
        missing = [arg for arg in tool.inputs if arg not in step.args]
        if unknown:
            problems.append(f"step {index} ({tool.name}): {unknown} are not arguments of {tool.name}; it takes {list(tool.inputs)}")
        if missing:
            problems.append(f"step {index} ({tool.name}): misses arguments {missing}")
        for arg, value in step.args.items():
            if isinstance(value, str):
                problems += _reference_problems(index, tool.name, arg, value, tool.inputs.get(arg), plan, catalogue)
        if step.args and all(value is None for value in step.args.values()) and "?" not in produced:
            unmade = sorted({tool.inputs[a] for a in step.args if a in tool.inputs and tool.inputs[a] in TOOL_MADE} - produced)
            if unmade:
                problems.append(f"step {index} ({tool.name}) takes {unmade}, which only tools make and no earlier step outputs")
            elif index and not set(tool.inputs.values()) & produced:
                problems.append(
                    f"step {index} ({tool.name}) takes {sorted(set(tool.inputs.values()))}, "
                    f"which no earlier step outputs ({sorted(produced)})"
                )
        produced = produced | set(tool.outputs.values())
    return problems


def _reference_problems(
    index: int, name: str, arg: str, value: str, kind: str | None, plan: Sequence[PlanStep], catalogue: ToolCatalogue
) -> list[str]:
    problems = []
    for match in REFERENCE.finditer(value):
        source, key = int(match.group(1)), match.group(2)
        if source >= index:
            problems.append(f"step {index} ({name}).{arg} refers to step {source}, which is not an earlier step")
            continue
        earlier = catalogue.get(plan[source].name)
        if earlier is None:
            continue  # already reported as an unknown tool
        if key not in earlier.outputs:
            problems.append(f"step {index} ({name}).{arg}: {key!r} is not an output of {earlier.name}; it outputs {list(earlier.outputs)}")
        elif match.group(0) == value.strip() and kind is not None and earlier.outputs[key] != kind:
            problems.append(f"step {index} ({name}).{arg} needs {kind} but {earlier.name}.{key} is {earlier.outputs[key]}")
    return problems
