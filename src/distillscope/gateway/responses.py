"""Render generations as OpenAI-shaped bodies and stream chunks (chat and legacy completions)."""

from __future__ import annotations

import json
from typing import Any, Iterator

from distillscope.gateway.generation import Call, GeneratedChoice, GenerationOutput, TokenLogprob


def _token(tok_id: int, text: str, as_ids: bool) -> str:
    return f"token_id:{tok_id}" if as_ids else text


def _chat_entry(lp: TokenLogprob, as_ids: bool, k: int) -> dict[str, Any]:
    tok = _token(lp.token_id, lp.token, as_ids)
    return {
        "token": tok, "logprob": lp.logprob, "bytes": list(tok.encode("utf-8")),
        "top_logprobs": [{"token": (t := _token(alt.token_id, alt.token, as_ids)), "logprob": alt.logprob,
                          "bytes": list(t.encode("utf-8"))} for alt in lp.top[:k]],
    }


def _completion_logprobs(choice: GeneratedChoice, as_ids: bool, k: int, offset0: int = 0) -> dict[str, Any]:
    tokens, offsets, pos = [], [], offset0
    for lp, piece in zip(choice.logprobs or (), choice.pieces):
        tokens.append(_token(lp.token_id, lp.token, as_ids))
        offsets.append(pos)
        pos += len(piece)
    return {
        "tokens": tokens,
        "token_logprobs": [lp.logprob for lp in choice.logprobs or ()],
        "top_logprobs": [{_token(a.token_id, a.token, as_ids): a.logprob for a in lp.top[:k]}
                         for lp in choice.logprobs or ()] if k else None,
        "text_offset": offsets,
    }


def usage(out: GenerationOutput) -> dict[str, int]:
    completion = sum(c.completion_tokens for c in out.choices)
    return {"prompt_tokens": out.prompt_tokens, "completion_tokens": completion,
            "total_tokens": out.prompt_tokens + completion}


def chat_body(call: Call, out: GenerationOutput) -> dict[str, Any]:
    req = call.request
    as_ids, k = req.return_tokens_as_token_ids, req.top_k_logprobs()
    choices = []
    for i, c in enumerate(out.choices):
        logprobs = None
        if req.logprobs and c.logprobs is not None:
            logprobs = {"content": [_chat_entry(lp, as_ids, k) for lp in c.logprobs]}
        choices.append({"index": i, "message": {"role": "assistant", "content": c.text},
                        "logprobs": logprobs, "finish_reason": c.finish_reason})
    return {"id": f"chatcmpl-{call.request_id}", "object": "chat.completion", "created": call.created,
            "model": call.model, "choices": choices, "usage": usage(out),
            "system_fingerprint": out.system_fingerprint}


def completion_body(call: Call, outs: list[GenerationOutput]) -> dict[str, Any]:
    """``outs``: one output per prompt, each with ``n`` choices (index = prompt * n + j)."""
    req = call.request
    as_ids, k = req.return_tokens_as_token_ids, req.top_k_logprobs()
    choices = []
    for out in outs:
        for c in out.choices:
            text = (out.prompt_text + c.text) if req.echo else c.text
            logprobs = None
            if req.logprobs is not None and c.logprobs is not None:
                logprobs = _completion_logprobs(c, as_ids, k, len(out.prompt_text) if req.echo else 0)
            choices.append({"index": len(choices), "text": text, "logprobs": logprobs,
                            "finish_reason": c.finish_reason})
    prompt_tokens = sum(o.prompt_tokens for o in outs)
    completion_tokens = sum(c.completion_tokens for o in outs for c in o.choices)
    return {"id": f"cmpl-{call.request_id}", "object": "text_completion", "created": call.created,
            "model": call.model, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
            "system_fingerprint": outs[0].system_fingerprint if outs else None}


def _chat_chunk(call: Call, choices: list[dict[str, Any]], fingerprint: str | None) -> dict[str, Any]:
    return {"id": f"chatcmpl-{call.request_id}", "object": "chat.completion.chunk", "created": call.created,
            "model": call.model, "system_fingerprint": fingerprint, "choices": choices}


