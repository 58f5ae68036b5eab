"""Reading mode for a suspect with another tokenizer (open weights, foreign token ids).

Same-tokenizer reading mode pairs the watermark window before position t with the suspect's
predicted token at t. A rival's model almost always has its own tokenizer, so here the
prediction is made in *text*:

1. the prefix of our watermarked answer before our token t is decoded to a string;
2. the suspect reads (its chat-formatted prompt +) that string, encoded with *its* tokenizer on its
   own — never the tokenization of the whole answer, whose token boundaries can depend on the
   characters after the prefix, i.e. on the very token being predicted;
3. each of its top-k next tokens is continued greedily for a few more tokens (so that the piece of
   text covers a whole token of ours), decoded, appended to the prefix string and re-encoded with
   *our* tokenizer; when that keeps our first t tokens, the token after them is the suspect's
   prediction of our token t (else the position gives no prediction).

Every step is a deterministic function of the prompt, the prefix before t and the suspect's
weights, exactly what same-tokenizer reading mode uses, so the same selection rules
(:func:`~distillscope.audit.radioactivity.select_reading_pairs`: each window scored only at its first
appearance in everything fed, tuples deduplicated) keep the binomial tail exact under H0 — the
suspect is independent of our key. Positions that give no prediction are decided from the past
alone, so skipping them selects nothing on the watermark.

Cost: one forward pass over each answer (the suspect's own encoding of it) serves every prefix
whose separate encoding is a prefix of it — the usual case at word boundaries; the others (mostly
mid-word boundaries) get their own forward pass, batched. The output layer is applied only at the
positions read. The greedy continuation costs one batched ``generate`` call per scored position and
branch (``continuation - 1`` new tokens each). See ``docs/audit.md`` for measured costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from distillscope.audit.radioactivity import TokenText, first_appearances
from distillscope.progress import Progress, ensure_progress


@dataclass(frozen=True)
class CrossText:
    """One watermarked text prepared for a foreign-tokenizer suspect."""

    ours: TokenText                  # our token ids: the fed prompt (re-encoded) and the answer
    suspect_prompt: tuple[int, ...]  # the prompt as the suspect reads it (its ids)


@dataclass
class _Job:
    """A suspect token sequence and the positions whose next-token predictions are needed."""

    ids: list[int]
    wanted: dict[int, list[tuple[int, int]]]  # position -> [(text index, answer position t)]


def prepare_texts(records: Sequence[tuple[str, str]], ours: Any, suspect_loaded: Any) -> list[CrossText]:
    """(prompt, answer) records as :class:`CrossText`: our ids for the windows, the suspect's for reading."""
    from distillscope.teacher import Teacher

    view, tok = Teacher(suspect_loaded), suspect_loaded.tokenizer
    out = []
    for prompt, answer in records:
        answer_ids = tuple(int(i) for i in ours.encode(answer, add_special_tokens=False))
        if not answer_ids:
            continue
        if prompt:
            fed = list(view.encode_prompt(prompt))
        else:
            bos = getattr(tok, "bos_token_id", None)
            fed = [int(bos)] if bos is not None else []
        fed_text = tok.decode(fed, skip_special_tokens=True)
        prompt_ids = tuple(int(i) for i in ours.encode(fed_text, add_special_tokens=False)) if fed_text else ()
        out.append(CrossText(TokenText(prompt_ids, answer_ids), tuple(fed)))
    return out


def _jobs(texts: Sequence[CrossText], ours: Any, tok: Any, max_length: int,
          wanted: Sequence[set[int]] | None) -> tuple[list[_Job], list[list[str]]]:
    """The forward passes needed, and each text's decoded answer prefixes (``prefixes[i][t]``)."""
    jobs: list[_Job] = []
    prefixes: list[list[str]] = []
    for i, ct in enumerate(texts):
        answer = ct.ours.answer_ids
        pref = [ours.decode(answer[:t]) if t else "" for t in range(len(answer))]
        prefixes.append(pref)
        encoded = tok(pref[1:], add_special_tokens=False)["input_ids"] if len(pref) > 1 else []
        seqs = [list(ct.suspect_prompt)] + [list(ct.suspect_prompt) + list(e) for e in encoded]
        full = list(ct.suspect_prompt) + list(tok.encode(ours.decode(answer), add_special_tokens=False))
        main = _Job(full[:max_length], {})
        extra: dict[tuple[int, ...], _Job] = {}
        for t, seq in enumerate(seqs):
            if not seq or len(seq) > max_length or (wanted is not None and t not in wanted[i]):
                continue            # nothing to condition on, past the reading window, or never scored
            pos = len(seq) - 1
            if seq == full[:len(seq)]:
                main.wanted.setdefault(pos, []).append((i, t))
            else:
                extra.setdefault(tuple(seq), _Job(seq, {})).wanted.setdefault(pos, []).append((i, t))
        jobs += [main, *extra.values()]
    return [j for j in jobs if j.wanted], prefixes


