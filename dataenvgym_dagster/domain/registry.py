"""Every domain the loop can run, registered in this one place.

Adding a domain is one new package implementing :class:`~dataenvgym_dagster.domain.protocol.Domain`
and one line here. Domains are imported on first use, so a domain with heavy dependencies
costs nothing to the others.
"""

from __future__ import annotations

import importlib
from functools import cache

from dataenvgym_dagster.domain.protocol import Domain

# name -> "module:attribute" of the domain object
DOMAINS: dict[str, str] = {
    "arithmetic": "dataenvgym_dagster.domain.arithmetic:ARITHMETIC",
    "code": "dataenvgym_dagster.domain.code:CODE",
    "tool_use": "dataenvgym_dagster.domain.tool_use:TOOL_USE",
    "math": "dataenvgym_dagster.domain.math:MATH",
    "vqa": "dataenvgym_dagster.domain.vqa:VQA",
}


@cache
def get_domain(name: str) -> Domain:
    """The registered domain called ``name``."""
    try:
        target = DOMAINS[name]
    except KeyError:
        raise KeyError(f"unknown domain {name!r}; available domains: {', '.join(sorted(DOMAINS))}") from None
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
