"""Monthly token budgets per account and the spend report.

Tokens are counted per account and UTC month in ``account_usage`` in the same transaction as
each request-log row (:meth:`~distillscope.gateway.requestlog.RequestLog.write_many`). A request of
an account whose month's tokens reached its ``monthly_token_budget`` is refused (429
``insufficient_quota``, as OpenAI does); requests already in flight may overshoot the budget by
their own tokens. :func:`spend_report` is what ``distillscope accounts spend`` and
``GET /admin/v1/spend`` show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

PERIOD_FORMAT = "%Y-%m"


@dataclass(frozen=True)
class SpendRow:
    """One account's use of one month (``budget_left`` None: no budget)."""

    account_id: str
    account_name: str | None
    period: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    monthly_token_budget: int | None
    budget_left: int | None


def current_period(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime(PERIOD_FORMAT)


def spend_report(store: Any, request_log: Any, period: str | None = None) -> list[SpendRow]:
    """Every account's requests, tokens and budget left in ``period`` (``YYYY-MM``, default: this month),
    heaviest first; accounts without traffic that month are listed with zeros."""
    period = period or current_period()
    try:
        datetime.strptime(period, PERIOD_FORMAT)
    except ValueError:
        from distillscope.errors import ConfigError

        raise ConfigError(f"period {period!r} is not a month", hint="use YYYY-MM, e.g. 2026-12",
                          code="invalid_period") from None
    used = {r["account_id"]: r for r in request_log.monthly_usage(period)}
    rows = []
    for account in store.list_accounts():
        u = used.get(account.account_id, {})
        pt, ct = int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0))
        budget = account.monthly_token_budget
        rows.append(SpendRow(account_id=account.account_id, account_name=account.name, period=period,
                             requests=int(u.get("requests", 0)), prompt_tokens=pt, completion_tokens=ct,
                             total_tokens=pt + ct, monthly_token_budget=budget,
                             budget_left=None if budget is None else max(0, budget - pt - ct)))
    return sorted(rows, key=lambda r: (-r.total_tokens, r.account_name or ""))