def _topk_at(loaded: Any, jobs: Sequence[_Job], k: int, batch_size: int, progress: Progress) -> list[dict[int, list[int]]]:
    """Top-k next tokens of the suspect at the wanted positions of each job (output layer applied there only)."""
    import torch

    model = loaded.model
    head = model.get_output_embeddings()
    order = sorted(range(len(jobs)), key=lambda j: len(jobs[j].ids))  # similar lengths share a batch
    results: dict[int, dict[int, list[int]]] = {}
    with ensure_progress(progress).task("suspect reads our texts (cross-tokenizer)", total=len(jobs)) as task, \
            loaded.lock, torch.inference_mode():
        for b in range(0, len(order), batch_size):
            chunk = [jobs[j] for j in order[b:b + batch_size]]
            width = max(len(j.ids) for j in chunk)
            ids = torch.full((len(chunk), width), loaded.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, job in enumerate(chunk):
                ids[row, :len(job.ids)] = torch.tensor(job.ids)
                mask[row, :len(job.ids)] = 1
            hidden = model.base_model(input_ids=ids.to(model.device),
                                      attention_mask=mask.to(model.device)).last_hidden_state
            for row, (job, index) in enumerate(zip(chunk, order[b:b + batch_size])):
                positions = sorted(job.wanted)
                logits = head(hidden[row, positions]).float()
                top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices.cpu().tolist()
                results[index] = dict(zip(positions, top))
            task.advance(len(chunk))
    return [results[j] for j in range(len(jobs))]


def _continue(loaded: Any, seqs: Sequence[list[int]], steps: int, batch_size: int,
              progress: Progress) -> list[list[int]]:
    """Greedy continuation of each sequence by ``steps`` tokens (stopping at EOS), left-padded batches."""
    import torch
    from transformers import GenerationConfig

    tok, model = loaded.tokenizer, loaded.model
    eos = tok.eos_token_id
    config = GenerationConfig(max_new_tokens=steps, do_sample=False, pad_token_id=loaded.pad_token_id,
                              eos_token_id=eos)
    out: dict[int, list[int]] = {}
    order = sorted(range(len(seqs)), key=lambda j: len(seqs[j]))
    with ensure_progress(progress).task("suspect continues each prefix", total=len(seqs)) as task, loaded.lock, \
            torch.inference_mode():
        for b in range(0, len(order), batch_size):
            rows = order[b:b + batch_size]
            width = max(len(seqs[j]) for j in rows)
            ids = torch.full((len(rows), width), loaded.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, j in enumerate(rows):
                ids[r, width - len(seqs[j]):] = torch.tensor(seqs[j])
                mask[r, width - len(seqs[j]):] = 1
            gen = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                 generation_config=config)[:, width:].cpu().tolist()
            for r, j in enumerate(rows):
                cont = gen[r]
                out[j] = cont[:cont.index(eos)] if eos is not None and eos in cont else cont
            task.advance(len(rows))
    return [out[j] for j in range(len(seqs))]


def cross_tokenizer_predictions(texts: Sequence[CrossText], ours: Any, suspect_loaded: Any, k: int = 1, *,
                                continuation: int = 4, batch_size: int = 8, max_length: int = 1024,
                                context_width: int | None = None,
                                progress: Progress | None = None) -> list[list[tuple[int, ...]]]:
    """``out[i][t]``: the suspect's top-k predictions of our token t of text i, as our token ids.

    Each of the suspect's top-k next tokens is continued greedily for ``continuation - 1`` more tokens
    so that the text piece covers a whole token of ours (a suspect with a finer vocabulary would
    otherwise predict only the start of it); ``continuation=1`` reads only the next token (cheapest,
    enough when the suspect's tokens are as long as ours). Empty where the position gives no
    prediction (module docstring). Ready for
    :func:`~distillscope.audit.radioactivity.select_reading_pairs` with ``[t.ours for t in texts]``.
    With ``context_width``, only the positions that selection can score (first appearances of their
    window, :func:`~distillscope.audit.radioactivity.first_appearances`) are predicted — the same
    tuples for a fraction of the cost.
    """
    if continuation < 1:
        raise ValueError(f"continuation={continuation!r} must be at least 1")
    progress = ensure_progress(progress)
    tok = suspect_loaded.tokenizer
    wanted = first_appearances([t.ours for t in texts], context_width) if context_width else None
    jobs, prefixes = _jobs(texts, ours, tok, max_length, wanted)
    tops = _topk_at(suspect_loaded, jobs, k, batch_size, progress)
    branches: list[tuple[int, int, list[int], int]] = []       # (text, t, context ids, first token)
    for job, top in zip(jobs, tops):
        for pos, places in job.wanted.items():
            for i, t in places:
                branches += [(i, t, job.ids[: pos + 1], int(s)) for s in top[pos]]
    eos = tok.eos_token_id
    seqs = [ctx + [s] for _, _, ctx, s in branches]
    if continuation > 1:
        live = [j for j, (_, _, _, s) in enumerate(branches) if s != eos]
        # generate's per-call overhead dominates for small suspects: wide batches (sequences are short)
        more = _continue(suspect_loaded, [seqs[j] for j in live], continuation - 1, max(batch_size, 32), progress)
        for j, extra in zip(live, more):
            seqs[j] = seqs[j] + extra
    found: dict[tuple[int, int], list[int]] = {}
    for (i, t, ctx, _), seq in zip(branches, seqs):
        base = tok.decode(ctx, skip_special_tokens=True)
        text = tok.decode(seq, skip_special_tokens=True)
        if not text.startswith(base) or len(text) == len(base):
            continue            # special token (EOS) or a decode that rewrites the past
        answer = texts[i].ours.answer_ids
        again = ours.encode(prefixes[i][t] + text[len(base):], add_special_tokens=False)
        if len(again) > t and list(again[:t]) == list(answer[:t]):
            found.setdefault((i, t), []).append(int(again[t]))
    preds: list[list[tuple[int, ...]]] = [[() for _ in ct.ours.answer_ids] for ct in texts]
    for (i, t), ys in found.items():
        preds[i][t] = tuple(dict.fromkeys(ys))
    return preds
