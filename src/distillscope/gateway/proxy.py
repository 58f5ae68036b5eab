"""Proxy mode: forward requests to an upstream OpenAI-compatible server (vLLM, another gateway...).

The gateway still authenticates, limits and logs every request, but it cannot watermark text
it did not generate: :class:`ProxyBackend` says so in a loud start-up warning, in
``/v1/models`` metadata and in ``/healthz``. Bodies are forwarded as the client sent them
(with ``max_tokens`` filled in from the gateway's default so the cap holds); the upstream's own
4xx errors pass through unchanged, connection failures and upstream 5xx become 502.
Streams pass through chunk by chunk; usage is requested from the upstream for the log and
dropped again if the client did not ask for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator

import httpx

from distillscope.errors import GatewayError
from distillscope.gateway.generation import BackendInfo, Call, Reply
from distillscope.settings import Settings

logger = logging.getLogger(__name__)

NOT_WATERMARKED = ("proxy mode: outputs come from the upstream {url} and are NOT watermarked; "
                   "distillation of these outputs cannot be proven with the watermark test")


def _path(call: Call) -> str:
    return "chat/completions" if call.endpoint == "chat" else "completions"


def _upstream_unavailable(exc: Exception | str) -> GatewayError:
    return GatewayError(f"the upstream server failed: {exc}", hint="retry later or check the upstream",
                        code="upstream_unavailable")


def _texts(body: dict[str, Any], chat: bool) -> list[str]:
    out = []
    for c in body.get("choices") or []:
        if chat:
            out.append(((c.get("message") or {}).get("content")) or "")
        else:
            out.append(c.get("text") or "")
    return out


def _joined(texts: list[str]) -> str:
    return texts[0] if len(texts) == 1 else json.dumps(texts, ensure_ascii=False)


class ProxyBackend:
    """Forward to ``base_url`` (the upstream's ``.../v1``) with the upstream's own API key."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 600.0,
                 transport: httpx.AsyncBaseTransport | None = None, refresh_s: float = 60.0,
                 retry_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout_s
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._refresher: asyncio.Task | None = None
        self.refresh_s, self.retry_s = refresh_s, retry_s
        self.upstream_ok = False
        self.info = BackendInfo(kind="proxy", model_ids=(), watermarked=False,
                                warning=NOT_WATERMARKED.format(url=self.base_url))

    @classmethod
    def from_settings(cls, settings: Settings) -> "ProxyBackend":
        key = settings.upstream_api_key.get_secret_value() if settings.upstream_api_key else None
        return cls(settings.upstream_url or "", api_key=key)

    async def start(self) -> None:
        logger.warning("!!! %s !!!", self.info.warning)
        self._client = httpx.AsyncClient(base_url=self.base_url + "/", headers=self._headers,
                                         timeout=self._timeout, transport=self._transport)
        if not await self.refresh_models():
            logger.warning("could not list the upstream's models; any model name is forwarded until it answers "
                           "(retrying every %.0fs)", self.retry_s)
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def refresh_models(self) -> bool:
        """Ask the upstream for its model list and adopt it; False (list kept) when it does not answer."""
        try:
            resp = await self.client.get("models", timeout=min(self._timeout, 5.0))
            resp.raise_for_status()
            ids = tuple(m["id"] for m in resp.json().get("data", []) if isinstance(m, dict) and "id" in m)
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            if self.upstream_ok:
                logger.warning("the upstream %s does not answer its model list (%s)", self.base_url, exc)
            self.upstream_ok = False
            return False
        if ids != self.info.model_ids:
            logger.info("upstream models: %s", ", ".join(ids) or "(none listed: any name is forwarded)")
        self.info = BackendInfo(kind="proxy", model_ids=ids, watermarked=False, warning=self.info.warning)
        self.upstream_ok = True
        return True

    async def check(self) -> bool:
        """Readiness: the upstream answers its model list now (the list is refreshed as a side effect)."""
        return await self.refresh_models()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s if self.upstream_ok else self.retry_s)
            await self.refresh_models()

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise GatewayError("the proxy backend is not started", code="backend_not_ready")
        return self._client

    @staticmethod
    def _body(call: Call) -> dict[str, Any]:
        body = call.request.model_dump(exclude_unset=True, mode="json")
        if call.request.requested_max_tokens() is None or "max_tokens" not in body:
            if "max_completion_tokens" not in body:
                body["max_tokens"] = call.max_tokens
        return body

    @staticmethod
    def _error_reply(resp: httpx.Response, body: Any) -> Reply:
        if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
            body = {"error": {"message": f"the upstream answered HTTP {resp.status_code}",
                              "type": "invalid_request_error", "param": None, "code": "upstream_error"}}
        return Reply(body=body, prompt_tokens=0, completion_tokens=0, completion_text="",
                     status=resp.status_code)

    async def complete(self, call: Call) -> Reply:
        try:
            resp = await self.client.post(_path(call), json=self._body(call))
        except httpx.HTTPError as exc:
            raise _upstream_unavailable(type(exc).__name__) from exc
        if resp.status_code >= 500:
            raise _upstream_unavailable(f"HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise _upstream_unavailable("the answer is not JSON") from exc
        if resp.status_code >= 400:
            return self._error_reply(resp, body)
        usage = body.get("usage") or {}
        return Reply(body=body, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                     completion_tokens=int(usage.get("completion_tokens") or 0),
                     completion_text=_joined(_texts(body, call.endpoint == "chat")))

    async def stream(self, call: Call) -> AsyncIterator[dict[str, Any] | Reply]:
        body = self._body(call)
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        body["stream"] = True
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        texts: dict[int, list[str]] = {}
        usage: dict[str, Any] = {}
        try:
            async with self.client.stream("POST", _path(call), json=body) as resp:
                if resp.status_code >= 500:
                    raise _upstream_unavailable(f"HTTP {resp.status_code}")
                if resp.status_code >= 400:
                    raw = await resp.aread()
                    try:
                        err = json.loads(raw)
                    except ValueError:
                        err = None
                    yield self._error_reply(resp, err)
                    return
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    chunk = json.loads(payload)
                    for c in chunk.get("choices") or []:
                        piece = (c.get("delta") or {}).get("content") if call.endpoint == "chat" else c.get("text")
                        texts.setdefault(int(c.get("index", 0)), []).append(piece or "")
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                        if not chunk.get("choices") and not wants_usage:
                            continue
                    yield chunk
        except httpx.HTTPError as exc:
            raise _upstream_unavailable(type(exc).__name__) from exc
        except ValueError as exc:
            raise _upstream_unavailable("a stream chunk is not JSON") from exc
        joined = _joined(["".join(texts[i]) for i in sorted(texts)] or [""])
        yield Reply(body=None, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0), completion_text=joined)
