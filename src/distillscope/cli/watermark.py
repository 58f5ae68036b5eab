"""``distillscope watermark keygen | detect | show``: keys and detection from the command line."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import typer

from distillscope.cli.common import RichProgress, console, err_console, print_table, state
from distillscope.errors import ConfigError, InputDataError, WatermarkError

wm_app = typer.Typer(help="Keyed output watermark: create the key, show the scheme, detect the watermark in text.",
                     no_args_is_help=True)

_OUT_FORMATS = ("table", "json", "jsonl")
_IN_FORMATS = ("auto", "text", "jsonl", "csv", "parquet")
_TEXT_FIELDS = ("text", "completion")
# Columns that mark a record as a row of the gateway's request log (`distillscope logs export`).
_LOG_COLUMNS = ("request_id", "completion", "status", "endpoint")


def register(app: typer.Typer) -> None:
    app.add_typer(wm_app, name="watermark")


@wm_app.command("keygen")
def keygen(
    ctx: typer.Context,
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Key file to write (default: the watermark_key_file setting, "
                                            "HOME/watermark.key)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing key file."),
) -> None:
    """Create a new random watermark key (hex, file mode 0600); prints only its key id."""
    from distillscope.watermark import WatermarkKey

    settings = state(ctx).settings()
    path = out or settings.resolved_watermark_key_file
    key = WatermarkKey.generate()
    key.save(path, overwrite=force)
    console.print(f"watermark key {key.key_id} written to {path}", highlight=False)
    if out is not None and Path(out) != settings.resolved_watermark_key_file:
        err_console.print(f"use it with DISTILLSCOPE_WATERMARK_KEY_FILE={path}", highlight=False)


@wm_app.command("show")
def show(
    ctx: typer.Context,
    scheme: Optional[str] = typer.Option(None, "--scheme", help="kgw, kgw-selfhash or gumbel "
                                                                "(default: the watermark_scheme setting)."),
) -> None:
    """Print the configured scheme, its parameters and the key id (never the key)."""
    settings = state(ctx).settings()
    config = _scheme(settings, scheme, None, None).config()
    print_table("watermark", ("setting", "value"), [(k, v) for k, v in config.items()])


@wm_app.command("detect")
def detect(
    ctx: typer.Context,
    input_file: str = typer.Argument(..., metavar="FILE|-",
                                     help="Texts, one per line; JSONL, CSV or Parquet with a text/completion "
                                          "field or token_ids (and optional prompt_ids), e.g. a `distillscope "
                                          "logs export`; '-' reads stdin."),
    scheme: Optional[str] = typer.Option(None, "--scheme", help="kgw, kgw-selfhash or gumbel "
                                                                "(default: the watermark_scheme setting)."),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="KGW green fraction (default: from settings)."),
    context_width: Optional[int] = typer.Option(None, "--context-width",
                                                help="Context ids hashed per token (default: from settings)."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table, json (one document) or jsonl."),
    input_format: str = typer.Option("auto", "--input-format",
                                     help="auto (from the suffix: .jsonl/.json = jsonl, .csv, .parquet, else "
                                          "text), text, jsonl, csv or parquet."),
    field: Optional[str] = typer.Option(None, "--field", help="JSONL field holding the text "
                                                              "(default: text, then completion)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer",
                                            help="Tokenizer to re-tokenise text with: smollm2, gemma3-270m or an "
                                                 "HF directory (default: the teacher setting)."),
    alpha: float = typer.Option(1e-5, "--alpha", help="Significance level of the 'detected' column."),
    out: str = typer.Option("-", "--out", "-o", help="Write the json/jsonl output to this file (atomically)."),
) -> None:
    """Test texts (or token ids) for the watermark: exact p-value per text."""
    from distillscope.records import write_jsonl_atomic

    if fmt not in _OUT_FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}", hint=f"use one of {', '.join(_OUT_FORMATS)}")
    if input_format not in _IN_FORMATS:
        raise ConfigError(f"unknown --input-format {input_format!r}", hint=f"use one of {', '.join(_IN_FORMATS)}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"--alpha must be between 0 and 1, got {alpha}")
    if fmt == "table" and out != "-":
        raise ConfigError("--out needs --format json or jsonl", hint="add --format jsonl")
    settings = state(ctx).settings()
    wm_scheme = _scheme(settings, scheme, gamma, context_width)        # fails fast on a missing key
    items, skipped = _read_items(input_file, input_format, field)
    if skipped:
        err_console.print(f"skipped {skipped} request-log row(s) without a completion (refused, failed or "
                          "redacted requests)", highlight=False)
    needs_text = any(isinstance(item, str) for item, _, _, _ in items)
    tok = _load_tokenizer(tokenizer or settings.teacher, settings) if needs_text else None
    detector = wm_scheme.detector(tok)
    results = []
    with RichProgress(transient=True).task("detecting", total=len(items)) as task:
        for i, (item, prompt, _, _) in enumerate(items, 1):
            try:
                results.append(detector.detect_text(item) if isinstance(item, str)
                               else detector.detect(item, prompt_ids=prompt))
            except WatermarkError as exc:
                raise WatermarkError(f"{input_file}: record {i}: {exc.message}", hint=exc.hint) from None
            task.advance()
    rows = [{"index": i, "request_id": item[2], "choice": item[3], **d.to_dict(), "detected": d.p_value < alpha}
            for i, (d, item) in enumerate(zip(results, items), 1)]
    if fmt == "table":
        print_table(f"watermark {wm_scheme.name} (key {wm_scheme.key.key_id})",
                    ("#", "tokens", "scored", "score", "z", "p-value", "log10 p", f"p<{alpha:g}"),
                    [(r["index"], r["n_tokens"], r["n_scored"], f"{r['score']:.2f}",
                      "" if r["z"] is None else f"{r['z']:.2f}", f"{r['p_value']:.3g}", f"{r['log10_p']:.2f}",
                      "yes" if r["detected"] else "no") for r in rows])
    elif fmt == "jsonl":
        write_jsonl_atomic(out, rows)
    else:
        _write_json(out, {"watermark": wm_scheme.config(), "alpha": alpha, "results": rows})


def _scheme(settings: Any, name: str | None, gamma: float | None, context_width: int | None):
    from distillscope.watermark import WatermarkKey, make_scheme

    params = dict(settings.watermark_params)
    name = name or settings.watermark_scheme
    if name == "gumbel":
        params.pop("gamma", None)
        params.pop("delta", None)
    if gamma is not None:
        params["gamma"] = gamma
    if context_width is not None:
        params["context_width"] = context_width
    key = WatermarkKey.load(settings)
    return make_scheme(name, key, **params)


def _read_items(path: str, input_format: str, field: str | None) -> tuple[list[tuple[Any, Any, Any, int]], int]:
    """(text or token ids, prompt ids, request id, choice) per text, and the number of request-log rows
    skipped for having no completion; every other malformed record is an error naming it.

    A request-log export (``distillscope logs export``, any format) yields one text per choice: a
    row of an ``n > 1`` request (or of several prompts) holds its texts as a JSON list.
    """
    from distillscope.records import detect_format, read_records

    kind = detect_format(path) if input_format == "auto" else input_format
    if kind not in ("text", "jsonl", "csv", "parquet"):
        kind = "text"
    records = read_records(path, kind)
    if not records:
        raise InputDataError(f"{path} holds no texts", hint="give one text per line, or JSONL records")
    if not field and all(c in records[0] for c in _LOG_COLUMNS):
        return _log_items(records)
    fields = (field,) if field else _TEXT_FIELDS
    items: list[tuple[Any, Any, Any, int]] = []
    for i, rec in enumerate(records, 1):
        if "token_ids" in rec and not field:
            items.append((rec["token_ids"], rec.get("prompt_ids"), None, 0))
            continue
        value = next((rec[f] for f in fields if f in rec), None)
        if value is None:
            raise InputDataError(f"{path}: record {i} has no {' or '.join(fields)} field",
                                 hint="name the text field with --field")
        if not isinstance(value, str):
            raise InputDataError(f"{path}: record {i} field {fields[0]!r} is a {type(value).__name__}, "
                                 "not a string", hint="name the text field with --field")
        if not value.strip():
            raise InputDataError(f"{path}: record {i} has an empty text", hint="remove empty records")
        items.append((value, None, None, 0))
    return items, 0


def _choices_expected(rec: dict[str, Any]) -> int:
    """How many texts a request-log row holds: ``n`` × the number of prompts of a legacy completion."""
    try:
        params = json.loads(rec.get("params") or "{}") if isinstance(rec.get("params"), str) else {}
    except ValueError:
        params = {}
    n = params.get("n") if isinstance(params, dict) else None
    n = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    prompts = 1
    if str(rec.get("endpoint") or "").endswith("/completions") and not str(rec.get("endpoint")).endswith(
            "/chat/completions"):
        parsed = _json_list(rec.get("prompt"))
        prompts = len(parsed) if parsed else 1
    return n * prompts


def _json_list(value: Any) -> list[str] | None:
    if not isinstance(value, str) or not value.startswith("["):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, list) and all(isinstance(t, str) for t in parsed) else None


def _log_items(records: list[dict[str, Any]]) -> tuple[list[tuple[Any, Any, Any, int]], int]:
    items: list[tuple[Any, Any, Any, int]] = []
    skipped = 0
    for rec in records:
        completion = rec.get("completion")
        status = rec.get("status")
        if not isinstance(completion, str) or not completion.strip() or (isinstance(status, (int, float))
                                                                          and status >= 400):
            skipped += 1  # refused, failed or redacted: nothing was generated (None, or NaN from CSV)
            continue
        expected = _choices_expected(rec)
        texts = _json_list(completion) if expected > 1 else None
        if texts is None or len(texts) != expected:
            texts = [completion]
        request_id = rec.get("request_id")
        items.extend((text, None, request_id, j) for j, text in enumerate(texts) if text.strip())
    if not items:
        raise InputDataError("the request-log export holds no completions",
                             hint="export a time range with served requests (status 200)")
    return items, skipped


def _load_tokenizer(spec: str, settings: Any):
    from distillscope.teacher import load_tokenizer

    return load_tokenizer(spec, settings=settings)


def _write_json(out: str, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if out == "-":
        typer.echo(text, nl=False)
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
