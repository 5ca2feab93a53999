"""Conversions between warehouse rows and the domain's typed records, with clear errors."""

from __future__ import annotations

from typing import TypeVar

import polars as pl
from pydantic import BaseModel, ValidationError

from dataenvgym_dagster.domain.errors import one_line

Record = TypeVar("Record", bound=BaseModel)


def records(frame: pl.DataFrame, model: type[Record], source: str) -> list[Record]:
    """Every row of ``frame`` as ``model``; a malformed row raises naming its number and source."""
    fields = list(model.model_fields)
    missing = [name for name in fields if name not in frame.columns and model.model_fields[name].is_required()]
    if missing:
        raise ValueError(f"{source} lacks columns {missing} needed for {model.__name__}")
    parsed = []
    for number, row in enumerate(frame.select([c for c in fields if c in frame.columns]).iter_rows(named=True)):
        try:
            parsed.append(model.model_validate(row))
        except ValidationError as error:
            raise ValueError(f"row {number} of {source} is malformed: {one_line(error)} (the row: {row})") from None
    return parsed
