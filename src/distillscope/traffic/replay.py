"""Drive a live gateway with a (simulated) request log over its OpenAI-compatible HTTP API."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pyarrow as pa

from distillscope.errors import TrafficError
from distillscope.progress import Progress, ensure_progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplaySummary:
    """How many requests were sent, accepted and refused (by status)."""

    sent: int
    accepted: int
    refused: dict[int, int]


def _messages(prompt: str) -> list[dict[str, Any]]:
    if prompt.startswith("[") and prompt.endswith("]"):
        try:
            msgs = json.loads(prompt)
            if isinstance(msgs, list) and all(isinstance(m, dict) and "content" in m for m in msgs):
                return msgs
        except ValueError:
            pass
    return [{"role": "user", "content": prompt}]


def replay(log: pa.Table, client: Any, api_keys: Mapping[str, str], *, model: str | None = None,
           max_tokens_cap: int = 16, on_request: Callable[[dict], None] | None = None,
           progress: Progress | None = None) -> ReplaySummary:
    """POST every row of ``log`` (in time order) to ``/v1/chat/completions`` with its account's key.

    client: an ``httpx.Client`` whose base URL is the gateway root (a FastAPI ``TestClient`` works).
    api_keys: account_id -> plaintext API key (rows of other accounts are skipped).
    max_tokens_cap: upper bound on max_tokens actually requested, to keep a replay fast.
    on_request: called with each row just before it is sent (e.g. to feed a simulated clock).
    """
    missing = {"account_id", "prompt", "ts"} - set(log.column_names)
    if missing:
        raise TrafficError(f"cannot replay a log without {', '.join(sorted(missing))}")
    sent = accepted = 0
    refused: dict[int, int] = {}
    rows = log.sort_by("ts").to_pylist()
    with ensure_progress(progress).task("replaying requests", total=len(rows)) as task:
        for row in rows:
            key = api_keys.get(row["account_id"])
            task.advance()
            if key is None or not row.get("prompt"):
                continue
            body: dict[str, Any] = {"model": model or row.get("model") or "default",
                                    "messages": _messages(row["prompt"]),
                                    "max_tokens": min(int(row.get("max_tokens") or max_tokens_cap), max_tokens_cap)}
            if row.get("temperature") is not None:
                body["temperature"] = row["temperature"]
            if row.get("logprobs"):
                body.update(logprobs=True, top_logprobs=int(row["logprobs"]))
            headers = {"Authorization": f"Bearer {key}", "User-Agent": row.get("user_agent") or "distillscope-sim",
                       "X-Forwarded-For": row.get("client_ip") or "127.0.0.1"}
            if on_request:
                on_request(row)
            resp = client.post("/v1/chat/completions", json=body, headers=headers)
            sent += 1
            if resp.status_code < 400:
                accepted += 1
            else:
                refused[resp.status_code] = refused.get(resp.status_code, 0) + 1
    return ReplaySummary(sent, accepted, refused)


class ReplayedGuard:
    """Wraps a guard for replays: restores each request's simulated time, IP and sizes.

    A replay sends a week of simulated traffic in seconds from one loopback address to a fast
    (stub) backend with small ``max_tokens``; the gateway logs wall-clock time, 127.0.0.1 and the
    stub's short replies. Call :meth:`expect` with each row just before sending it
    (``replay(..., on_request=guard.expect)``; requests must be sent one at a time) and the wrapped
    guard sees the row's own ``ts``, ``client_ip``, ``max_tokens``, token counts and -- for rows the
    simulated gateway rejected (rate limits) -- their ``status``.
    """

    def __init__(self, guard: Any) -> None:
        self.guard = guard
        self._pending: list[dict] = []

    def expect(self, row: dict) -> None:
        self._pending.append(row)

    def observe(self, record: Any) -> Any:
        import dataclasses
        from datetime import datetime, timezone

        if self._pending:
            row = self._pending.pop(0)
            ts = row["ts"]
            ts = ts if isinstance(ts, datetime) else datetime.fromtimestamp(float(ts), timezone.utc)
            changes: dict[str, Any] = {"ts": ts, "client_ip": row.get("client_ip") or record.client_ip,
                                       "max_tokens": row.get("max_tokens")}
            if (row.get("status") or 200) >= 400 and record.status < 400:
                changes.update(status=int(row["status"]), error=row.get("error"), completion_tokens=0)
            elif record.status < 400:
                changes.update(prompt_tokens=row.get("prompt_tokens") or record.prompt_tokens,
                               completion_tokens=row.get("completion_tokens") or record.completion_tokens)
            record = dataclasses.replace(record, **changes)
        return self.guard.observe(record)
