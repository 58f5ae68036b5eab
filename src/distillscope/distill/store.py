"""The harvest store: a directory with ``manifest.json`` and an append-only ``records.jsonl``.

One JSON object per line (see ``docs/distill.md``). Records are keyed by :func:`record_id`, a
sha256 of the canonical JSON of (messages, model, params); a resumed harvest skips ids already
stored with status ``ok`` and retries failed ones, and readers keep the latest record per id.
Appends are flushed and fsynced per batch. A process killed mid-write can leave a torn last
line (no trailing newline): readers ignore it, the writer truncates it before appending. Any
other unreadable line, a missing manifest or a foreign format is a :class:`DistillError`.
Only one writer at a time: :meth:`HarvestStore.open_writer` takes an exclusive ``flock``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator

from distillscope.errors import DistillError

logger = logging.getLogger(__name__)

STORE_FORMAT = "distillscope-harvest"
STORE_VERSION = 1
MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
LOCK = ".lock"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def record_id(messages: list[dict[str, Any]], model: str, params: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of what was asked: messages, model and sampling params."""
    return hashlib.sha256(canonical_json({"messages": messages, "model": model, "params": params})
                          .encode("utf-8")).hexdigest()


def _tuples(rows: Any, depth: int) -> Any:
    if rows is None or depth == 0:
        return rows
    return tuple(_tuples(r, depth - 1) for r in rows)


@dataclass(frozen=True)
class HarvestError:
    """Why a request failed: ``type`` (rate_limited, server_error, timeout, connection, auth,
    bad_request, not_found, bad_response, key_rejected...), the message and the HTTP status."""

    type: str
    message: str
    status: int | None = None


