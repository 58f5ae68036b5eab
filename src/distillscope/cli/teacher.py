"""``distillscope generate``: prompts in (text or JSONL), answers out (JSONL)."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from distillscope.cli.common import RichProgress, err_console, state
from distillscope.errors import ConfigError

_FORMATS = ("text", "jsonl")


def _prompt_for_row(prompt: Any) -> Any:
    return prompt if isinstance(prompt, str) else list(prompt)


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        ctx: typer.Context,
        prompts_file: str = typer.Argument(..., metavar="FILE|-",
                                           help="Prompts: text (one per line) or JSONL (prompt/text/messages "
                                                "field); '-' reads stdin."),
        model: Optional[str] = typer.Option(None, "--model", "-m",
                                            help="smollm2, gemma3-270m, tiny[:SEED], an HF model directory or a "
                                                 ".gguf path (default: the teacher setting)."),
        out: str = typer.Option("-", "--out", "-o", help="Output JSONL file ('-' = stdout); written atomically."),
        watermark: bool = typer.Option(True, "--watermark/--no-watermark",
                                       help="Watermark the answers with the configured key and scheme."),
        max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Most tokens per answer."),
        temperature: float = typer.Option(0.7, "--temperature", help="Sampling temperature; 0 = greedy."),
        top_p: float = typer.Option(0.95, "--top-p", help="Nucleus sampling mass (1 = off)."),
        top_k: int = typer.Option(50, "--top-k", help="Keep the k most likely tokens (0 = off)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed: same seed and prompts give the same answers."),
        stop: Optional[List[str]] = typer.Option(None, "--stop", help="Stop string (repeatable)."),
        batch_size: int = typer.Option(8, "--batch-size", help="Prompts generated together."),
        dtype: Optional[str] = typer.Option(None, "--dtype", help="bfloat16 or float32 (default: the dtype setting)."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: the device setting)."),
        fmt: Optional[str] = typer.Option(None, "--format",
                                          help="Input format, text or jsonl (default: from the file suffix)."),
        chat: Optional[bool] = typer.Option(None, "--chat/--raw",
                                            help="Chat template (or the User:/Assistant: fallback) vs raw "
                                                 "completion-style prompts (default: chat if the model has a "
                                                 "chat template)."),
    ) -> None:
        """Answer prompts with the teacher (watermarked by default) and write JSONL rows
        {prompt, completion, tokens, finish_reason, watermark_key_id, model}."""
        from distillscope.records import read_prompts, write_jsonl_atomic
        from distillscope.teacher import SamplingParams, Teacher, load_model

        if fmt is not None and fmt not in _FORMATS:
            raise ConfigError(f"unknown --format {fmt!r}", hint="use text or jsonl")
        if batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
        settings = state(ctx).settings()
        prompts = read_prompts(prompts_file, fmt)
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                seed=seed, stop=tuple(stop or ()))
        scheme = None
        if watermark:
            from distillscope.watermark import scheme_from_settings

            scheme = scheme_from_settings(settings)  # fails fast (before loading) when the key is missing
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress bars only
        progress = RichProgress()
        loaded = load_model(model or settings.teacher, settings=settings, dtype=dtype or settings.dtype,
                            device=device or settings.device, progress=progress)
        teacher = Teacher(loaded, watermark=scheme)
        generations = teacher.generate(prompts, params, watermark=watermark, batch_size=batch_size, chat=chat,
                                       progress=progress)
        key_id = teacher.watermark_key_id if watermark else None
        rows = [{"prompt": _prompt_for_row(p), "completion": g.text, "tokens": g.n_tokens,
                 "finish_reason": g.finish_reason, "watermark_key_id": key_id, "model": loaded.name}
                for p, g in zip(prompts, generations)]
        n = write_jsonl_atomic(out, rows)
        if out != "-":
            err_console.print(f"wrote {n} answers to {out}")
