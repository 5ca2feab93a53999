"""The ``tool_use`` domain: MnMs plans over 33 tools, from local MnMs files or generated offline."""

from dataenvgym_dagster.domain.tool_use.domain import TOOL_USE, ToolUseDomain

__all__ = ["TOOL_USE", "ToolUseDomain"]