@dataclass(frozen=True)
class HarvestRecord:
    """One line of ``records.jsonl``: a completion (``status="ok"``) or an explicit failure."""

    id: str
    status: str
    prompt: str
    messages: tuple[dict[str, Any], ...]
    completion: str | None = None
    finish_reason: str | None = None
    tokens: tuple[str, ...] | None = None
    token_ids: tuple[int, ...] | None = None
    token_logprobs: tuple[float, ...] | None = None
    top_logprobs: tuple[tuple[tuple[str, float], ...], ...] | None = None
    top_logprob_ids: tuple[tuple[tuple[int, float], ...], ...] | None = None
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    error: HarvestError | None = None
    attempts: int = 0
    key_alias: str | None = None
    category: str | None = None
    topic: str | None = None
    template_id: str | None = None
    ts: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def _shallow(self) -> dict[str, Any]:
        # dataclasses.asdict deep-copies every nested tuple: ~10x slower on top-k log-prob rows.
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["error"] = asdict(self.error) if self.error is not None else None
        return d

    def to_json(self) -> str:
        """The line stored on disk (canonical JSON, no newline)."""
        return canonical_json(self._shallow())

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored on disk (lists instead of tuples)."""
        return json.loads(self.to_json())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HarvestRecord":
        err = d.get("error")
        return cls(
            id=d["id"], status=d["status"], prompt=d.get("prompt") or "", messages=tuple(d.get("messages") or ()),
            completion=d.get("completion"), finish_reason=d.get("finish_reason"),
            tokens=_tuples(d.get("tokens"), 1), token_ids=_tuples(d.get("token_ids"), 1),
            token_logprobs=_tuples(d.get("token_logprobs"), 1), top_logprobs=_tuples(d.get("top_logprobs"), 3),
            top_logprob_ids=_tuples(d.get("top_logprob_ids"), 3),
            usage=dict(d.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0}),
            error=HarvestError(err.get("type", "unknown"), err.get("message", ""), err.get("status"))
            if isinstance(err, dict) else None,
            attempts=int(d.get("attempts") or 0), key_alias=d.get("key_alias"), category=d.get("category"),
            topic=d.get("topic"), template_id=d.get("template_id"), ts=d.get("ts") or "")


@dataclass(frozen=True)
class StoreStats:
    """Counts over the latest record per id."""

    n_records: int
    n_ok: int
    n_failed: int
    failed_by_reason: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    n_lines: int
    torn_tail: bool


class HarvestStore:
    """Read (and, through :meth:`open_writer`, append to) one harvest store directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def records_path(self) -> Path:
        return self.path / RECORDS

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> dict[str, Any]:
        """The manifest; :class:`DistillError` when the directory is not a harvest store."""
        if not self.path.is_dir():
            raise DistillError(f"harvest store {self.path} does not exist", hint="run `distillscope harvest` first")
        if not self.manifest_path.is_file():
            raise DistillError(f"{self.path} is not a harvest store: it has no {MANIFEST}",
                               hint="point --out at an empty or new directory, or at an existing store")
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DistillError(f"{self.manifest_path} is not valid JSON ({exc})",
                               hint="the store is damaged; harvest into a new directory") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
            raise DistillError(f"{self.path} is not a harvest store (manifest format {found!r}, "
                               f"expected {STORE_FORMAT!r})", hint="use another --out directory")
        if manifest.get("version") != STORE_VERSION:
            raise DistillError(f"{self.path} has harvest store version {manifest.get('version')!r}; this "
                               f"distillscope reads version {STORE_VERSION}", hint="upgrade distillscope")
        return manifest

    def create(self, manifest: dict[str, Any]) -> None:
        """Make a new store: refuse a non-empty directory that is not already a store."""
        if self.path.exists() and not self.path.is_dir():
            raise DistillError(f"{self.path} is a file, not a harvest store directory", hint="choose another --out")
        if self.path.is_dir() and any(p.name != LOCK for p in self.path.iterdir()):
            raise DistillError(f"{self.path} is a non-empty directory without a harvest manifest",
                               hint="point --out at a new directory or an existing harvest store")
        self.path.mkdir(parents=True, exist_ok=True)
        body = {"format": STORE_FORMAT, "version": STORE_VERSION, **manifest}
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".manifest.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.manifest_path)
        self.records_path.touch()

    def _raw_lines(self) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """(line number, parsed object) per line; ``None`` for a torn (unterminated) last line."""
        self.manifest()
        if not self.records_path.is_file():
            return
        with self.records_path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.endswith(b"\n"):
                    logger.warning("%s: ignoring torn last line %d (%d bytes)", self.records_path, lineno, len(raw))
                    yield lineno, None
                    return
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise DistillError(f"{self.records_path}: line {lineno} is not valid JSON ({exc})",
                                       hint="the store is corrupt; harvest into a new directory") from exc
                if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or "status" not in obj:
                    raise DistillError(f"{self.records_path}: line {lineno} is not a harvest record",
                                       hint="the store is corrupt; harvest into a new directory")
                yield lineno, obj

    def records(self, latest: bool = True) -> Iterator[HarvestRecord]:
        """Every record, or (``latest=True``) only the last one written per id, in first-seen order."""
        if not latest:
            for _, obj in self._raw_lines():
                if obj is not None:
                    yield HarvestRecord.from_dict(obj)
            return
        newest: dict[str, dict[str, Any]] = {}
        for _, obj in self._raw_lines():
            if obj is not None:
                newest[obj["id"]] = obj
        for obj in newest.values():
            yield HarvestRecord.from_dict(obj)

    def ok_records(self) -> Iterator[HarvestRecord]:
        return (r for r in self.records() if r.ok)

    def status_by_id(self) -> dict[str, str]:
        """Latest status per id (what a resumed harvest skips)."""
        out: dict[str, str] = {}
        for _, obj in self._raw_lines():
            if obj is not None:
                out[obj["id"]] = obj["status"]
        return out

    def stats(self) -> StoreStats:
        n_lines, torn, newest = 0, False, {}
        for _, obj in self._raw_lines():
            if obj is None:
                torn = True
                continue
            n_lines += 1
            newest[obj["id"]] = obj
        reasons: Counter[str] = Counter()
        pt = ct = n_ok = 0
        for obj in newest.values():
            if obj["status"] == "ok":
                n_ok += 1
                usage = obj.get("usage") or {}
                pt += int(usage.get("prompt_tokens") or 0)
                ct += int(usage.get("completion_tokens") or 0)
            else:
                reasons[(obj.get("error") or {}).get("type", "unknown")] += 1
        return StoreStats(len(newest), n_ok, len(newest) - n_ok, dict(reasons), pt, ct, n_lines, torn)

    def open_writer(self) -> "StoreWriter":
        return StoreWriter(self)


class StoreWriter:
    """Exclusive appender: repairs a torn tail on open, then appends batches with fsync."""

    def __init__(self, store: HarvestStore) -> None:
        self.store = store
        self._lock_fh = None
        self._fh = None

    def __enter__(self) -> "StoreWriter":
        self.store.manifest()
        self._lock_fh = open(self.store.path / LOCK, "w")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_fh.close()
            raise DistillError(f"harvest store {self.store.path} is in use by another harvest process",
                               hint="wait for it to finish or stop it, then re-run to resume") from exc
        self._repair_tail()
        self._fh = open(self.store.records_path, "ab")
        return self

    def _repair_tail(self) -> None:
        path = self.store.records_path
        if not path.is_file():
            path.touch()
            return
        with open(path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            # Find the end of the last complete line and cut the torn remainder.
            pos, chunk = size, 4096
            keep = 0
            while pos > 0:
                start = max(0, pos - chunk)
                fh.seek(start)
                buf = fh.read(pos - start)
                idx = buf.rfind(b"\n")
                if idx >= 0:
                    keep = start + idx + 1
                    break
                pos = start
            logger.warning("%s: truncating a torn last line (%d bytes) left by an interrupted run",
                           path, size - keep)
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, records: Iterable[HarvestRecord]) -> int:
        """Append records as one batch, then flush and fsync."""
        if self._fh is None:
            raise RuntimeError("StoreWriter.append outside its `with` block")
        data = "".join(r.to_json() + "\n" for r in records).encode("utf-8")
        if not data:
            return 0
        self._fh.write(data)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return data.count(b"\n")

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
