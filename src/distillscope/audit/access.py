"""Access to a suspect (or control) model: open weights, a black-box endpoint, or only its texts.

Specs: ``local:PATH`` (an HF model directory, a ``.gguf`` file, or a teacher-runtime spec such as
``tiny:3``), ``endpoint:URL[#MODEL]`` (an OpenAI-compatible API), ``texts:FILE`` (JSONL/text of the
suspect's outputs, optionally with the ``prompt`` each answers). Every suspect can give answers to
prompts (or its fixed texts); only a local suspect can be read token by token (reading mode).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from distillscope.audit.radioactivity import TokenText
from distillscope.errors import AuditError, DistillscopeError
from distillscope.progress import Progress, ensure_progress

logger = logging.getLogger(__name__)

KINDS = ("local", "endpoint", "texts")


@dataclass(frozen=True)
class SuspectSpec:
    """A parsed ``KIND:TARGET[#MODEL]`` spec."""

    kind: str
    target: str
    model: str | None = None

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.target}" + (f"#{self.model}" if self.model else "")


def parse_spec(spec: str) -> SuspectSpec:
    """Parse ``local:PATH``, ``endpoint:URL[#MODEL]`` or ``texts:FILE``."""
    kind, sep, target = spec.partition(":")
    if not sep or kind not in KINDS or not target:
        raise AuditError(f"suspect spec {spec!r} is not understood",
                         hint="use local:PATH, endpoint:URL[#MODEL] or texts:FILE")
    model = None
    if kind == "endpoint" and "#" in target:
        target, model = target.rsplit("#", 1)
    return SuspectSpec(kind, target, model or None)


@dataclass(frozen=True)
class Answers:
    """A model's answers to prompts (``None`` where it gave none), with the prompts they answer."""

    prompts: tuple[str, ...]
    texts: tuple[str | None, ...]


class LocalSuspect:
    """Open weights loaded through the teacher runtime: answers and next-token predictions."""

    modes = frozenset({"open", "blackbox", "passive"})

    def __init__(self, spec: SuspectSpec, loaded: Any) -> None:
        self.spec, self.loaded = spec, loaded
        self.name = getattr(loaded, "name", spec.target)
        self.fingerprint = str(getattr(loaded, "fingerprint", ""))
        self.tokenizer = loaded.tokenizer

    def answer(self, prompts: Sequence[str], *, max_new_tokens: int, temperature: float, seed: int,
               progress: Progress | None = None) -> Answers:
        from distillscope.teacher import SamplingParams, Teacher

        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        gens = Teacher(self.loaded).generate(list(prompts), params, watermark=False, progress=progress)
        return Answers(tuple(prompts), tuple(g.text for g in gens))

    def next_token_topk(self, texts: Sequence[TokenText], k: int, *, batch_size: int = 8,
                        max_length: int = 1024, progress: Progress | None = None) -> list[list[tuple[int, ...]]]:
        """Top-k next-token predictions at every answer position of each text (teacher forcing).

        ``out[i][t]`` are the suspect's k most likely tokens for ``texts[i].answer_ids[t]`` given the
        prompt and the answer before it (positions past ``max_length`` are not read).
        """
        out: list[list[tuple[int, ...]]] = []
        with ensure_progress(progress).task("suspect reads our texts", total=len(texts)) as task:
            for b in range(0, len(texts), batch_size):
                chunk = texts[b:b + batch_size]
                streams = [list(t.stream[:max_length]) for t in chunk]
                readable = [i for i, s in enumerate(streams) if len(s) >= 2]
                tops = self.loaded.next_token_topk([streams[i] for i in readable], k, batch_size=batch_size)
                by_row = dict(zip(readable, tops))
                for i, text in enumerate(chunk):
                    start, end = len(text.prompt_ids), len(streams[i])
                    top = by_row.get(i)
                    out.append([tuple(int(x) for x in top.ids[pos - 1]) if top is not None and pos >= 1 else ()
                                for pos in range(start, end)])
                task.advance(len(chunk))
        return out


