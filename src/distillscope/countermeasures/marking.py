"""Stronger marking for protected accounts: what they take carries more of our watermark.

A protected account's answers are generated with the same key and a larger bias δ (so the same
detector and the audit read them unchanged, with more green tokens per answer), or with a second
key whose id the request log records, so its share can be audited on its own.
"""

from __future__ import annotations

from typing import Any

from distillscope.errors import ConfigError


def protected_scheme(scheme: Any, *, delta: float | None = None, key: Any | None = None) -> Any:
    """``scheme`` with a larger ``delta`` and/or another ``key`` (KGW schemes only)."""
    from distillscope.watermark import KGWScheme, make_scheme

    if not isinstance(scheme, KGWScheme):
        raise ConfigError("stronger marking needs a KGW scheme (Gumbel has no bias to raise)",
                          hint="use watermark_scheme: kgw")
    new_delta = float(delta) if delta is not None else float(scheme.delta)
    if new_delta < float(scheme.delta) or new_delta > 10:
        raise ConfigError(f"protected delta {new_delta!r} must be between the scheme's delta ({scheme.delta}) and 10")
    name = "kgw-selfhash" if scheme.self_hash else "kgw"
    return make_scheme(name, key or scheme.key, gamma=scheme.gamma, delta=new_delta,
                       context_width=scheme.context_width)
