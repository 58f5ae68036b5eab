"""Training examples from a harvest store: prompt ids, the teacher's answer ids, top-k targets.

A harvest store is a directory with ``manifest.json`` and ``records.jsonl`` (see
``docs/distill.md``). Only ``status == "ok"`` records train, and the latest record per id wins.

The student is trained on exactly the teacher's completion token ids (``token_ids``) when its
tokenizer matches the teacher's, so the top-k targets line up token for token; otherwise the
completion text is re-tokenised (sequence-level distillation only). Held-out records are chosen
by a hash of the record id, so training and evaluation agree on the split without bookkeeping.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from distillscope.errors import DistillError, InputDataError

logger = logging.getLogger(__name__)

STORE_FORMAT = "distillscope-harvest"
TOKEN_ID_PREFIX = "token_id:"


def read_store(path: str | Path) -> list[dict[str, Any]]:
    """The usable (``status == "ok"``) records of a harvest store, latest record per id.

    Raises :class:`InputDataError` naming the file and line for a missing or foreign manifest,
    unparsable lines, records without an id, or a store with no usable record.
    """
    store = Path(path)
    manifest_path, records_path = store / "manifest.json", store / "records.jsonl"
    if not store.is_dir() or not manifest_path.is_file() or not records_path.is_file():
        raise InputDataError(f"{store} is not a harvest store (expected a directory with manifest.json "
                             "and records.jsonl)", hint="create one with `distillscope harvest`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{manifest_path} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        raise InputDataError(f"{manifest_path} does not describe a harvest store "
                             f"(format {manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                             f"expected {STORE_FORMAT!r})")
    latest: dict[str, dict[str, Any]] = {}
    with records_path.open(encoding="utf-8", errors="strict") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputDataError(f"{records_path}: line {lineno} is not valid JSON ({exc.msg})",
                                     hint="the store is corrupt; re-run the harvest to rewrite it") from exc
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
                raise InputDataError(f"{records_path}: line {lineno} is not a record with a string 'id'")
            latest[rec["id"]] = rec
    ok = [r for r in latest.values() if r.get("status") == "ok"]
    for rec in ok:
        validate_record(rec, where=f"{records_path}: record {rec['id']!r}")
    if not ok:
        raise InputDataError(f"{store} holds no successful records ({len(latest)} record(s) in all)",
                             hint="harvest again or point at another store")
    return ok


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """Usable records of a store, through the harvest package's reader when it is available."""
    try:
        from distillscope.distill.store import HarvestStore  # written by the harvest capability
    except ImportError:
        return read_store(path)
    recs = [_as_dict(r) for r in HarvestStore(path).ok_records()]
    for rec in recs:
        validate_record(rec, where=f"{path}: record {rec.get('id')!r}")
    if not recs:
        raise InputDataError(f"{path} holds no successful records", hint="harvest again or point at another store")
    return recs


def _as_dict(rec: Any) -> dict[str, Any]:
    if isinstance(rec, dict):
        return rec
    if hasattr(rec, "to_dict"):
        return rec.to_dict()
    import dataclasses

    return dataclasses.asdict(rec)


def validate_record(rec: dict[str, Any], *, where: str) -> None:
    """Check the fields training relies on; raise :class:`InputDataError` naming the record."""
    if not isinstance(rec.get("completion"), str):
        raise InputDataError(f"{where} has status ok but no completion text")
    if not (isinstance(rec.get("prompt"), str) or isinstance(rec.get("messages"), list)):
        raise InputDataError(f"{where} has neither a prompt nor messages")
    ids = rec.get("token_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, int) and i >= 0 for i in ids)):
        raise InputDataError(f"{where}: token_ids must be a list of non-negative integers")
    n_tokens = len(ids) if ids is not None else (len(rec["tokens"]) if rec.get("tokens") is not None else None)
    for field in ("top_logprob_ids", "top_logprobs"):
        top = rec.get(field)
        if top is None:
            continue
        if not isinstance(top, list) or (n_tokens is not None and len(top) != n_tokens):
            raise InputDataError(f"{where}: {field} must hold one list per completion token "
                                 f"({n_tokens} tokens, got "
                                 f"{len(top) if isinstance(top, list) else type(top).__name__})")
        for pos in top:
            if not isinstance(pos, list) or not all(isinstance(e, list) and len(e) == 2
                                                    and isinstance(e[1], (int, float)) for e in pos):
                raise InputDataError(f"{where}: {field} entries must be [token, logprob] pairs")


def is_heldout(record_id: str, fraction: float) -> bool:
    """Deterministic held-out membership by a hash of the record id."""
    if fraction <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(record_id.encode("utf-8")).digest()[:4], "big")
    return (h % 10_000) < fraction * 10_000


