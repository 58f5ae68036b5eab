"""Lone UTF-16 surrogates: valid JSON (``"\\ud800"``), but no valid Unicode text.

A JSON body may escape a lone surrogate; Python decodes it into a ``str`` that cannot be
encoded as UTF-8, so neither the database nor a JSON response can carry it. The gateway
refuses such bodies with a 400 (:func:`surrogate_path` finds the first offending field) and the
request log replaces them (:func:`replace_surrogates`) so the refusal itself is logged.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON escape of a surrogate code point (\ud800-\udfff); a raw body without one cannot hold any.
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def may_hold_surrogates(raw: bytes) -> bool:
    """Cheap pre-check on the raw body: False means no string in it can hold a surrogate."""
    return _ESCAPED_SURROGATE.search(raw) is not None


def has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def replace_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def surrogate_path(value: Any, path: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """The path (keys and indexes) of the first string (or object key) holding a surrogate, or None."""
    if isinstance(value, str):
        return path if has_surrogate(value) else None
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and has_surrogate(k):
                return (*path, replace_surrogates(k))
            found = surrogate_path(v, (*path, k))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = surrogate_path(v, (*path, i))
            if found is not None:
                return found
    return None


def find_surrogate_field(raw: bytes) -> str | None:
    """The dotted field path (``messages.0.content``; ``""`` for the top level) of the first lone
    surrogate in a JSON body, or None when there is none (or the body is not JSON)."""
    if not may_hold_surrogates(raw):
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    path = surrogate_path(parsed)
    return None if path is None else ".".join(str(p) for p in path)


def surrogate_message(field: str) -> str:
    """The error message for a lone surrogate in ``field`` (``""``: the body itself)."""
    return (f"field {field or '(body)'} holds a lone UTF-16 surrogate, which is not valid Unicode text; "
            "send UTF-8 text (a character outside the BMP is one surrogate pair)")
