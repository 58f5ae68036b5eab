"""The ask of a logged prompt: what both traffic forensics and the audit corpus read from the log."""

from __future__ import annotations

import json

from distillscope.records import last_user_text


def test_last_user_text_of_logged_chats_and_plain_prompts():
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"}, {"role": "user", "content": "second"}]
    assert last_user_text(json.dumps(chat)) == "second"
    parts = [{"role": "user", "content": [{"type": "text", "text": "Explain "}, {"type": "text", "text": "tides."}]}]
    assert last_user_text(json.dumps(parts)) == "Explain tides."
    assert last_user_text("Complete: the sky is") == "Complete: the sky is"
    assert last_user_text("[not json]") == "[not json]"
    assert last_user_text(json.dumps([{"role": "system", "content": "x"}])) == json.dumps([{"role": "system",
                                                                                            "content": "x"}])
    assert last_user_text(None) == "" and last_user_text("") == ""
