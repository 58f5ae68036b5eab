"""``distillscope serve``: the OpenAI-compatible gateway under uvicorn."""

from __future__ import annotations

import os
from typing import Any, Optional

import typer

from distillscope.cli.common import console, err_console, state
from distillscope.errors import ConfigError

_FACTORY = "distillscope.gateway.app:app_from_env"


def _describe(settings: Any) -> str:
    if settings.upstream_url:
        return f"proxy to {settings.upstream_url}"
    return f"teacher {settings.teacher} (watermarked, scheme {settings.watermark_scheme})"


def _export_env(settings_overrides: dict[str, Any], config_json: str, config_file: Any) -> None:
    """Hand the resolved flags to uvicorn's worker processes, which build their own app."""
    from distillscope.gateway.state import CONFIG_ENV

    for name, value in settings_overrides.items():
        if value is not None:
            os.environ[f"DISTILLSCOPE_{name.upper()}"] = str(value)
    os.environ[CONFIG_ENV] = config_json
    if config_file is not None:
        os.environ["DISTILLSCOPE_CONFIG"] = str(config_file)


def _metrics_dir(settings: Any) -> None:
    """An empty directory for the workers' Prometheus values (``PROMETHEUS_MULTIPROC_DIR``), so that
    ``/metrics`` sums every worker; an operator's own directory is used (and emptied) if set."""
    import shutil
    from pathlib import Path

    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or Path(settings.home) / "metrics" / str(os.getpid()))
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        ctx: typer.Context,
        host: Optional[str] = typer.Option(None, "--host", help="Bind address (default: the host setting, 127.0.0.1)."),
        port: Optional[int] = typer.Option(None, "--port", help="Port (default: the port setting, 8000)."),
        workers: int = typer.Option(1, "--workers", help="Worker processes; limits are shared through the "
                                                        "database or Redis."),
        teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher to serve: smollm2, gemma3-270m, "
                                                                       "tiny, an HF directory or a .gguf path."),
        upstream: Optional[str] = typer.Option(None, "--upstream", help="Proxy mode: OpenAI-compatible upstream "
                                                                         "base URL (outputs are NOT watermarked)."),
        database_url: Optional[str] = typer.Option(None, "--database-url",
                                                   help="Request-log database (sqlite:///... or postgresql://...)."),
        redis_url: Optional[str] = typer.Option(None, "--redis-url", help="Redis for limits shared across workers."),
        max_tokens_cap: int = typer.Option(1024, "--max-tokens-cap", help="Largest max_tokens a request may ask."),
        default_max_tokens: Optional[int] = typer.Option(None, "--default-max-tokens",
                                                         help="max_tokens of chat requests that do not set it "
                                                              "(default: 256, or the cap if lower)."),
        max_prompt_chars: int = typer.Option(32_000, "--max-prompt-chars", help="Largest prompt, in characters."),
        max_batch: int = typer.Option(16, "--max-batch", help="Most requests batched into one generate call "
                                                              "(1 = one at a time)."),
        batch_window_ms: float = typer.Option(10.0, "--batch-window-ms",
                                              help="How long a request waits for others to batch with."),
        log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
    ) -> None:
        """Serve the OpenAI-compatible gateway: /v1/chat/completions, /v1/completions, /v1/models,
        /healthz, /metrics and the admin API, with accounts, limits, request log and watermark."""
        import uvicorn

        from distillscope.gateway import GatewayConfig, create_app
        from distillscope.gateway.batching import BatchingConfig

        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        overrides = dict(host=host, port=port, teacher=teacher, upstream_url=upstream, database_url=database_url,
                         redis_url=redis_url)
        root = state(ctx)
        settings = root.settings(**overrides)
        try:
            default = default_max_tokens if default_max_tokens is not None else min(256, max_tokens_cap)
            config = GatewayConfig(max_tokens_cap=max_tokens_cap, default_max_tokens=default,
                                   max_prompt_chars=max_prompt_chars,
                                   batching=BatchingConfig(max_batch=max_batch, window_ms=batch_window_ms))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if not settings.upstream_url:  # fail here in one line, not in uvicorn's lifespan with a traceback
            from distillscope.watermark import scheme_from_settings

            scheme_from_settings(settings)
        console.print(f"[bold]distillscope gateway[/] on http://{settings.host}:{settings.port} — "
                      f"{_describe(settings)}; {workers} worker(s)")
        if settings.upstream_url:
            err_console.print("[bold red]WARNING: proxy mode — outputs come from the upstream and are NOT "
                              "watermarked[/]")
        if workers == 1:
            uvicorn.run(create_app(settings, config=config), host=settings.host, port=settings.port,
                        log_level=log_level)
            return
        _export_env(overrides, config.to_json(), root.config_file)
        _metrics_dir(settings)
        uvicorn.run(_FACTORY, factory=True, host=settings.host, port=settings.port, workers=workers,
                    log_level=log_level)
