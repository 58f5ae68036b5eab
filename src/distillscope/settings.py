"""Deployment settings: one pydantic-settings object, built once at the entry point.

Values come, in increasing priority, from defaults, a YAML file (``--config`` or
``DISTILLSCOPE_CONFIG``), and ``DISTILLSCOPE_*`` environment variables. Unknown keys in the
file are an error. Secrets are :class:`pydantic.SecretStr` so they never print.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from platformdirs import user_cache_dir
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from distillscope.errors import ConfigError


def _default_home() -> Path:
    return Path(user_cache_dir("distillscope"))


class Settings(BaseSettings):
    """All deployment values of distillscope (environment prefix ``DISTILLSCOPE_``)."""

    model_config = SettingsConfigDict(env_prefix="DISTILLSCOPE_", extra="forbid")

    home: Path = Field(default_factory=_default_home,
                       description="Cache and state directory (converted models, default database, keys).")
    model_cache: Path | None = Field(default=None,
                                     description="Where converted model weights are cached; default HOME/models.")
    teacher: str = Field(default="smollm2",
                         description="Teacher model: 'smollm2', 'gemma3-270m', an HF directory or a .gguf path.")
    dtype: str = Field(default="bfloat16", description="Model dtype: bfloat16 or float32.")
    device: str = Field(default="cpu", description="Torch device: cpu, cuda, cuda:1 ...")
    watermark_key: SecretStr | None = Field(default=None, description="Watermark secret key (hex).")
    watermark_key_file: Path | None = Field(default=None,
                                            description="File holding the watermark key; default HOME/watermark.key.")
    watermark_scheme: str = Field(default="kgw",
                                  description="Watermark scheme applied by the gateway: kgw, kgw-selfhash, gumbel.")
    watermark_params: dict[str, float | int | bool] = Field(
        default_factory=dict, description="Scheme parameters, e.g. {gamma: 0.25, delta: 2.0, context_width: 1}.")
    database_url: str | None = Field(default=None,
                                     description="Request-log database URL; default sqlite:///HOME/gateway.sqlite.")
    redis_url: str | None = Field(default=None, description="Redis URL for limits shared across workers.")
    admin_token: SecretStr | None = Field(default=None, description="Bearer token of the admin HTTP API.")
    host: str = Field(default="127.0.0.1", description="Gateway bind address.")
    port: int = Field(default=8000, description="Gateway port.")
    upstream_url: str | None = Field(default=None,
                                     description="Proxy mode: OpenAI-compatible upstream base URL.")
    upstream_api_key: SecretStr | None = Field(default=None, description="API key for the upstream.")

    @property
    def resolved_model_cache(self) -> Path:
        return self.model_cache or self.home / "models"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'gateway.sqlite'}"

    @property
    def resolved_watermark_key_file(self) -> Path:
        return self.watermark_key_file or self.home / "watermark.key"


_JSON_FIELDS = {"watermark_params"}


def _parse_env(name: str, raw: str) -> Any:
    """Environment values are strings; mapping-valued settings are given as JSON objects."""
    if name not in _JSON_FIELDS:
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"DISTILLSCOPE_{name.upper()} is not a JSON object: {exc.msg}",
                          hint='e.g. DISTILLSCOPE_WATERMARK_PARAMS=\'{"gamma": 0.25, "delta": 2.0}\'') from exc


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once: YAML file (if any) < environment < explicit overrides."""
    file_values: dict[str, Any] = {}
    path = config_file or os.environ.get("DISTILLSCOPE_CONFIG")
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist", hint="pass an existing YAML file to --config")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping of setting names to values")
        file_values = {k.replace("-", "_"): v for k, v in loaded.items()}
        unknown = sorted(set(file_values) - set(Settings.model_fields))
        if unknown:
            raise ConfigError(f"unknown setting(s) in {p}: {', '.join(unknown)}",
                              hint=f"known settings: {', '.join(sorted(Settings.model_fields))}")
    env_values = {}
    for name in Settings.model_fields:
        env = os.environ.get(f"DISTILLSCOPE_{name.upper()}")
        if env is not None:
            env_values[name] = _parse_env(name, env)
    values = {**file_values, **env_values, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        # Environment already merged by hand above so that file < env < overrides holds.
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"invalid setting {loc}: {first['msg']}") from exc