def split_heldout(records: Sequence[dict[str, Any]], fraction: float) -> tuple[list[dict], list[dict]]:
    """``(train, heldout)`` split of records by :func:`is_heldout`."""
    train, held = [], []
    for rec in records:
        (held if is_heldout(rec["id"], fraction) else train).append(rec)
    return train, held


def prompt_messages(rec: dict[str, Any]) -> list[dict[str, str]]:
    msgs = rec.get("messages")
    if isinstance(msgs, list) and msgs:
        return msgs
    return [{"role": "user", "content": rec["prompt"]}]


PROMPT_FORMATS = ("auto", "chat", "plain")
"""``auto``: the tokenizer's chat template, or the plain format when it has none; ``chat``: the chat
template (an error when there is none); ``plain``: always the plain format."""


def encode_prompt(tokenizer: Any, messages: list[dict[str, str]], prompt_format: str = "auto") -> list[int]:
    """Prompt ids exactly as the teacher runtime builds them: the chat template (with the
    generation prompt) when the tokenizer has one, else the plain format of
    :func:`distillscope.teacher.fallback_chat_text` (``User: ...`` lines, then ``Assistant:``, with the
    tokenizer's special tokens, e.g. Gemma's ``<bos>``)."""
    if prompt_format != "plain" and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    from distillscope.teacher import fallback_chat_text

    return list(tokenizer(fallback_chat_text(messages), add_special_tokens=True)["input_ids"])


def plain_chat_template(tokenizer: Any) -> str:
    """A Jinja chat template that renders the plain format byte for byte, including the special
    tokens the tokenizer itself prepends, so a student trained on the plain format and saved with this
    template is prompted the same way by every chat-template user (the gateway, the audit, vLLM)."""
    bare = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x", add_special_tokens=True)["input_ids"]
    prefix = tokenizer.decode(full[:len(full) - len(bare)]) if full[-len(bare):] == bare else ""
    head = "{{ " + json.dumps(prefix) + " }}" if prefix else ""
    return (head + "{% for m in messages %}{{ {'system': 'System', 'user': 'User', 'assistant': 'Assistant'}"
            "[m['role']] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")


