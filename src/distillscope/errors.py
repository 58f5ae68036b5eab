"""The one exception tree of distillscope.

Every error raised on purpose by the library derives from :class:`DistillscopeError`,
and its message names the bad value and how to fix it. The CLI prints it as one line,
the gateway turns it into an OpenAI-style ``{"error": {...}}`` body.

::

    DistillscopeError
    ├── ConfigError          bad settings, config file or flag values
    ├── InputDataError       unreadable / malformed prompt, JSONL, CSV, Parquet or log files
    ├── ModelError           a model cannot be found, loaded or used
    ├── WatermarkError       missing / wrong key, unusable detector input
    ├── GatewayError         serving, accounts, keys, limits, request log
    │   ├── AuthError        invalid, revoked or missing API key / admin token
    │   └── RateLimitError   a per-key limit was exceeded
    ├── TrafficError         traffic logs, simulation, detectors
    ├── DistillError         harvesting, training, evaluation of students
    └── AuditError           suspect access, radioactivity / attribution tests, reports
"""

from __future__ import annotations


class DistillscopeError(Exception):
    """Base class of every error distillscope raises on purpose.

    ``hint`` (optional) says how to fix the problem; it is appended to the message.
    ``code`` (optional) is a stable machine-readable reason (e.g. ``invalid_api_key``), used as
    the ``code`` of the gateway's OpenAI-style error body and in the request log.
    """

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        self.message = message
        self.hint = hint
        self.code = code
        super().__init__(f"{message} ({hint})" if hint else message)


class ConfigError(DistillscopeError):
    """Invalid settings, configuration file or command-line values."""


class InputDataError(DistillscopeError):
    """An input file (prompts, JSONL, CSV, Parquet, request log) is missing or malformed."""


class ModelError(DistillscopeError):
    """A model cannot be found, loaded or used."""


class WatermarkError(DistillscopeError):
    """Watermark keys or detector inputs are unusable."""


class GatewayError(DistillscopeError):
    """Serving, accounts, API keys, limits or the request log failed."""


class AuthError(GatewayError):
    """An API key or admin token is missing, invalid, suspended or revoked."""


class RateLimitError(GatewayError):
    """A per-key limit (requests/min, tokens/min, concurrency) was exceeded."""

    def __init__(self, message: str, *, retry_after: float = 1.0, headers: dict[str, str] | None = None,
                 hint: str | None = None, code: str | None = "rate_limit_exceeded") -> None:
        super().__init__(message, hint=hint, code=code)
        self.retry_after = retry_after
        self.headers = dict(headers or {})


class TrafficError(DistillscopeError):
    """Traffic logs, simulation or detectors failed."""


class DistillError(DistillscopeError):
    """Harvesting, training or evaluating a student failed."""


class AuditError(DistillscopeError):
    """A suspect cannot be accessed, or an audit test cannot be run or reported."""
