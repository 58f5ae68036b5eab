"""Our watermarked corpus: the outputs the rival harvested (or just our watermarked outputs).

Accepted: a harvest store directory (``manifest.json`` + ``records.jsonl``), a JSONL file of
objects with ``prompt`` and ``completion`` (also ``text``/``answer``), or the gateway's own request
log export (``distillscope logs export --account ID out.jsonl|out.parquet``: what we served to the
suspected account, with the ``watermark_key_id`` of every answer; failed requests — HTTP status
>= 400 — are skipped and a chat prompt, logged as its JSON messages, becomes its last user
message). Records may carry the ``watermark_key_id`` they were generated with, which is checked
against our key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from distillscope.audit.radioactivity import TokenText
from distillscope.errors import AuditError, DistillscopeError
from distillscope.records import last_user_text, read_records


@dataclass(frozen=True)
class CorpusRecord:
    prompt: str
    completion: str


@dataclass(frozen=True)
class WatermarkedCorpus:
    """The corpus, its sha256 and the watermark key ids its records name (if any)."""

    path: str
    records: tuple[CorpusRecord, ...]
    sha256: str
    key_ids: frozenset[str]

    @property
    def prompts(self) -> list[str]:
        """Distinct prompts, in first-seen order."""
        return list(dict.fromkeys(r.prompt for r in self.records if r.prompt))


def _served(status: Any) -> bool:
    """Harvest records say "ok"; request-log rows carry the HTTP status (served when < 400)."""
    if status is None or status == "ok":
        return True
    if isinstance(status, (int, float)) and not isinstance(status, bool):
        return status < 400
    return False


def _records_from_rows(rows: Sequence[Any]) -> tuple[list[CorpusRecord], set[str]]:
    out, key_ids = [], set()
    for row in rows:
        if isinstance(row, str):
            out.append(CorpusRecord("", row))
            continue
        if not isinstance(row, dict) or not _served(row.get("status", "ok")):
            continue
        text = next((row[f] for f in ("completion", "text", "answer") if isinstance(row.get(f), str)), None)
        if text and text.strip():
            prompt = row.get("prompt")
            out.append(CorpusRecord(last_user_text(prompt) if isinstance(prompt, str) else "", text))
        if isinstance(row.get("watermark_key_id"), str):
            key_ids.add(row["watermark_key_id"])
    return out, key_ids


def _last_user(messages: Sequence[Any]) -> str:
    users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users and isinstance(users[-1], str) else ""


def load_corpus(path: str | Path) -> WatermarkedCorpus:
    """Read a watermarked corpus; a missing, unreadable or empty corpus raises :class:`AuditError`."""
    p = Path(path)
    files = [p / "manifest.json", p / "records.jsonl"] if p.is_dir() else [p]
    if not all(f.is_file() for f in files):
        raise AuditError(f"watermarked corpus {p} does not exist or is not a harvest store",
                         hint="pass --corpus FILE.jsonl (prompt/completion records) or a harvest store directory")
    try:
        if p.is_dir():     # a harvest store: read as the harvester does (latest record per id, torn tail ignored)
            from distillscope.distill import HarvestStore

            store = HarvestStore(p)
            manifest = store.manifest()
            rows: Sequence[Any] = [{"prompt": r.prompt or _last_user(r.messages), "completion": r.completion,
                                    "status": r.status} for r in store.ok_records()]
        else:
            rows = read_records(p, "parquet" if p.suffix.lower() in (".parquet", ".pq") else "jsonl")
            manifest = {}
    except (DistillscopeError, json.JSONDecodeError) as exc:
        raise AuditError(f"watermarked corpus {p} cannot be read: {exc}",
                         hint="one JSON object per line with 'prompt' and 'completion'") from None
    records, key_ids = _records_from_rows(rows)
    for field in ("watermark_key_id", "key_id"):
        if isinstance(manifest.get(field), str):
            key_ids.add(manifest[field])
    if not records:
        raise AuditError(f"watermarked corpus {p} holds no completions",
                         hint="each record needs a non-empty 'completion' (harvest records with status ok)")
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return WatermarkedCorpus(str(p), tuple(records), digest.hexdigest(), frozenset(key_ids))


def tokenize_corpus(corpus: WatermarkedCorpus, tokenizer: Any,
                    encode_prompt: Callable[[str], list[int]] | None = None) -> list[TokenText]:
    """Token ids of every record: the prompt as the model sees it (chat template) and the answer."""
    texts = []
    for rec in corpus.records:
        prompt_ids = encode_prompt(rec.prompt) if (encode_prompt and rec.prompt) else []
        answer = tokenizer.encode(rec.completion, add_special_tokens=False)
        if answer:
            texts.append(TokenText(tuple(int(i) for i in prompt_ids), tuple(int(i) for i in answer)))
    return texts