class TokenMapper:
    """Maps a teacher's top-k token strings onto the student tokenizer's ids.

    ``"token_id:N"`` strings map to ``N``; other strings are looked up among the decoded
    forms of the student's vocabulary (built once, lazily).
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        self._table: dict[str, int] | None = None

    def _build(self) -> dict[str, int]:
        table: dict[str, int] = {}
        vocab = self._tok.get_vocab()
        for piece, idx in sorted(vocab.items(), key=lambda kv: kv[1]):
            table.setdefault(self._tok.convert_tokens_to_string([piece]), idx)
            table.setdefault(piece, idx)
        return table

    def lookup(self, token: str) -> int | None:
        if token.startswith(TOKEN_ID_PREFIX):
            try:
                return int(token[len(TOKEN_ID_PREFIX):])
            except ValueError:
                return None
        if self._table is None:
            self._table = self._build()
        return self._table.get(token)


def teacher_answer_ids(rec: dict[str, Any], mapper: TokenMapper | None) -> list[int] | None:
    """The teacher's completion token ids: ``token_ids``, else the ``tokens`` strings mapped onto
    the student vocabulary (None when there are neither or a token does not map)."""
    if rec.get("token_ids"):
        return list(rec["token_ids"])
    tokens = rec.get("tokens")
    if tokens and mapper is not None:
        ids = [mapper.lookup(str(t)) for t in tokens]
        if all(i is not None for i in ids):
            return ids  # type: ignore[return-value]
    return None


@dataclass(frozen=True)
class KDExample:
    """One training sequence: prompt ids, answer ids, and optional top-k targets per answer token."""

    record_id: str
    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]
    topk_ids: np.ndarray | None = None        # [len(answer_ids), K] int64
    topk_logprobs: np.ndarray | None = None   # [len(answer_ids), K] float32, -inf = padding


def topk_arrays(rec: dict[str, Any], mapper: TokenMapper | None) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Top-k ids and log-probs of a record as padded arrays, plus the number of unmapped entries.

    Uses ``top_logprob_ids`` when present (exact), else maps ``top_logprobs`` strings through
    ``mapper``. Duplicate ids at a position (two strings that map to one id) are merged.
    """
    rows = rec.get("top_logprob_ids")
    exact = rows is not None
    if not exact:
        rows = rec.get("top_logprobs")
    if rows is None:
        return None
    unmapped = 0
    positions: list[dict[int, float]] = []
    for pos in rows:
        merged: dict[int, float] = {}
        for tok, lp in pos:
            idx = int(tok) if exact else (mapper.lookup(str(tok)) if mapper else None)
            if idx is None:
                unmapped += 1
                continue
            lp = float(lp)
            merged[idx] = float(np.logaddexp(merged[idx], lp)) if idx in merged else lp
        positions.append(merged)
    k = max((len(m) for m in positions), default=0) or 1
    ids = np.zeros((len(positions), k), dtype=np.int64)
    lps = np.full((len(positions), k), -math.inf, dtype=np.float32)
    for i, merged in enumerate(positions):
        for j, (idx, lp) in enumerate(merged.items()):
            ids[i, j], lps[i, j] = idx, lp
    return ids, lps, unmapped


class KDCollator:
    """Pads examples into a batch: ``input_ids``, ``attention_mask``, ``labels`` (-100 outside the
    answer) and, when ``with_topk``, ``topk_ids`` / ``topk_logprobs`` aligned with ``labels``
    (row ``t`` describes the teacher's distribution for the token at position ``t``)."""

    def __init__(self, pad_token_id: int, with_topk: bool) -> None:
        self.pad_token_id = pad_token_id
        self.with_topk = with_topk

    def __call__(self, examples: Sequence[KDExample]) -> dict[str, torch.Tensor]:
        lengths = [len(e.prompt_ids) + len(e.answer_ids) for e in examples]
        width = max(lengths)
        n = len(examples)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        labels = torch.full((n, width), -100, dtype=torch.long)
        batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
        if self.with_topk:
            k = max((e.topk_ids.shape[1] for e in examples if e.topk_ids is not None), default=1)
            batch["topk_ids"] = torch.zeros((n, width, k), dtype=torch.long)
            batch["topk_logprobs"] = torch.full((n, width, k), -math.inf, dtype=torch.float32)
        for i, ex in enumerate(examples):
            p, a = len(ex.prompt_ids), len(ex.answer_ids)
            input_ids[i, :p + a] = torch.tensor(ex.prompt_ids + ex.answer_ids, dtype=torch.long)
            attention[i, :p + a] = 1
            labels[i, p:p + a] = torch.tensor(ex.answer_ids, dtype=torch.long)
            if self.with_topk and ex.topk_ids is not None:
                rows, kk = ex.topk_ids.shape
                batch["topk_ids"][i, p:p + rows, :kk] = torch.from_numpy(ex.topk_ids)
                batch["topk_logprobs"][i, p:p + rows, :kk] = torch.from_numpy(ex.topk_logprobs)
        return batch


def teacher_token_count(rec: dict[str, Any], default: int) -> int:
    """Completion tokens the teacher produced (and was paid for) for a record: its token ids, else its
    token strings, else the usage it reported, else ``default``."""
    for field in ("token_ids", "tokens"):
        if rec.get(field):
            return len(rec[field])
    return int((rec.get("usage") or {}).get("completion_tokens") or default)


def count_answer_tokens(examples: Iterable[KDExample]) -> int:
    return sum(len(e.answer_ids) for e in examples)


