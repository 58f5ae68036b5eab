"""Request bodies of the OpenAI-compatible endpoints (pydantic models, documented in OpenAPI).

The models validate types and ranges; the gateway's own caps (``max_tokens``, prompt size,
``n``) are checked by the router against :class:`distillscope.gateway.app.GatewayConfig`.
Unknown fields are kept (``extra="allow"``): proxy mode forwards them to the upstream, the
local teacher ignores them. vLLM's ``return_tokens_as_token_ids`` and ``top_k`` extensions
are accepted.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TOP_LOGPROBS = 20


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPart(BaseModel):
    """One part of a multi-part message ``content`` (only text parts are served)."""

    model_config = ConfigDict(extra="allow")
    type: Literal["text"] = "text"
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[TextPart], None] = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


Stop = Union[str, list[str], None]


class _SamplingFields(_Body):
    model: str = Field(min_length=1, description="Model id from /v1/models.")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=-1, description="vLLM extension; -1 or 0 = off.")
    n: int = Field(default=1, ge=1)
    stop: Stop = Field(default=None, description="Up to 4 stop sequences.")
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    logit_bias: dict[str, float] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    return_tokens_as_token_ids: bool = Field(
        default=False, description="vLLM extension: render log-prob tokens as 'token_id:<id>'.")

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, v: Stop) -> Stop:
        items = [v] if isinstance(v, str) else (v or [])
        if len(items) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        if any(s == "" for s in items):
            raise ValueError("stop sequences must not be empty")
        return v

    @field_validator("logit_bias")
    @classmethod
    def _check_bias(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        for key, bias in (v or {}).items():
            if not key.strip().isdigit():
                raise ValueError(f"logit_bias keys must be token ids, got {key!r}")
            if not -100.0 <= bias <= 100.0:
                raise ValueError("logit_bias values must lie in [-100, 100]")
        return v

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def sent_params(self) -> dict[str, Any]:
        """The sampling parameters exactly as the client sent them (for the request log)."""
        data = self.model_dump(exclude_unset=True, mode="json")
        for big in ("messages", "prompt"):
            data.pop(big, None)
        return data


class ChatCompletionRequest(_SamplingFields):
    """Body of ``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def top_k_logprobs(self) -> int:
        return (self.top_logprobs or 0) if self.logprobs else 0

    def prompt_for_log(self) -> str:
        return json.dumps([m.model_dump(mode="json", exclude_none=True) for m in self.messages],
                          ensure_ascii=False)

    def prompt_chars(self) -> int:
        return sum(len(m.text()) for m in self.messages)


class CompletionRequest(_SamplingFields):
    """Body of ``POST /v1/completions`` (text prompts; token-id prompts are not accepted)."""

    prompt: Union[str, list[str]] = Field(description="A prompt or a list of prompts.")
    max_tokens: int | None = Field(default=16, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1)

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not v:
            raise ValueError("prompt list must not be empty")
        return v

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def top_k_logprobs(self) -> int:
        return self.logprobs or 0

    def prompt_for_log(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else json.dumps(self.prompt, ensure_ascii=False)

    def prompt_chars(self) -> int:
        return sum(len(p) for p in self.prompts())


OpenAIRequest = Union[ChatCompletionRequest, CompletionRequest]
