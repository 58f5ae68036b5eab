"""Student versus teacher: held-out answer perplexity, top-1 agreement, task accuracy, cost.

:func:`evaluate` scores every model on the same held-out teacher answers (the records that
:func:`~distillscope.distill.training.train` kept out, chosen by a hash of their id):

* **perplexity** of the teacher's answer tokens given the prompt (the teacher's own token ids
  when the model shares its tokenizer, otherwise the re-tokenised answer text);
* **top-1 agreement**: how often the model's most likely next token equals the teacher's, over
  the same answer positions (needs a shared tokenizer; the teacher's own row is the reference);
* **task accuracy** on :func:`~distillscope.distill.tasks.builtin_tasks` (greedy answers);
* parameter count, and for a trained student the teacher tokens and seconds it cost.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from distillscope.distill.kd_data import (TokenMapper, align_by_offsets, encode_prompt, load_records,
                                          prompt_messages, split_heldout, teacher_answer_ids)
from distillscope.distill.student import check_tokenizer, count_parameters
from distillscope.distill.tasks import TaskItem, builtin_tasks, follows_instruction, score_answer
from distillscope.errors import DistillError
from distillscope.progress import Progress, ensure_progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEval:
    """The scores of one model."""

    name: str
    role: str                          # "teacher" or "student"
    parameters: int
    perplexity: float                  # of the held-out teacher answers
    top1_agreement: float | None       # with the teacher (None for the teacher, or no shared tokenizer)
    task_accuracy: float
    task_accuracy_by_category: tuple[tuple[str, float], ...]
    teacher_tokens: int | None         # teacher answer tokens it was trained on (students from train())
    train_seconds: float | None
    instruction_following: float = 0.0   # task replies in exactly the requested form (see tasks.follows_instruction)
    generation_tokens_per_second: float = 0.0   # greedy decoding speed on the task prompts
    speed_vs_teacher: float | None = None       # generation_tokens_per_second / the teacher's


@dataclass(frozen=True)
class EvalReport:
    """Teacher and student side by side on the same held-out answers and tasks."""

    models: tuple[ModelEval, ...]
    heldout_records: int
    answer_tokens: int
    tasks: int

    COLUMNS = ("model", "role", "params", "held-out ppl", "top-1 agree", "task acc", "follows format",
               "speed vs teacher", "teacher tokens", "train time")

    def rows(self) -> list[tuple[str, ...]]:
        """Table rows under :attr:`COLUMNS`, formatted for a terminal."""
        def fmt(v: Any, spec: str) -> str:
            return "—" if v is None else format(v, spec)
        return [(m.name, m.role, format_parameters(m.parameters), fmt(m.perplexity, ".2f"),
                 fmt(m.top1_agreement, ".1%"), fmt(m.task_accuracy, ".1%"), fmt(m.instruction_following, ".1%"),
                 fmt(m.speed_vs_teacher, ".2f") + ("x" if m.speed_vs_teacher is not None else ""),
                 fmt(m.teacher_tokens, ","), "—" if m.train_seconds is None else f"{m.train_seconds:.0f}s")
                for m in self.models]

    def by_role(self, role: str) -> ModelEval | None:
        return next((m for m in self.models if m.role == role), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_parameters(n: int) -> str:
    """``15.2M`` / ``840k`` for a table."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


@dataclass
class _Scorable:
    name: str
    model: Any
    tokenizer: Any
    train_info: dict[str, Any]


