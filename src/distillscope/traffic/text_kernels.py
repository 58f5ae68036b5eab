"""Columnar string kernels with an exact Python fallback.

The text columns of :mod:`.prepare` are defined by Python regular expressions (``re``). Arrow's
RE2 kernels agree with them on ASCII text once Python's character classes are spelled out
(``\\s`` is Unicode whitespace in Python, ``[\\t\\n\\f\\r ]`` in RE2; ``str.lower`` and
``re.IGNORECASE`` fold non-ASCII letters differently from utf8proc). So every kernel here runs
RE2 over the ASCII strings of an array and the original Python function over the rest, which
keeps the result identical to the per-string definition while the bulk of a log is vectorised.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Python's ``\s`` restricted to ASCII, written out for RE2.
ASCII_SPACE = r"[\t\n\x0b\x0c\r \x1c-\x1f]"


def split_ascii(arr: pa.Array, max_length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ASCII strings (at most ``max_length`` long) of ``arr``, and of the others."""
    if len(arr) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    fast = pc.fill_null(pc.string_is_ascii(arr), True)
    if max_length is not None:
        fast = pc.and_(fast, pc.fill_null(pc.less_equal(pc.binary_length(arr), max_length), True))
    ok = fast.to_numpy(zero_copy_only=False)
    return np.flatnonzero(ok), np.flatnonzero(~ok)


def map_strings(arr: pa.Array, fast: Callable[[pa.Array], pa.Array], slow: Callable[[str], object],
                out_type: pa.DataType, *, max_length: int | None = None) -> pa.Array:
    """``fast`` (Arrow kernels) on the ASCII strings (up to ``max_length`` long), ``slow`` (Python)
    on the others, in the original order."""
    ascii_idx, other_idx = split_ascii(arr, max_length)
    if len(other_idx) == 0:
        return fast(arr).cast(out_type)
    return scatter([fast(arr.take(pa.array(ascii_idx))).cast(out_type),
                    pa.array([slow(s) for s in arr.take(pa.array(other_idx)).to_pylist()], type=out_type)],
                   [ascii_idx, other_idx])


def scatter(parts: list[pa.Array], positions: list[np.ndarray]) -> pa.Array:
    """One array from ``parts``: element ``j`` of ``parts[k]`` lands at ``positions[k][j]`` (the
    positions together are a permutation of ``range(total length)``)."""
    order = np.empty(sum(len(p) for p in positions), dtype=np.int64)
    order[np.concatenate(positions)] = np.arange(len(order))
    return pa.concat_arrays(parts).take(pa.array(order))


def replace_at(arr: pa.Array, idx: np.ndarray, values: list) -> pa.Array:
    """``arr`` with the elements at ``idx`` replaced by ``values`` (same type)."""
    if len(idx) == 0:
        return arr
    keep = np.ones(len(arr), dtype=bool)
    keep[idx] = False
    kept_idx = np.flatnonzero(keep)
    return scatter([arr.take(pa.array(kept_idx)), pa.array(values, type=arr.type)], [kept_idx, idx])
