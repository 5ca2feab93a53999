"""Values that cross the sandbox's boundary as plain data, never as objects.

Standard library only, and no imports at all on the path the sandbox uses: the sandbox's runner
loads this very file inside the sandbox (it encodes return values and decodes arguments there),
and the trusted judge uses it outside (it encodes arguments and decodes return values). Only
``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``list``, ``tuple``, ``set``,
``frozenset`` and ``dict`` of exactly those types (no subclasses) cross, as data made of JSON's
types (``None``, ``bool``, ``int``, finite ``float``, ``str``, ``list``, ``dict``), a one-key
dict tagging what JSON lacks::

    (1, 2) -> {"tuple": [1, 2]}      {3} -> {"set": [3]}        b"a" -> {"bytes": "61"}
    {1: 2} -> {"dict": [[1, 2]]}     [1, "a"] -> [1, "a"]        float("nan") -> {"float": "nan"}

On the wire the data is a Python literal (``repr``), read back with ``ast.literal_eval`` and
checked type by type. So whatever the program returns, the judge compares values it built
itself from data: an object whose ``__eq__`` is always true cannot reach it.
"""

from __future__ import annotations

MAX_DEPTH = 100  # nesting of containers, both ways


class NotPlainData(ValueError):
    """A value that is not plain data (or data that does not decode to one)."""


_SEQUENCES = {tuple: "tuple", set: "set", frozenset: "frozenset"}
_TYPES = {name: kind for kind, name in _SEQUENCES.items()}


def encode(value: object, depth: int = 0) -> object:
    """``value`` as JSON-ready data; :class:`NotPlainData` names the first thing that is not."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if value - value == 0 else {"float": repr(value)}  # inf and nan are not literals
    if depth >= MAX_DEPTH:
        raise NotPlainData(f"nested deeper than {MAX_DEPTH} levels")
    if kind is list:
        return [encode(item, depth + 1) for item in value]
    if kind in _SEQUENCES:
        items = [encode(item, depth + 1) for item in value]
        return {_SEQUENCES[kind]: items}
    if kind is dict:
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    raise NotPlainData(f"a {kind.__module__}.{kind.__qualname__} object is not plain data")


def decode(data: object, depth: int = 0) -> object:
    """The value that :func:`encode` made ``data`` from; :class:`NotPlainData` if it cannot be."""
    kind = type(data)
    if data is None or kind in (bool, int, float, str):
        return data
    if depth >= MAX_DEPTH:
        raise NotPlainData(f"nested deeper than {MAX_DEPTH} levels")
    if kind is list:
        return [decode(item, depth + 1) for item in data]
    if kind is dict and len(data) == 1 and data.get("float") in ("nan", "inf", "-inf"):
        return float(data["float"])
    if kind is dict and len(data) == 1:
        (tag, items), = data.items()
        try:
            if tag in _TYPES and type(items) is list:
                return _TYPES[tag](decode(item, depth + 1) for item in items)
            if tag == "dict" and type(items) is list:
                return {decode(k, depth + 1): decode(v, depth + 1) for k, v in items}
            if tag == "bytes" and type(items) is str:
                return bytes.fromhex(items)
        except (TypeError, ValueError) as error:  # an unhashable key, a pair that is not two items
            raise NotPlainData(f"malformed {tag}: {error}") from None
    raise NotPlainData(f"{repr(data)[:80]} is not encoded plain data")


def dumps(value: object) -> str:
    """One line, a Python literal, for ``value`` (see :func:`encode`)."""
    try:
        return repr(encode(value))
    except ValueError as error:  # an int past the interpreter's digit limit
        raise NotPlainData(str(error)) from None


def read_literal(text: str) -> object:
    """The data of one Python literal line (``ast.literal_eval``); :class:`NotPlainData` for anything else."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as error:
        raise NotPlainData(f"not a literal: {str(error)[:120]}") from None


def loads(text: str) -> object:
    """The value of a line :func:`dumps` wrote; :class:`NotPlainData` for anything else."""
    return decode(read_literal(text))