def require_topk(records: Sequence[dict[str, Any]]) -> None:
    """Token-level KD needs top-k data; say how to get it when the store has none."""
    if not any(r.get("top_logprob_ids") or r.get("top_logprobs") for r in records):
        raise DistillError("the harvest store holds no top-k log-probabilities, so token-level KD (--mode kd) "
                           "cannot run", hint="harvest with --logprobs K, or train with --mode sft")


@dataclass(frozen=True)
class ExampleSet:
    """Examples built from records, and what building them cost or dropped."""

    examples: tuple[KDExample, ...]
    with_topk: bool            # examples carry top-k targets (token-level KD possible)
    skipped: int               # records dropped (prompt alone longer than max_length)
    teacher_tokens: int        # teacher completion tokens the examples were built from


def build_examples(records: Sequence[dict[str, Any]], tokenizer: Any, *, use_teacher_ids: bool,
                   with_topk: bool, max_length: int, prompt_format: str = "auto") -> ExampleSet:
    """Tokenise records into :class:`KDExample` objects.

    ``use_teacher_ids``: train on the record's ``token_ids`` (the tokenizer matches the
    teacher's); otherwise re-tokenise the completion text. ``with_topk`` (requires
    ``use_teacher_ids``): attach the top-k targets. Answers are cut to fit ``max_length``;
    an end-of-sequence target is appended to answers that stopped naturally.
    """
    mapper = TokenMapper(tokenizer) if (with_topk or use_teacher_ids) else None
    eos = tokenizer.eos_token_id
    examples: list[KDExample] = []
    skipped = teacher_tokens = 0
    for rec in records:
        prompt = encode_prompt(tokenizer, prompt_messages(rec), prompt_format)
        answer = teacher_answer_ids(rec, mapper) if use_teacher_ids else None
        aligned = answer is not None
        if answer is None:
            answer = list(tokenizer(rec["completion"], add_special_tokens=False)["input_ids"])
        teacher_tokens += teacher_token_count(rec, len(answer))
        topk = topk_arrays(rec, mapper) if with_topk and aligned else None
        n_answer = len(answer)
        if rec.get("finish_reason") == "stop" and eos is not None and (not answer or answer[-1] != eos):
            answer.append(eos)
        room = max_length - len(prompt)
        if room < 1:
            skipped += 1
            continue
        answer = answer[:room]
        ids = lps = None
        if topk is not None:
            rows = min(n_answer, len(answer))
            ids, lps = topk[0][:rows], topk[1][:rows]
        examples.append(KDExample(rec["id"], tuple(prompt), tuple(answer), ids, lps))
    if skipped:
        logger.warning("skipped %d record(s) whose prompt alone exceeds max_length=%d", skipped, max_length)
    return ExampleSet(tuple(examples), with_topk, skipped, teacher_tokens)


def _prefix_starts(tokenizer: Any, ids: Sequence[int]) -> list[int]:
    """Character offset at which each token starts: ``len(decode(ids[:i]))`` (exact for any
    tokenizer, including byte-level ones whose single tokens are not valid text)."""
    if not ids:
        return []
    texts = tokenizer.batch_decode([list(ids[:i]) for i in range(len(ids))], skip_special_tokens=True)
    return [len(t) for t in texts]


def _sorted_topk_values(rec: dict[str, Any]) -> list[list[float]] | None:
    rows = rec.get("top_logprob_ids") if rec.get("top_logprob_ids") is not None else rec.get("top_logprobs")
    if rows is None:
        return None
    return [sorted((float(lp) for _, lp in pos), reverse=True) for pos in rows]


@dataclass(frozen=True)
class CrossAlignment:
    """How a teacher answer and its re-tokenisation by the student line up (one record)."""

    text: str                        # the answer text both sides describe (the teacher ids decoded)
    student_ids: tuple[int, ...]     # the student's tokens of ``text``
    teacher_row: tuple[int, ...]     # per student token, the teacher top-k row at the same offset, or -1