def wants_usage(call: Call) -> bool:
    """``stream_options.include_usage``: a last chunk with no choices and the usage."""
    options = call.request.stream_options
    return options is not None and bool(options.include_usage)


def chat_role_chunk(call: Call, index: int, fingerprint: str | None) -> dict[str, Any]:
    return _chat_chunk(call, [{"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                               "finish_reason": None}], fingerprint)


def chat_token_chunk(call: Call, index: int, piece: str, logprob: TokenLogprob | None,
                     fingerprint: str | None) -> dict[str, Any]:
    """One token's chunk: its text piece (may be empty) and, when asked for, its log-prob entry."""
    req = call.request
    entry = None
    if req.logprobs and logprob is not None:
        entry = {"content": [_chat_entry(logprob, req.return_tokens_as_token_ids, req.top_k_logprobs())]}
    return _chat_chunk(call, [{"index": index, "delta": {"content": piece}, "logprobs": entry,
                               "finish_reason": None}], fingerprint)


def chat_finish_chunk(call: Call, index: int, finish_reason: str, fingerprint: str | None) -> dict[str, Any]:
    return _chat_chunk(call, [{"index": index, "delta": {}, "logprobs": None, "finish_reason": finish_reason}],
                       fingerprint)


def usage_chunk(call: Call, prompt_tokens: int, completion_tokens: int, fingerprint: str | None) -> dict[str, Any]:
    counts = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
              "total_tokens": prompt_tokens + completion_tokens}
    if call.endpoint == "chat":
        return {**_chat_chunk(call, [], fingerprint), "usage": counts}
    return {**_completion_base(call), "choices": [], "usage": counts}


def chat_chunks(call: Call, out: GenerationOutput) -> Iterator[dict[str, Any]]:
    """Chunks of a finished generation: role, one chunk per token, finish, optional usage."""
    fp = out.system_fingerprint
    for i, c in enumerate(out.choices):
        yield chat_role_chunk(call, i, fp)
        for t, piece in enumerate(c.pieces):
            yield chat_token_chunk(call, i, piece, c.logprob_at(t), fp)
        yield chat_finish_chunk(call, i, c.finish_reason, fp)
    if wants_usage(call):
        yield usage_chunk(call, out.prompt_tokens, sum(c.completion_tokens for c in out.choices), fp)


def _completion_base(call: Call) -> dict[str, Any]:
    return {"id": f"cmpl-{call.request_id}", "object": "text_completion", "created": call.created,
            "model": call.model}


def completion_text_chunk(call: Call, index: int, text: str, *, logprob: TokenLogprob | None = None,
                          finish_reason: str | None = None) -> dict[str, Any]:
    """A legacy-completion chunk: echoed prompt, one token's piece (with its log-probs) or the finish."""
    req = call.request
    logprobs = None
    if req.logprobs is not None and logprob is not None:
        one = GeneratedChoice(text, "", 1, (logprob,), (text,))
        logprobs = _completion_logprobs(one, req.return_tokens_as_token_ids, req.top_k_logprobs())
    return {**_completion_base(call), "choices": [{"index": index, "text": text, "logprobs": logprobs,
                                                   "finish_reason": finish_reason}]}


def completion_chunks(call: Call, outs: list[GenerationOutput]) -> Iterator[dict[str, Any]]:
    index = 0
    for out in outs:
        for c in out.choices:
            if call.request.echo and out.prompt_text:
                yield completion_text_chunk(call, index, out.prompt_text)
            for t, piece in enumerate(c.pieces):
                yield completion_text_chunk(call, index, piece, logprob=c.logprob_at(t))
            yield completion_text_chunk(call, index, "", finish_reason=c.finish_reason)
            index += 1
    if wants_usage(call):
        yield usage_chunk(call, sum(o.prompt_tokens for o in outs),
                          sum(c.completion_tokens for o in outs for c in o.choices), None)


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line (``[DONE]`` passes as a string)."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n".encode("utf-8")