def _as_scorable(obj: Any, role: str, settings: Any) -> _Scorable:
    """A model spec / HF dir (loaded in float32), a LoadedModel, or a ``(model, tokenizer)`` pair."""
    if isinstance(obj, (str, Path)):
        from distillscope.teacher import load_model

        loaded = load_model(str(obj), settings=settings, dtype="float32")
        info_path = Path(str(obj)) / "train_result.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        return _Scorable(Path(str(obj)).name if Path(str(obj)).is_dir() else str(obj), loaded.model,
                         loaded.tokenizer, info)
    if isinstance(obj, tuple) and len(obj) == 2:
        return _Scorable(role, obj[0], obj[1], {})
    if hasattr(obj, "model") and hasattr(obj, "tokenizer"):
        return _Scorable(getattr(obj, "name", role), obj.model, obj.tokenizer, {})
    raise DistillError(f"cannot evaluate {type(obj).__name__} as the {role}",
                       hint="pass a model spec or directory, a LoadedModel, or a (model, tokenizer) pair")


def _heldout_fraction(student: Any) -> float:
    path = Path(str(student)) / "distill_config.json" if isinstance(student, (str, Path)) else None
    if path is not None and path.is_file():
        return float(json.loads(path.read_text()).get("heldout_fraction", 0.1))
    return 0.1


def heldout_records(store_or_records: Any, fraction: float, limit: int) -> list[dict[str, Any]]:
    """The held-out records of a store (or the given records as they are), at most ``limit``."""
    if isinstance(store_or_records, (str, Path)):
        _, held = split_heldout(load_records(store_or_records), fraction)
        if not held:
            raise DistillError(f"{store_or_records} has no held-out records at heldout_fraction={fraction}",
                               hint="harvest more records")
        return held[:limit]
    records = list(store_or_records)
    if not records:
        raise DistillError("no records to evaluate on", hint="pass a harvest store with successful records")
    return records[:limit]


@dataclass(frozen=True)
class _Scored:
    """A model's held-out sequences: (prompt + answer ids, prompt length) per record, and for a model
    with another tokenizer the teacher row aligned with each answer position (-1: none)."""

    seqs: list[tuple[list[int], int]]
    teacher_rows: list[tuple[int, ...]] | None
    teacher_tokens: int                # teacher answer tokens the sequences describe (perplexity's unit)


def _sequences(tokenizer: Any, records: Sequence[dict[str, Any]], use_ids: bool,
               teacher_tokenizer: Any = None) -> _Scored:
    """The held-out answers in ``tokenizer``'s tokens: the teacher's own ids when it matches, else the
    teacher's answer text (its ids decoded by ``teacher_tokenizer``, or the completion) re-tokenised."""
    seqs, rows, n_teacher = [], [], 0
    mapper = TokenMapper(tokenizer) if use_ids else None
    t_mapper = TokenMapper(teacher_tokenizer) if teacher_tokenizer is not None and not use_ids else None
    for rec in records:
        prompt = encode_prompt(tokenizer, prompt_messages(rec))
        answer = teacher_answer_ids(rec, mapper) if use_ids else None
        aligned: tuple[int, ...] = ()
        if answer is None:
            t_ids = teacher_answer_ids(rec, t_mapper) if t_mapper is not None else None
            if t_ids:
                al = align_by_offsets(teacher_tokenizer, t_ids, tokenizer)
                answer, aligned = list(al.student_ids), al.teacher_row
            else:
                answer = list(tokenizer(rec["completion"], add_special_tokens=False)["input_ids"])
        if answer:
            seqs.append((prompt + answer, len(prompt)))
            rows.append(aligned)
            n_teacher += len(rec.get("token_ids") or rec.get("tokens") or answer)
    return _Scored(seqs, rows if t_mapper is not None else None, n_teacher)


def _pieces_agree(a: str, b: str) -> bool:
    """Two next-token predictions of different tokenizers agree when one's text begins the other's."""
    a, b = a.strip() or a, b.strip() or b
    return bool(a) and bool(b) and (a.startswith(b) or b.startswith(a))


