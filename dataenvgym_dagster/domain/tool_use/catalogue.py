"""The MnMs tool catalogue: 33 tools with their argument names and types, shipped as ``tools.json``.

Plans are validated against it and the procedural source chains tools whose types fit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

CATEGORIES = ("ml", "image", "api")
"""Machine-learning models, image-processing functions, public APIs."""


@dataclass(frozen=True)
class Tool:
    """One tool: its argument names with their types, and its outputs (key -> type)."""

    name: str
    category: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    description: str

    @property
    def slug(self) -> str:
        """``image captioning`` → ``image_captioning``: the name as MnMs code and skill names write it."""
        return self.name.replace(" ", "_")

    def signature(self) -> str:
        """``image captioning(image: image) -> {text: text}``: one line of the teacher's brief."""
        inputs = ", ".join(f"{name}: {kind}" for name, kind in self.inputs.items())
        outputs = ", ".join(f"{name}: {kind}" for name, kind in self.outputs.items())
        return f"{self.name}({inputs}) -> {{{outputs}}}"


class ToolCatalogue:
    """The tools by name (``image captioning``); MnMs code names (``image_captioning``) are accepted too."""

    def __init__(self, tools: list[Tool]) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self._by_slug = {tool.slug: tool for tool in tools}
        unknown = {tool.category for tool in tools} - set(CATEGORIES)
        if unknown:
            raise ValueError(f"tool catalogue uses unknown categories {sorted(unknown)}; known: {', '.join(CATEGORIES)}")

    def __iter__(self) -> Iterator[Tool]:
        return iter(self.tools.values())

    def __len__(self) -> int:
        return len(self.tools)

    def __contains__(self, name: object) -> bool:
        return self.get(name) is not None if isinstance(name, str) else False

    def get(self, name: str) -> Tool | None:
        """The tool called ``name`` (plan or code spelling), or None."""
        return self.tools.get(name) or self._by_slug.get(name)

    def __getitem__(self, name: str) -> Tool:
        tool = self.get(name)
        if tool is None:
            raise KeyError(f"{name!r} is not one of the {len(self)} MnMs tools; known: {', '.join(self.tools)}")
        return tool

    def describe(self) -> str:
        """Every tool's signature, category by category: the catalogue as the teacher reads it."""
        lines = []
        for category in CATEGORIES:
            lines.append(f"[{category}]")
            lines += [f"- {tool.signature()}: {tool.description}" for tool in self if tool.category == category]
        return "\n".join(lines)


@cache
def load_catalogue() -> ToolCatalogue:
    """The catalogue shipped with the package (``tools.json``)."""
    data = json.loads(files(__package__).joinpath("tools.json").read_text(encoding="utf-8"))
    return ToolCatalogue([Tool(**tool) for tool in data["tools"]])
