"""``distillscope harvest`` and ``distillscope prompts``: harvest a teacher, generate prompts."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from distillscope.cli.common import RichProgress, err_console, print_table
from distillscope.errors import ConfigError

KEYS_ENV = "DISTILLSCOPE_HARVEST_API_KEYS"


def _api_keys(keys: list[str] | None, keys_file: Path | None) -> list[str]:
    """Keys from --api-key, --api-keys-file (one per line, # comments) and the environment."""
    out = list(keys or [])
    if keys_file is not None:
        if not keys_file.is_file():
            raise ConfigError(f"--api-keys-file {keys_file} does not exist", hint="one key per line")
        out += [line.strip() for line in keys_file.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    if not out and os.environ.get(KEYS_ENV):
        out = [k.strip() for k in os.environ[KEYS_ENV].split(",") if k.strip()]
    if not out:
        raise ConfigError("no API key given", hint=f"pass --api-key (repeatable), --api-keys-file, or set {KEYS_ENV}")
    return out


def _categories(value: str | None) -> list[str] | None:
    return [c.strip() for c in value.split(",") if c.strip()] if value else None


def _token_ids(value: str) -> bool | None:
    choices = {"auto": None, "on": True, "off": False}
    if value not in choices:
        raise ConfigError(f"--token-ids {value!r} is not one of auto, on, off")
    return choices[value]


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so buffered records are written before the process exits."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_summary(s) -> None:  # noqa: ANN001 - HarvestSummary
    rows = [("prompts", s.total), ("already in store (skipped)", s.skipped), ("attempted now", s.attempted),
            ("ok", s.ok), ("failed", s.failed)]
    rows += [(f"  failed: {reason}", n) for reason, n in sorted(s.failed_by_reason.items())]
    rows += [("not attempted", s.not_attempted), ("HTTP requests", s.requests), ("prompt tokens", s.prompt_tokens),
             ("completion tokens", s.completion_tokens), ("cost", f"{s.cost:.4f}"),
             ("token ids", "yes" if s.token_ids else "no"), ("seconds", f"{s.seconds:.1f}"),
             ("requests/s", f"{s.requests / s.seconds:.1f}" if s.seconds else "-")]
    if s.retired_keys:
        rows.append(("rejected keys", ", ".join(s.retired_keys)))
    print_table(f"harvest → {s.store_path}", ("", "value"), rows)


def register(app: typer.Typer) -> None:
    @app.command("harvest")
    def harvest_cmd(
        endpoint: str = typer.Option(..., "--endpoint",
                                     help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1."),
        model: str = typer.Option(..., "--model", help="Model id as listed by GET /models."),
        out: Path = typer.Option(..., "--out", help="Store directory (created; an existing store is resumed)."),
        api_key: Optional[List[str]] = typer.Option(None, "--api-key", help="API key (repeatable for rotation)."),
        api_keys_file: Optional[Path] = typer.Option(None, "--api-keys-file", help="File with one API key per line."),
        prompts: Optional[str] = typer.Option(None, "--prompts", help="Prompt file (JSONL/CSV/Parquet/text) or a "
                                                                      "saved Hugging Face dataset directory."),
        generate: Optional[int] = typer.Option(None, "--generate", help="Use N prompts from the built-in generator."),
        seed: int = typer.Option(0, "--seed", help="Seed of the generator, the random rotation and the jitter."),
        categories: Optional[str] = typer.Option(None, "--categories", help="Generator categories, comma-separated."),
        concurrency: int = typer.Option(8, "--concurrency", help="Requests in flight at once."),
        rotation: str = typer.Option("round-robin", "--rotation", help="round-robin, random or sticky-topic."),
        rpm: Optional[float] = typer.Option(None, "--rpm", help="Pacing: requests per minute per key."),
        max_tokens: int = typer.Option(256, "--max-tokens", help="Most completion tokens per request."),
        temperature: float = typer.Option(0.7, "--temperature", help="Sampling temperature."),
        top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass."),
        logprobs: int = typer.Option(0, "--logprobs", help="Top-k log-probabilities per token (0 = off, max 20)."),
        token_ids: str = typer.Option("auto", "--token-ids", help="Ask for tokens as ids (vLLM extension): "
                                                                  "auto, on or off."),
        timeout: float = typer.Option(60.0, "--timeout", help="Seconds per request attempt."),
        max_retries: int = typer.Option(5, "--max-retries", help="Retries on 429, 5xx, timeouts, dropped connections."),
        system: Optional[str] = typer.Option(None, "--system", help="System prompt put before every prompt."),
        cost_prompt: float = typer.Option(0.0, "--cost-per-1k-prompt", help="Price per 1000 prompt tokens."),
        cost_completion: float = typer.Option(0.0, "--cost-per-1k-completion",
                                              help="Price per 1000 completion tokens."),
        user_agent: Optional[str] = typer.Option(None, "--user-agent", help="User-Agent header to send."),
        plan: bool = typer.Option(False, "--plan", help="Only check the prompts and the store and show what a run "
                                                        "would do (no request is sent)."),
    ) -> None:
        """Harvest completions (and top-k log-probs) from an OpenAI-compatible endpoint into a
        resumable store; re-run the same command to continue after an interruption."""
        from distillscope.distill import HarvestConfig, PromptGenerator, harvest, plan_harvest, read_prompt_file

        if (prompts is None) == (generate is None):
            raise ConfigError("pass exactly one of --prompts FILE or --generate N")
        extra = {"user_agent": user_agent} if user_agent else {}
        config = HarvestConfig(base_url=endpoint, model=model, api_keys=_api_keys(api_key, api_keys_file),
                               rotation=rotation, concurrency=concurrency, rpm=rpm, max_tokens=max_tokens,
                               temperature=temperature, top_p=top_p, logprobs=logprobs,
                               token_ids=_token_ids(token_ids), request_timeout=timeout, max_retries=max_retries,
                               seed=seed, system_prompt=system, cost_per_1k_prompt=cost_prompt,
                               cost_per_1k_completion=cost_completion, **extra)
        items = (read_prompt_file(prompts) if prompts is not None
                 else PromptGenerator(seed=seed, categories=_categories(categories)).generate(generate or 0))
        if plan:
            p = plan_harvest(config, items, out)
            print_table(f"harvest plan → {p.store_path}", ("", "prompts"),
                        [("total", p.total), ("already ok (skipped)", p.done), ("failed before (retried)", p.retry),
                         ("new", p.new), ("duplicates merged", p.duplicates)])
            return
        with _sigterm_as_interrupt():
            summary = harvest(config, items, out, progress=RichProgress())
        _print_summary(summary)
        if summary.stopped:
            err_console.print(f"[bold yellow]stopped:[/] {summary.stopped}; re-run to resume", highlight=False)
            raise typer.Exit(1)

    prompts_app = typer.Typer(help="The built-in prompt generator.", no_args_is_help=True)
    app.add_typer(prompts_app, name="prompts")

    @prompts_app.command("generate")
    def prompts_generate(
        n: int = typer.Argument(..., help="How many distinct prompts."),
        out: str = typer.Option("-", "--out", "-o", help="Output JSONL ('-' = stdout); written atomically."),
        seed: int = typer.Option(0, "--seed", help="Same seed, same prompts."),
        categories: Optional[str] = typer.Option(None, "--categories", help="Comma-separated subset of categories."),
        cot_rate: float = typer.Option(0.2, "--cot-rate", help="Share of step-by-step reasoning requests."),
    ) -> None:
        """Write N seeded prompts as JSONL rows {prompt, category, topic, template_id, answer, cot}."""
        from distillscope.distill import PromptGenerator
        from distillscope.records import write_jsonl_atomic

        items = PromptGenerator(seed=seed, categories=_categories(categories), cot_rate=cot_rate).generate(n)
        written = write_jsonl_atomic(out, (i.to_dict() for i in items))
        if out != "-":
            err_console.print(f"wrote {written} prompts to {out}")
