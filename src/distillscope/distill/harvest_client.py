"""One request to an OpenAI-compatible endpoint, classified for the harvest retry policy.

Written on ``httpx`` directly rather than the ``openai`` SDK: the harvest needs the raw status,
the ``retry-after`` header and the raw JSON (vLLM's ``return_tokens_as_token_ids`` extension,
``token_id:N`` strings) on every attempt, and must own retries itself; the SDK would hide or
duplicate each of these. Errors come back as :class:`AttemptError` with a stable ``type``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from distillscope.distill.rotation import ApiKey
from distillscope.errors import DistillError

logger = logging.getLogger(__name__)

TOKEN_ID_PREFIX = "token_id:"
TOKEN_IDS_FIELD = "return_tokens_as_token_ids"


class AttemptError(Exception):
    """One failed attempt. ``type``: rate_limited, server_error, timeout, connection, key_rejected,
    bad_request, not_found, bad_response. ``retryable`` decides whether the policy tries again."""

    def __init__(self, type: str, message: str, status: int | None = None, *, retryable: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{type}: {message}")
        self.type, self.message, self.status = type, message, status
        self.retryable, self.retry_after = retryable, retry_after


@dataclass(frozen=True)
class Completion:
    """The parts of a chat completion a harvest record keeps."""

    completion: str
    finish_reason: str | None
    tokens: tuple[str, ...] | None
    token_ids: tuple[int, ...] | None
    token_logprobs: tuple[float, ...] | None
    top_logprobs: tuple[tuple[tuple[str, float], ...], ...] | None
    top_logprob_ids: tuple[tuple[tuple[int, float], ...], ...] | None
    usage: dict[str, int]


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Seconds from ``retry-after-ms`` / ``retry-after`` (delta seconds or an HTTP date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def error_message(response: httpx.Response) -> str:
    """The endpoint's own error message (OpenAI ``{"error": {"message"}}``), else the body start."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error", body.get("detail"))
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return json.dumps(body)[:200]


def classify_status(response: httpx.Response) -> AttemptError:
    status, msg = response.status_code, error_message(response)
    if status == 429:
        return AttemptError("rate_limited", msg, status, retryable=True,
                            retry_after=retry_after_seconds(response.headers))
    if status in (401, 403):
        return AttemptError("key_rejected", msg, status, retryable=True)
    if status == 404:
        return AttemptError("not_found", msg, status)
    if status >= 500 or status == 408:
        return AttemptError("server_error", msg, status, retryable=True,
                            retry_after=retry_after_seconds(response.headers))
    return AttemptError("bad_request", msg, status)


def _top_pairs(entries: Any) -> list[tuple[str, float]]:
    if isinstance(entries, dict):  # legacy completions shape {token: logprob}
        return [(str(t), float(lp)) for t, lp in entries.items()]
    return [(str(e["token"]), float(e["logprob"])) for e in entries or ()]


def _as_id(token: str) -> int | None:
    if token.startswith(TOKEN_ID_PREFIX):
        try:
            return int(token[len(TOKEN_ID_PREFIX):])
        except ValueError:
            return None
    return None


def parse_chat(data: Any, want_logprobs: bool) -> Completion:
    """A :class:`Completion` from a chat-completion body; :class:`AttemptError` if malformed."""
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"]
        if not isinstance(text, str):
            raise TypeError("message.content is not a string")
        usage = data.get("usage") or {}
        usage = {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
                 "completion_tokens": int(usage.get("completion_tokens") or 0)}
        content = (choice.get("logprobs") or {}).get("content") if want_logprobs else None
        tokens = token_lps = tops = None
        if content:
            tokens = tuple(str(c["token"]) for c in content)
            token_lps = tuple(float(c["logprob"]) for c in content)
            tops = tuple(tuple(_top_pairs(c.get("top_logprobs"))) for c in content)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise AttemptError("bad_response", f"malformed chat completion ({exc!r})", 200) from exc
    ids = top_ids = None
    if tokens and all(_as_id(t) is not None for t in tokens):
        ids = tuple(_as_id(t) for t in tokens)
        if tops is not None and all(_as_id(t) is not None for pos in tops for t, _ in pos):
            top_ids = tuple(tuple((_as_id(t), lp) for t, lp in pos) for pos in tops)
    return Completion(text, choice.get("finish_reason"), tokens, ids, token_lps, tops, top_ids, usage)