def align_by_offsets(teacher_tok: Any, teacher_ids: Sequence[int], student_tok: Any) -> CrossAlignment:
    """Character-offset alignment of a teacher answer with the student's tokens of the same text.

    Student token ``j`` (starting at character ``c_j``) is paired with teacher token ``i`` when the
    teacher's token ``i`` starts at the same character: then both models predict the next piece of
    text from the *same* prefix, so their next-token distributions describe the same event at
    different granularities (the alignment of TRL's GOLD trainer, without its span merging).
    Positions where the two tokenisations do not share a boundary are left out (``-1``).
    """
    text = teacher_tok.decode(list(teacher_ids), skip_special_tokens=True)
    s_ids = list(student_tok(text, add_special_tokens=False)["input_ids"])
    row_at: dict[int, int] = {}
    for i, start in enumerate(_prefix_starts(teacher_tok, teacher_ids)):
        row_at.setdefault(start, i)
    rows = tuple(row_at.get(start, -1) for start in _prefix_starts(student_tok, s_ids))
    return CrossAlignment(text, tuple(s_ids), rows)


def build_cross_examples(records: Sequence[dict[str, Any]], tokenizer: Any, teacher_tokenizer: Any, *,
                         max_length: int, prompt_format: str = "auto") -> ExampleSet:
    """Examples for a student whose tokenizer differs from the teacher's (cross-tokenizer KD).

    The answer is the teacher's tokens decoded with the teacher tokenizer and re-tokenised by the
    student; each student position that shares a character boundary with a teacher token
    (:func:`align_by_offsets`) carries that teacher row's top-k log-probabilities, *sorted* (only the
    values matter to :func:`~distillscope.distill.losses.topk_uld`); the others are ``-inf`` rows
    (cross-entropy only). The end-of-sequence target of an answer that stopped is aligned with the
    teacher's row at the end of the text, when the teacher listed one.
    """
    t_mapper = TokenMapper(teacher_tokenizer)
    eos = tokenizer.eos_token_id
    examples: list[KDExample] = []
    skipped = teacher_tokens = unaligned = 0
    for rec in records:
        prompt = encode_prompt(tokenizer, prompt_messages(rec), prompt_format)
        t_ids = teacher_answer_ids(rec, t_mapper)
        values = _sorted_topk_values(rec)
        if t_ids is None or values is None or len(values) != len(t_ids):
            unaligned += 1
            answer, rows = list(tokenizer(rec["completion"], add_special_tokens=False)["input_ids"]), []
            teacher_tokens += teacher_token_count(rec, len(answer))
        else:
            al = align_by_offsets(teacher_tokenizer, t_ids, tokenizer)
            answer, rows = list(al.student_ids), list(al.teacher_row)
            teacher_tokens += len(t_ids)
            if rec.get("finish_reason") == "stop" and eos is not None:
                end = len(al.text)
                starts = _prefix_starts(teacher_tokenizer, t_ids)
                rows.append(next((i for i, s in enumerate(starts) if s == end), -1))
        if rec.get("finish_reason") == "stop" and eos is not None and (not answer or answer[-1] != eos):
            answer.append(eos)
        room = max_length - len(prompt)
        if room < 1:
            skipped += 1
            continue
        answer = answer[:room]
        k = max((len(v) for v in values), default=1) if values else 1
        lps = np.full((len(answer), k), -math.inf, dtype=np.float32)
        for j, row in enumerate(rows[:len(answer)]):
            if row >= 0:
                lps[j, :len(values[row])] = values[row]
        examples.append(KDExample(rec["id"], tuple(prompt), tuple(answer), np.zeros((len(answer), k), np.int64), lps))
    if skipped:
        logger.warning("skipped %d record(s) whose prompt alone exceeds max_length=%d", skipped, max_length)
    if unaligned:
        logger.warning("%d record(s) have no teacher token ids or top-k rows to align: cross-entropy only", unaligned)
    return ExampleSet(tuple(examples), True, skipped, teacher_tokens)


def aligned_share(examples: Sequence[KDExample]) -> float:
    """Share of answer positions that carry teacher top-k targets."""
    total = sum(len(e.answer_ids) for e in examples)
    with_rows = sum(int(np.isfinite(e.topk_logprobs).any(-1).sum()) for e in examples if e.topk_logprobs is not None)
    return with_rows / total if total else 0.0