class EndpointSuspect:
    """A black-box OpenAI-compatible API: answers only (reading mode is impossible)."""

    modes = frozenset({"blackbox", "passive"})

    def __init__(self, spec: SuspectSpec, *, api_key: str | None = None, timeout: float = 60.0) -> None:
        import openai

        self.spec = spec
        self.tokenizer = None
        key = api_key or os.environ.get("DISTILLSCOPE_AUDIT_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
        self._client = openai.OpenAI(base_url=spec.target, api_key=key, timeout=timeout, max_retries=1)
        try:
            models = [m.id for m in self._client.models.list()]
        except openai.OpenAIError as exc:
            raise AuditError(f"endpoint {spec.target} cannot be reached ({type(exc).__name__})",
                             hint="check the URL (it ends in /v1), that the server runs and the API key "
                                  "(DISTILLSCOPE_AUDIT_API_KEY)") from None
        if spec.model is None and not models:
            raise AuditError(f"endpoint {spec.target} lists no model",
                             hint="name the model: endpoint:URL#MODEL")
        self.model = spec.model or models[0]
        self.name = f"{self.model} @ {spec.target}"
        self.fingerprint = hashlib.sha256(self.name.encode()).hexdigest()

    def answer(self, prompts: Sequence[str], *, max_new_tokens: int, temperature: float, seed: int,
               progress: Progress | None = None) -> Answers:
        import openai

        texts: list[str | None] = []
        with ensure_progress(progress).task(f"asking {self.model}", total=len(prompts)) as task:
            for prompt in prompts:
                try:
                    resp = self._client.chat.completions.create(
                        model=self.model, messages=[{"role": "user", "content": prompt}],
                        max_tokens=max_new_tokens, temperature=temperature, seed=seed)
                    texts.append(resp.choices[0].message.content or "")
                except openai.APIConnectionError as exc:
                    raise AuditError(f"endpoint {self.spec.target} stopped answering ({type(exc).__name__})",
                                     hint="check that the server is still running") from None
                except openai.OpenAIError as exc:
                    logger.warning("endpoint refused a prompt: %s", type(exc).__name__)
                    texts.append(None)
                task.advance()
        return Answers(tuple(prompts), tuple(texts))


class TextsSuspect:
    """Only a corpus of the suspect's outputs (``completion``/``text``/``answer`` and optional ``prompt``)."""

    modes = frozenset({"blackbox", "passive"})

    def __init__(self, spec: SuspectSpec) -> None:
        from distillscope.records import read_records

        path = Path(spec.target)
        try:
            rows = read_records(path)
        except DistillscopeError as exc:
            raise AuditError(f"texts {path} cannot be read: {exc}", hint="pass texts:FILE with "
                             "one output per line or JSONL with a 'completion' field") from None
        self.spec, self.tokenizer = spec, None
        self._rows = [(r.get("prompt") if isinstance(r.get("prompt"), str) else None,
                       next((r[f] for f in ("completion", "text", "answer", "output") if isinstance(r.get(f), str)),
                            None)) for r in rows]
        if not any(t for _, t in self._rows):
            raise AuditError(f"texts {path} hold no text", hint="each record needs a 'completion' or 'text'")
        self.name = path.name
        self.fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()

    def answer(self, prompts: Sequence[str], **_: Any) -> Answers:
        """The texts answering ``prompts`` where records name their prompt; else all texts in order."""
        by_prompt = {p: t for p, t in self._rows if p is not None and t}
        if by_prompt and any(p in by_prompt for p in prompts):
            return Answers(tuple(prompts), tuple(by_prompt.get(p) for p in prompts))
        texts = [t for _, t in self._rows if t]
        return Answers(tuple([""] * len(texts)), tuple(texts))


Suspect = LocalSuspect | EndpointSuspect | TextsSuspect


def open_suspect(spec: str, *, settings: Any = None, progress: Progress | None = None) -> Suspect:
    """Open a suspect or control; an unloadable or unreachable one raises :class:`AuditError`."""
    parsed = parse_spec(spec)
    if parsed.kind == "endpoint":
        return EndpointSuspect(parsed)
    if parsed.kind == "texts":
        return TextsSuspect(parsed)
    from distillscope.teacher import load_model

    try:
        loaded = load_model(parsed.target, settings=settings, dtype="float32", progress=progress)
    except (DistillscopeError, OSError, ValueError) as exc:
        raise AuditError(f"model {parsed.text!r} cannot be loaded: {exc}",
                         hint="pass local:PATH to an HF model directory or a .gguf file") from None
    return LocalSuspect(parsed, loaded)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of the vocabulary: equal fingerprints mean the same token ids."""
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(repr(vocab).encode()).hexdigest()[:16]


def same_tokenizer(a: Any, b: Any) -> bool:
    return a is not None and b is not None and tokenizer_fingerprint(a) == tokenizer_fingerprint(b)
