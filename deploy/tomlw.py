"""Writing the small TOML files the deploy side produces (device.toml): tables of scalars and lists.

``tomllib`` only reads.  This writes exactly what the gate's config uses (strings, booleans, numbers,
lists of those, one level of tables) and round-trips through ``tomllib``.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return {True: "inf", False: "-inf"}[v > 0] if math.isinf(v) else "nan"
        return repr(v)
    if isinstance(v, str):
        # A JSON string is a valid TOML basic string (same escapes), kept readable with ensure_ascii=False.
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(data: dict[str, Any], header: str = "") -> str:
    """TOML text for ``{"section": {"key": value}}`` (top-level scalars first, then tables)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for k, v in scalars.items():
        lines.append(f"{_key(k)} = {_value(v)}")
    for name, table in tables.items():
        if lines:
            lines.append("")
        lines.append(f"[{_key(name)}]")
        for k, v in table.items():
            if isinstance(v, dict):
                raise TypeError(f"nested table {name}.{k} is not supported")
            lines.append(f"{_key(k)} = {_value(v)}")
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    if k and all(c.isalnum() or c in "_-" for c in k) and k.isascii():
        return k
    return json.dumps(k)


__all__ = ["dumps"]
