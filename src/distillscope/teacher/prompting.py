"""Turning prompts into token ids: the chat template, or a documented fallback.

* A chat model (its tokenizer has a chat template) gets ``apply_chat_template`` with the
  generation prompt appended.
* A model without a chat template (e.g. the Gemma-3-270M base model) gets the *fallback chat
  format* for message lists (and for strings when ``chat=True`` is asked for)::

      System: {system}\\n          (only when there is a system message)
      User: {user}\\n
      Assistant: {assistant}\\n    (earlier turns)
      User: {user}\\n
      Assistant:

* ``chat=False`` (completion style) tokenizes a string prompt as raw text, with the
  tokenizer's own special tokens (e.g. BOS).

``chat=None`` (the default) means: the chat template when there is one, else raw text for
strings and the fallback format for message lists.
"""

from __future__ import annotations

from typing import Any, Sequence

from distillscope.errors import InputDataError

_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}


def _messages(prompt: Any, where: str) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InputDataError(f"{where} is empty", hint="give every prompt some text")
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, Sequence) or not prompt:
        raise InputDataError(f"{where} is neither a string nor a non-empty list of chat messages",
                             hint='use "text" or [{"role": "user", "content": "..."}]')
    out = []
    for m in prompt:
        if not (isinstance(m, dict) and m.get("role") in _ROLES and isinstance(m.get("content"), str)):
            raise InputDataError(f"{where} has a malformed chat message {str(m)[:80]!r}",
                                 hint='each message needs "role" (system, user or assistant) and "content"')
        out.append({"role": m["role"], "content": m["content"]})
    if not any(m["content"].strip() for m in out):
        raise InputDataError(f"{where} has only empty messages", hint="give every prompt some text")
    return out


def fallback_chat_text(messages: Sequence[dict[str, str]]) -> str:
    """The plain-text chat format used for models without a chat template."""
    lines = [f"{_ROLES[m['role']]}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def encode_prompt(tokenizer: Any, prompt: Any, *, chat: bool | None = None, where: str = "prompt") -> list[int]:
    """Token ids for one prompt (a string or a list of chat messages)."""
    messages = _messages(prompt, where)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat is False or (chat is None and not has_template and isinstance(prompt, str)):
        if not isinstance(prompt, str):
            raise InputDataError(f"{where} is a list of chat messages but completion style (chat=False) was asked for",
                                 hint="pass plain-text prompts, or use chat mode")
        return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    if has_template:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(fallback_chat_text(messages), add_special_tokens=True)["input_ids"])
