"""The gateway's serving limits (:class:`GatewayConfig`) and the state one app shares (:class:`GatewayState`)."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

from fastapi import Request

from distillscope.errors import ConfigError
from distillscope.gateway.batching import BatchingConfig
from distillscope.gateway.metrics import GatewayMetrics
from distillscope.settings import Settings

CONFIG_ENV = "DISTILLSCOPE_GATEWAY_CONFIG"


@dataclass(frozen=True)
class GatewayConfig:
    """Caps and batching of the serving half of the gateway.

    max_tokens_cap: largest ``max_tokens`` a request may ask for (more is a 400).
    default_max_tokens: ``max_tokens`` of chat requests that do not set it.
    max_prompt_chars: largest prompt (all messages / all prompts, in characters); more is a 400.
    max_choices: largest ``n`` × number of prompts in one request (more is a 400).
    max_body_bytes: largest request body (more is a 413, before it is parsed).
    admin_max_failures: wrong admin tokens one address may send per minute before the admin API
        blocks it (403 ``admin_auth_blocked``) for the rest of that minute; 0 = never block.
    batching: how the local teacher batches concurrent requests.
    """

    max_tokens_cap: int = 1024
    default_max_tokens: int = 256
    max_prompt_chars: int = 32_000
    max_choices: int = 16
    max_body_bytes: int = 1_000_000
    admin_max_failures: int = 10
    batching: BatchingConfig = field(default_factory=BatchingConfig)

    def __post_init__(self) -> None:
        for name in ("max_tokens_cap", "default_max_tokens", "max_prompt_chars", "max_choices",
                     "max_body_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"gateway setting {name}={value!r} must be a positive integer")
        if not isinstance(self.admin_max_failures, int) or self.admin_max_failures < 0:
            raise ConfigError(f"gateway setting admin_max_failures={self.admin_max_failures!r} must be 0 or more")
        if self.default_max_tokens > self.max_tokens_cap:
            raise ConfigError(f"default_max_tokens ({self.default_max_tokens}) exceeds max_tokens_cap "
                              f"({self.max_tokens_cap})", hint="lower default_max_tokens or raise the cap")

    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "batching"}
        data["batching"] = {"max_batch": self.batching.max_batch, "window_ms": self.batching.window_ms}
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> "GatewayConfig":
        try:
            data = json.loads(text)
            batching = BatchingConfig(**data.pop("batching", {}))
            return cls(**data, batching=batching)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"invalid gateway config {text!r}: {exc}") from exc

    @classmethod
    def from_env(cls) -> "GatewayConfig":
        text = os.environ.get(CONFIG_ENV)
        return cls.from_json(text) if text else cls()


@dataclass
class GatewayState:
    """Everything the routers share; built by ``create_app``, completed by its lifespan."""

    settings: Settings
    config: GatewayConfig
    engine: Any
    store: Any            # AccountStore
    request_log: Any      # RequestLog
    limiter: Any          # RateLimiter
    backend: Any          # Backend | None until the lifespan has loaded it
    metrics: GatewayMetrics
    guards: Sequence[Any] = ()
    guard_lock: threading.Lock = field(default_factory=threading.Lock)
    log_writer: Any = None  # GroupCommitWriter over request_log (set by create_app)
    ready: bool = False
    pending: set[Any] = field(default_factory=set)   # log writes of disconnected streams


def get_state(request: Request) -> GatewayState:
    return request.app.state.gateway