@torch.no_grad()
def answer_scores(model: Any, seqs: Sequence[tuple[list[int], int]], pad_id: int,
                  batch_size: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per sequence: the negative log-likelihood and the argmax prediction at each answer token."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(seqs), batch_size):
        batch = seqs[start:start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for i, (ids, _) in enumerate(batch):
            input_ids[i, :len(ids)] = torch.tensor(ids)
            attention[i, :len(ids)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float().cpu()
        for i, (ids, p) in enumerate(batch):
            pred = logits[i, p - 1:len(ids) - 1]
            target = torch.tensor(ids[p:])
            nll = -torch.log_softmax(pred, dim=-1).gather(-1, target[:, None])[:, 0]
            out.append((nll, pred.argmax(-1)))
    return out


STOP_STRINGS = ("\nUser:", "\nSystem:")
"""Where a reply ends for a model prompted in the plain format (a base model writes the next turn)."""


@dataclass(frozen=True)
class TaskReplies:
    replies: list[str]
    generated_tokens: int
    seconds: float


@torch.no_grad()
def answer_tasks(model: Any, tokenizer: Any, items: Sequence[TaskItem], *, max_new_tokens: int = 24,
                 batch_size: int = 16, task: Any = None) -> TaskReplies:
    """Greedy replies of ``model`` to the task prompts (its chat template, else the plain format), cut
    at :data:`STOP_STRINGS`, with the decoding speed."""
    import time

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    replies: list[str] = []
    generated, seconds = 0, 0.0
    for start in range(0, len(items), batch_size):
        batch = [encode_prompt(tokenizer, [{"role": "user", "content": it.prompt}])
                 for it in items[start:start + batch_size]]
        width = max(map(len, batch))
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for i, ids in enumerate(batch):                      # left padding for generation
            input_ids[i, width - len(ids):] = torch.tensor(ids)
            attention[i, width - len(ids):] = 1
        t0 = time.perf_counter()
        out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                             max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
        seconds += time.perf_counter() - t0
        new = out[:, width:]
        generated += int(new.numel())
        for text in tokenizer.batch_decode(new, skip_special_tokens=True):
            cut = min([text.find(s) for s in STOP_STRINGS if s in text] or [len(text)])
            replies.append(text[:cut])
        if task is not None:
            task.advance(len(batch))
    return TaskReplies(replies, generated, seconds)


def _task_scores(items: Sequence[TaskItem],
                 replies: Sequence[str]) -> tuple[float, tuple[tuple[str, float], ...], float]:
    hits: dict[str, list[bool]] = {}
    for item, reply in zip(items, replies):
        hits.setdefault(item.category, []).append(score_answer(item, reply))
    every = [h for v in hits.values() for h in v]
    follows = sum(follows_instruction(item, reply) for item, reply in zip(items, replies)) / len(items)
    return sum(every) / len(every), tuple((c, sum(v) / len(v)) for c, v in hits.items()), follows


def evaluate(student: Any, teacher: Any, store_or_records: Any, *, baseline: Any = None,
             others: Sequence[tuple[str, Any]] = (), heldout_fraction: float | None = None, max_records: int = 64,
             tasks: Sequence[TaskItem] | None = None, max_new_tokens: int = 24, batch_size: int = 4,
             teacher_tokenizer: Any = None, settings: Any = None, progress: Progress | None = None) -> EvalReport:
    """Compare ``student`` with ``teacher`` on held-out teacher answers and the built-in tasks.

    ``student``/``teacher``/``baseline``: a model spec or HF directory, a ``LoadedModel``, or a
    ``(model, tokenizer)`` pair. ``baseline`` (e.g. the student's base model before training) is scored
    as role ``base``; ``others`` are more ``(role, model)`` pairs (e.g. ``("sft", dir)``), scored between
    them. ``store_or_records``: a harvest store (its held-out split is used, with the student's
    ``heldout_fraction`` unless given) or a list of records scored as is.

    Perplexity is ``exp(total NLL of the teacher's answers / teacher answer tokens)``: the probability a
    model gives the answer *text*, per teacher token, so models with other tokenizers are comparable
    (for the teacher and students sharing its tokenizer it is the usual per-token perplexity). Top-1
    agreement is exact for a shared tokenizer; across tokenizers it is measured at character-aligned
    positions, where the two predicted pieces agree when one's text begins the other's.
    """
    fraction = heldout_fraction if heldout_fraction is not None else _heldout_fraction(student)
    records = heldout_records(store_or_records, fraction, max_records)
    items = tuple(tasks) if tasks is not None else builtin_tasks()
    entries = [("teacher", teacher)] + ([("base", baseline)] if baseline is not None else []) + list(others) \
        + [("student", student)]
    reporter = ensure_progress(progress)
    teacher_preds: list[torch.Tensor] | None = None
    teacher_speed: float | None = None
    results, n_tokens = [], 0
    t_tok = teacher_tokenizer
    for role, obj in entries:
        m = _as_scorable(obj, role, settings)
        m.model.eval()
        if role == "teacher" and t_tok is None:
            t_tok = m.tokenizer
        use_ids = check_tokenizer(m.tokenizer, records).compatible
        pad = m.tokenizer.pad_token_id if m.tokenizer.pad_token_id is not None else m.tokenizer.eos_token_id
        scored = _sequences(m.tokenizer, records, use_ids, None if use_ids else t_tok)
        with reporter.task(f"scoring {role} answers", total=len(records)) as task:
            scores = answer_scores(m.model, scored.seqs, pad or 0, batch_size)
            task.advance(len(records))
        nll = torch.cat([s[0] for s in scores])
        preds = [s[1] for s in scores]
        agreement = None
        if role == "teacher":
            teacher_preds = preds if use_ids else None
            n_tokens = scored.teacher_tokens
        elif teacher_preds is not None:
            agreement = _agreement(preds, teacher_preds, scored, m.tokenizer, t_tok, use_ids)
        with reporter.task(f"{role} on {len(items)} tasks", total=len(items)) as task:
            answered = answer_tasks(m.model, m.tokenizer, items, max_new_tokens=max_new_tokens, task=task)
        accuracy, by_cat, follows = _task_scores(items, answered.replies)
        speed = answered.generated_tokens / answered.seconds if answered.seconds > 0 else 0.0
        if role == "teacher":
            teacher_speed = speed
        results.append(ModelEval(
            name=m.name, role=role, parameters=count_parameters(m.model),
            perplexity=float(math.exp(nll.sum() / max(1, scored.teacher_tokens))),
            top1_agreement=agreement, task_accuracy=accuracy, task_accuracy_by_category=by_cat,
            teacher_tokens=m.train_info.get("teacher_tokens"), train_seconds=m.train_info.get("seconds"),
            instruction_following=follows, generation_tokens_per_second=round(speed, 1),
            speed_vs_teacher=None if role == "teacher" or not teacher_speed else round(speed / teacher_speed, 3)))
        if isinstance(obj, (str, Path)):
            del m                                   # one loaded model at a time
    return EvalReport(tuple(results), len(records), n_tokens, len(items))


def _agreement(preds: list[torch.Tensor], teacher_preds: list[torch.Tensor], scored: _Scored, tokenizer: Any,
               teacher_tokenizer: Any, use_ids: bool) -> float | None:
    if use_ids:
        if [len(p) for p in preds] != [len(p) for p in teacher_preds]:
            return None
        return float((torch.cat(preds) == torch.cat(teacher_preds)).float().mean())
    if scored.teacher_rows is None or len(preds) != len(teacher_preds):
        return None
    hits = total = 0
    for pred, t_pred, rows in zip(preds, teacher_preds, scored.teacher_rows):
        for j, i in enumerate(rows[:len(pred)]):
            if 0 <= i < len(t_pred):
                total += 1
                hits += _pieces_agree(tokenizer.decode([int(pred[j])]), teacher_tokenizer.decode([int(t_pred[i])]))
    return hits / total if total else None
