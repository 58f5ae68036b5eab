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


def chat_chunks(call: Call, out: GenerationOutput) -> Iterator[dict[str, Any]]:
    """Chunks of a finished generation: role, one chunk per token, finish, optional usage."""
    req = call.request
    as_ids, k = req.return_tokens_as_token_ids, req.top_k_logprobs()
    fp = out.system_fingerprint
    for i, c in enumerate(out.choices):
        yield _chat_chunk(call, [{"index": i, "delta": {"role": "assistant", "content": ""},
                                  "logprobs": None, "finish_reason": None}], fp)
        for t, piece in enumerate(c.pieces):
            logprobs = None
            if req.logprobs and c.logprobs is not None and t < len(c.logprobs):
                logprobs = {"content": [_chat_entry(c.logprobs[t], as_ids, k)]}
            yield _chat_chunk(call, [{"index": i, "delta": {"content": piece}, "logprobs": logprobs,
                                      "finish_reason": None}], fp)
        yield _chat_chunk(call, [{"index": i, "delta": {}, "logprobs": None,
                                  "finish_reason": c.finish_reason}], fp)
    if req.stream_options is not None and req.stream_options.include_usage:
        chunk = _chat_chunk(call, [], fp)
        chunk["usage"] = usage(out)
        yield chunk


def completion_chunks(call: Call, outs: list[GenerationOutput]) -> Iterator[dict[str, Any]]:
    req = call.request
    as_ids, k = req.return_tokens_as_token_ids, req.top_k_logprobs()
    base = {"id": f"cmpl-{call.request_id}", "object": "text_completion", "created": call.created,
            "model": call.model}
    index = 0
    for out in outs:
        for c in out.choices:
            if req.echo and out.prompt_text:
                yield {**base, "choices": [{"index": index, "text": out.prompt_text, "logprobs": None,
                                            "finish_reason": None}]}
            for t, piece in enumerate(c.pieces):
                logprobs = None
                if req.logprobs is not None and c.logprobs is not None and t < len(c.logprobs):
                    one = GeneratedChoice(piece, c.finish_reason, 1, (c.logprobs[t],), (piece,))
                    logprobs = _completion_logprobs(one, as_ids, k)
                yield {**base, "choices": [{"index": index, "text": piece, "logprobs": logprobs,
                                            "finish_reason": None}]}
            yield {**base, "choices": [{"index": index, "text": "", "logprobs": None,
                                        "finish_reason": c.finish_reason}]}
            index += 1
    if req.stream_options is not None and req.stream_options.include_usage:
        prompt_tokens = sum(o.prompt_tokens for o in outs)
        completion_tokens = sum(c.completion_tokens for o in outs for c in o.choices)
        yield {**base, "choices": [], "usage": {"prompt_tokens": prompt_tokens,
                                                "completion_tokens": completion_tokens,
                                                "total_tokens": prompt_tokens + completion_tokens}}


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line (``[DONE]`` passes as a string)."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n".encode("utf-8")
