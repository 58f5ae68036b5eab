"""Request bodies of the OpenAI-compatible endpoints (pydantic models, documented in OpenAPI).

The models validate types and ranges; the gateway's own caps (``max_tokens``, prompt size,
``n``) are checked by the router against :class:`distillscope.gateway.app.GatewayConfig`.
Unknown fields are kept (``extra="allow"``): proxy mode forwards them to the upstream, the
local teacher ignores them. vLLM's ``return_tokens_as_token_ids`` and ``top_k`` extensions
are accepted.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

MAX_TOP_LOGPROBS = 20


def _integral(value: Any) -> Any:
    """JSON has one number type: ``6.0`` is the integer 6 (JSON Schema agrees), ``6.5`` stays a float."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer as JSON Schema means it: 6 and 6.0, never true, "6" or 6.5.
JsonInt = Annotated[int, Strict(), BeforeValidator(_integral)]


def json_int(ge: int | None = None, le: int | None = None) -> Any:
    """:data:`JsonInt` in ``[ge, le]`` (bounds given this way reach the JSON Schema as minimum/maximum)."""
    bounds = [b for b in (Ge(ge) if ge is not None else None, Le(le) if le is not None else None) if b]
    # The bounds come before the validator, or pydantic leaves them out of the JSON Schema.
    return Annotated[int, Strict(), *bounds, BeforeValidator(_integral)]

# strict: JSON types as declared ("n": "3", "top_k": true, "max_tokens": 1.5 are refused, like OpenAI does).
_CONFIG = ConfigDict(extra="allow", strict=True)


class _Body(BaseModel):
    model_config = _CONFIG


class TextPart(BaseModel):
    """One part of a multi-part message ``content`` (only text parts are served)."""

    model_config = _CONFIG
    type: Literal["text"] = "text"
    text: str


class ChatMessage(BaseModel):
    model_config = _CONFIG
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
    model_config = _CONFIG
    include_usage: bool = False


NonEmptyStr = Annotated[str, Field(min_length=1)]
Stop = Union[NonEmptyStr, Annotated[list[NonEmptyStr], Field(max_length=4)], None]
# Token ids (as strings, like OpenAI) to a bias in [-100, 100].
LogitBias = dict[Annotated[str, Field(pattern=r"^[0-9]+$")], Annotated[float, Field(ge=-100.0, le=100.0)]]


class _SamplingFields(_Body):
    model: str = Field(min_length=1, description="Model id from /v1/models.")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: json_int(ge=-1) | None = Field(default=None, description="vLLM extension; -1 or 0 = off.")
    n: json_int(ge=1) = Field(default=1)
    stop: Stop = Field(default=None, description="Up to 4 non-empty stop sequences.")
    seed: json_int(ge=-(2**63), le=2**63 - 1) | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    logit_bias: LogitBias | None = Field(default=None, description="Token id -> bias in [-100, 100] (proxy mode "
                                                                   "only; the local teacher refuses it).")
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    return_tokens_as_token_ids: bool = Field(
        default=False, description="vLLM extension: render log-prob tokens as 'token_id:<id>'.")

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
    max_tokens: json_int(ge=1) | None = None
    max_completion_tokens: json_int(ge=1) | None = None
    logprobs: bool = False
    top_logprobs: json_int(ge=0, le=MAX_TOP_LOGPROBS) | None = None

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

    prompt: Union[str, Annotated[list[str], Field(min_length=1)]] = Field(
        description="A prompt or a non-empty list of prompts.")
    max_tokens: json_int(ge=1) | None = 16
    logprobs: json_int(ge=0, le=MAX_TOP_LOGPROBS) | None = None
    echo: bool = False
    suffix: str | None = None
    best_of: json_int(ge=1) | None = None

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
