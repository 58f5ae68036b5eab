"""What a harvest asks: prompts from the generator, from files, or from Python, normalised.

Accepted prompts: strings, lists of chat messages, :class:`PromptItem`, or dicts with a
``prompt``/``text``/``instruction``/``messages`` field (plus optional ``category``, ``topic``,
``template_id``). Files: JSONL/CSV/Parquet/text via :func:`distillscope.records.read_prompts`,
or a directory holding a Hugging Face dataset saved with ``save_to_disk``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from distillscope.distill.prompts import PromptItem
from distillscope.distill.store import record_id
from distillscope.errors import InputDataError
from distillscope.records import read_prompts, read_records

logger = logging.getLogger(__name__)

TEXT_FIELDS = ("messages", "prompt", "text", "instruction")
META_FIELDS = ("category", "topic", "template_id")


@dataclass(frozen=True)
class HarvestPrompt:
    """One request to make: its id, the messages sent, and where it came from."""

    id: str
    prompt: str
    messages: list[dict[str, Any]]
    category: str | None = None
    topic: str | None = None
    template_id: str | None = None


def _messages_ok(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                    for m in value))


def _one(item: Any, where: str) -> tuple[str | list[dict[str, Any]], dict[str, str | None]]:
    if isinstance(item, PromptItem):
        return item.prompt, {"category": item.category, "topic": item.topic, "template_id": item.template_id}
    if isinstance(item, (str, list)):
        return item, {}
    if isinstance(item, dict):
        value = next((item[f] for f in TEXT_FIELDS if item.get(f) not in (None, "")), None)
        if value is None:
            raise InputDataError(f"{where} has none of the fields {', '.join(TEXT_FIELDS)}",
                                 hint="give each prompt a 'prompt' or 'messages' field")
        meta = {f: (str(item[f]) if item.get(f) not in (None, "") else None) for f in META_FIELDS}
        return value, meta
    raise InputDataError(f"{where} is a {type(item).__name__}, not a prompt",
                         hint="pass strings, chat message lists, PromptItem or dicts with a 'prompt' field")


def normalize_prompts(prompts: Sequence[Any], model: str, params: dict[str, Any],
                      system_prompt: str | None = None) -> list[HarvestPrompt]:
    """Validate and identify every prompt; duplicates (same id) are kept once."""
    out: dict[str, HarvestPrompt] = {}
    for i, item in enumerate(prompts, start=1):
        where = f"prompt {i}"
        value, meta = _one(item, where)
        if isinstance(value, str):
            if not value.strip():
                raise InputDataError(f"{where} is empty", hint="remove empty prompts")
            messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
                [{"role": "user", "content": value}]
            text = value
        elif _messages_ok(value):
            messages = [{"role": m["role"], "content": m["content"]} for m in value]
            text = next((m["content"] for m in reversed(messages) if m["role"] == "user"), messages[-1]["content"])
        else:
            raise InputDataError(f"{where} has malformed chat messages",
                                 hint='use [{"role": "user", "content": "..."}]')
        rid = record_id(messages, model, params)
        if rid not in out:
            out[rid] = HarvestPrompt(rid, text, messages, **meta)
    if len(out) < len(prompts):
        logger.info("%d duplicate prompt(s) will be harvested once", len(prompts) - len(out))
    return list(out.values())


def _from_dataset_dir(path: Path) -> list[dict[str, Any]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise InputDataError(f"{path} is a directory but not a Hugging Face dataset saved with save_to_disk "
                             f"({exc})", hint="pass a JSONL/CSV/Parquet file or a saved dataset directory") from exc
    if isinstance(ds, datasets.DatasetDict):
        split = "train" if "train" in ds else (next(iter(ds)) if len(ds) == 1 else None)
        if split is None:
            raise InputDataError(f"dataset {path} has splits {', '.join(ds)} and none is 'train'",
                                 hint="save a single split, or one named 'train'")
        ds = ds[split]
    column = next((c for c in TEXT_FIELDS if c in ds.column_names), None)
    if column is None:
        raise InputDataError(f"dataset {path} has no prompt column (columns: {', '.join(ds.column_names)})",
                             hint=f"name the column one of {', '.join(TEXT_FIELDS)}")
    keep = [column] + [c for c in META_FIELDS if c in ds.column_names]
    return [{k: row[k] for k in keep} for row in ds.select_columns(keep)]


def read_prompt_file(path: str | Path) -> list[dict[str, Any]]:
    """Prompt rows (``prompt`` or ``messages`` plus any metadata) from a file or a saved dataset."""
    p = Path(str(path))
    if str(path) != "-" and p.is_dir():
        rows = _from_dataset_dir(p)
        if not rows:
            raise InputDataError(f"dataset {p} holds no prompts")
        return rows
    values = read_prompts(path)  # validates: raises InputDataError naming the file and record
    metas: list[dict[str, Any]] = read_records(path) if str(path) != "-" else [{} for _ in values]
    rows = []
    for value, meta in zip(values, metas):
        row: dict[str, Any] = {"messages" if isinstance(value, list) else "prompt": value}
        row.update({f: meta[f] for f in META_FIELDS if isinstance(meta.get(f), str)})
        rows.append(row)
    return rows
