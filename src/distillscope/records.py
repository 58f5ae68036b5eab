"""Reading prompt/record files and writing result files without ever leaving half a file.

Formats: plain text (one item per line), JSONL (objects with a ``prompt``/``text``/``messages``
field, or bare strings), CSV and Parquet (a ``prompt`` or ``text`` column). ``-`` is stdin/stdout.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from distillscope.errors import InputDataError


def logged_messages(prompt: str | None) -> list[dict] | None:
    """The chat messages of a prompt logged as a JSON list of messages; None for a plain prompt."""
    if not prompt or not (prompt.startswith("[") and prompt.endswith("]")):
        return None
    try:
        messages = json.loads(prompt)
    except ValueError:
        return None
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else None


def message_text(message: dict) -> str:
    """A message's content as text (content parts joined)."""
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def last_user_text(prompt: str | None) -> str:
    """The text a client asked: the last user message of a chat logged as JSON messages (content
    parts joined), or the prompt itself."""
    if not prompt:
        return ""
    messages = logged_messages(prompt)
    users = [message_text(m) for m in messages or () if m.get("role") == "user"
             and isinstance(m.get("content"), (str, list))]
    return users[-1] if users else prompt


def _open_text(path: str | Path) -> Iterator[str]:
    if str(path) == "-":
        yield from sys.stdin
        return
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"file {p} does not exist", hint="check the path")
    if p.is_dir():
        raise InputDataError(f"{p} is a directory, expected a file")
    try:
        with p.open(encoding="utf-8") as fh:
            yield from fh
    except UnicodeDecodeError as exc:
        raise InputDataError(f"{p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def read_jsonl(path: str | Path) -> list[Any]:
    """Parse a JSONL file; errors name the file and line."""
    out: list[Any] = []
    for lineno, line in enumerate(_open_text(path), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputDataError(f"{path}: line {lineno} is not valid JSON ({exc.msg})",
                                 hint="each line must be one JSON value") from exc
    return out


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    if fmt:
        return fmt
    suffix = Path(str(path)).suffix.lower()
    return {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet",
            ".pq": "parquet"}.get(suffix, "text")


def _field(obj: Any, fields: tuple[str, ...], where: str) -> Any:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        for f in fields:
            if f in obj and obj[f] not in (None, ""):
                return obj[f]
    raise InputDataError(f"{where}: expected a string or an object with one of the fields "
                         f"{', '.join(fields)}")


def read_records(path: str | Path, fmt: str | None = None) -> list[dict[str, Any]]:
    """Read any supported file into a list of dicts (text lines become ``{"text": line}``)."""
    kind = detect_format(path, fmt)
    if kind == "text":
        return [{"text": line.rstrip("\n")} for line in _open_text(path) if line.strip()]
    if kind == "jsonl":
        rows = read_jsonl(path)
        return [r if isinstance(r, dict) else {"text": r} for r in rows]
    if kind in ("csv", "parquet"):
        import pandas as pd

        p = Path(str(path))
        if not p.is_file():
            raise InputDataError(f"file {p} does not exist", hint="check the path")
        try:
            df = pd.read_csv(p) if kind == "csv" else pd.read_parquet(p)
        except Exception as exc:  # pandas raises many types for malformed files
            raise InputDataError(f"{p} could not be read as {kind}: {exc}") from exc
        return df.to_dict(orient="records")
    raise InputDataError(f"unknown format {kind!r}", hint="use text, jsonl, csv or parquet")


def read_prompts(path: str | Path, fmt: str | None = None) -> list[str | list[dict[str, str]]]:
    """Read prompts: each is a string, or a list of chat messages (``messages`` field)."""
    prompts: list[str | list[dict[str, str]]] = []
    for i, rec in enumerate(read_records(path, fmt), start=1):
        value = _field(rec, ("messages", "prompt", "text", "instruction"), f"{path}: record {i}")
        if isinstance(value, list):
            if not all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
                raise InputDataError(f"{path}: record {i} has malformed messages",
                                     hint='use [{"role": "user", "content": "..."}]')
        elif not isinstance(value, str) or not value.strip():
            raise InputDataError(f"{path}: record {i} has an empty prompt")
        prompts.append(value)
    if not prompts:
        raise InputDataError(f"{path} holds no prompts")
    return prompts


def write_jsonl_atomic(path: str | Path, rows: Iterable[Any]) -> int:
    """Write rows as JSONL to a temp file, then rename: readers never see half a file."""
    if str(path) == "-":
        n = 0
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        return n
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