async def post_chat(client: httpx.AsyncClient, key: ApiKey, body: dict[str, Any], timeout: float) -> Completion:
    """One POST ``/chat/completions`` with an overall deadline of ``timeout`` seconds."""
    try:
        response = await asyncio.wait_for(
            client.post("chat/completions", json=body, headers={"Authorization": f"Bearer {key.secret}"}),
            timeout=timeout)
    except (asyncio.TimeoutError, httpx.TimeoutException) as exc:
        raise AttemptError("timeout", f"no complete response within {timeout:g} s", retryable=True) from exc
    except httpx.TransportError as exc:
        raise AttemptError("connection", f"{type(exc).__name__}: {exc}", retryable=True) from exc
    if response.status_code != 200:
        raise classify_status(response)
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AttemptError("bad_response", "response body is not JSON", 200, retryable=True) from exc
    return parse_chat(data, want_logprobs=bool(body.get("logprobs")))


@dataclass(frozen=True)
class Preflight:
    """What the endpoint said before work started."""

    model_info: dict[str, Any]
    token_ids: bool


async def _get_models(client: httpx.AsyncClient, key: ApiKey, base_url: str, retries: int) -> list[dict[str, Any]]:
    for attempt in range(retries + 1):
        try:
            response = await client.get("models", headers={"Authorization": f"Bearer {key.secret}"})
        except httpx.ConnectError as exc:
            raise DistillError(f"cannot reach the endpoint {base_url} ({type(exc).__name__}: {exc})",
                               hint="check --endpoint and that the server is running") from exc
        except httpx.TransportError as exc:
            if attempt == retries:
                raise DistillError(f"GET {base_url}/models failed ({type(exc).__name__}: {exc})",
                                   hint="check --endpoint and that the server is running") from exc
            await asyncio.sleep(min(0.5 * 2 ** attempt, 30.0))
            continue
        if response.status_code != 429 and response.status_code < 500 or attempt == retries:
            break
        await asyncio.sleep(min(retry_after_seconds(response.headers) or 0.5 * 2 ** attempt, 30.0))
    if response.status_code in (401, 403):
        raise DistillError(f"the endpoint {base_url} rejected API key {key.alias} (HTTP {response.status_code}: "
                           f"{error_message(response)})", hint="check the key", code="invalid_api_key")
    if response.status_code == 404:
        raise DistillError(f"{base_url}/models was not found (HTTP 404)",
                           hint="--endpoint must be the OpenAI-compatible API root, e.g. http://host:8000/v1")
    if response.status_code != 200:
        raise DistillError(f"GET {base_url}/models failed with HTTP {response.status_code}: "
                           f"{error_message(response)}", hint="check the endpoint, then retry")
    try:
        models = response.json()["data"]
        return [m for m in models if isinstance(m, dict) and "id" in m]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise DistillError(f"{base_url}/models did not return an OpenAI model list",
                           hint="--endpoint must be an OpenAI-compatible API root") from exc


async def _probe(client: httpx.AsyncClient, key: ApiKey, body: dict[str, Any], timeout: float,
                 retries: int) -> Completion | AttemptError:
    for attempt in range(retries + 1):
        try:
            return await post_chat(client, key, body, timeout)
        except AttemptError as exc:
            if not exc.retryable or exc.type == "key_rejected" or attempt == retries:
                return exc
            await asyncio.sleep(min(exc.retry_after or 0.5 * 2 ** attempt, 30.0))
    raise AssertionError("unreachable")


async def preflight(client: httpx.AsyncClient, key: ApiKey, base_url: str, model: str, logprobs: int,
                    token_ids: bool | None, timeout: float, retries: int) -> Preflight:
    """Check the endpoint before any work: reachable, the key works, the model exists, and
    (when log-probs are asked for) whether token ids can be requested. Raises DistillError."""
    models = await _get_models(client, key, base_url, retries=3)
    info = next((m for m in models if m["id"] == model), None)
    if info is None:
        names = ", ".join(str(m["id"]) for m in models[:10]) or "none"
        raise DistillError(f"the endpoint {base_url} does not serve model {model!r} (it serves: {names})",
                           hint="pass one of those to --model")
    if logprobs <= 0 or token_ids is False:
        return Preflight(info, False)
    body = {"model": model, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1,
            "logprobs": True, "top_logprobs": logprobs, TOKEN_IDS_FIELD: True}
    result = await _probe(client, key, body, timeout, retries)
    if isinstance(result, AttemptError) and result.type == "bad_request" and token_ids is None:
        logger.info("endpoint rejected %s (%s); harvesting token strings instead", TOKEN_IDS_FIELD, result.message)
        return Preflight(info, False)
    if isinstance(result, AttemptError):
        raise DistillError(f"a probe request with top_logprobs={logprobs} failed ({result.type}, HTTP "
                           f"{result.status}: {result.message})",
                           hint="lower --logprobs, pass --no-token-ids, or check the endpoint")
    got_ids = result.token_ids is not None
    if token_ids and not got_ids:
        raise DistillError(f"the endpoint ignores {TOKEN_IDS_FIELD}: tokens came back as text",
                           hint="drop --token-ids (the default 'auto' falls back to token strings)")
    return Preflight(info, got_ids)
