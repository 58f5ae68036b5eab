"""``distillscope generate`` end to end on the tiny model: rows, watermark, and one-line errors."""

from __future__ import annotations

import io
import json
import sys

import pytest

from distillscope.cli import main
from distillscope.settings import load_settings
from distillscope.watermark import WatermarkKey, scheme_from_settings

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FAST = ["--model", "tiny", "--max-new-tokens", "32", "--seed", "1"]


@pytest.fixture
def prompts_file(tmp_path):
    p = tmp_path / "prompts.txt"
    p.write_text("What is two plus two?\nName three colours.\n\nWrite a haiku about rain.\n")
    return p


@pytest.fixture
def key_env(monkeypatch):
    key = WatermarkKey(bytes(range(7, 39)))  # fixed: the outcome must not depend on a random key
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_KEY", key.secret.hex())
    return key


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "━" not in line]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_generate_watermarked_jsonl(prompts_file, tmp_path, key_env, capsys):
    out = tmp_path / "answers.jsonl"
    assert main(["generate", str(prompts_file), "--out", str(out), *FAST]) == 0
    rows = _rows(out)
    assert [r["prompt"] for r in rows] == ["What is two plus two?", "Name three colours.",
                                           "Write a haiku about rain."]
    assert all(set(r) >= {"prompt", "completion", "tokens", "finish_reason", "watermark_key_id"} for r in rows)
    assert all(r["watermark_key_id"] == key_env.key_id and r["finish_reason"] == "length" and r["tokens"] == 32
               for r in rows)
    detector = scheme_from_settings(load_settings()).detector(_tokenizer())
    # re-tokenised text of a random-init model: a strong but not perfect signal
    assert all(detector.detect_text(r["completion"]).p_value < 1e-3 for r in rows)
    text = out.read_text() + capsys.readouterr().err
    assert key_env.secret.hex() not in text, "the watermark key must never be written out"


def _tokenizer():
    from distillscope.teacher import load_tokenizer

    return load_tokenizer("tiny")


def test_generate_plain_from_stdin_to_stdout_is_reproducible(monkeypatch, capsys):
    def run():
        monkeypatch.setattr(sys, "stdin", io.StringIO('{"prompt": "Hi there"}\n{"messages": '
                                                      '[{"role": "user", "content": "Hello"}]}\n'))
        assert main(["generate", "-", "--format", "jsonl", "--no-watermark", *FAST]) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    first, second = run(), run()
    assert first == second and len(first) == 2
    assert first[0]["watermark_key_id"] is None and first[0]["model"] == "tiny:0"
    assert first[1]["prompt"] == [{"role": "user", "content": "Hello"}]


def test_generate_stop_string_and_greedy(prompts_file, tmp_path):
    out = tmp_path / "a.jsonl"
    assert main(["generate", str(prompts_file), "--out", str(out), "--no-watermark", "--temperature", "0",
                 *FAST]) == 0
    full = _rows(out)[0]["completion"]
    stop = full[len(full) // 2:len(full) // 2 + 2]
    assert main(["generate", str(prompts_file), "--out", str(out), "--no-watermark", "--temperature", "0",
                 "--stop", stop, *FAST]) == 0
    row = _rows(out)[0]
    assert row["finish_reason"] == "stop" and row["completion"] == full[:full.find(stop)]


@pytest.mark.parametrize("content,args,fragment", [
    (None, [], "does not exist"),
    ('{"prompt": "ok"}\n{"prompt": \n', ["--format", "jsonl"], "line 2 is not valid JSON"),
    ('{"prompt": "ok"}\n{"prompt": "   "}\n', ["--format", "jsonl"], "record 2 has an empty prompt"),
    ("", [], "holds no prompts"),
    ("ok\n", ["--format", "csvx"], "unknown --format 'csvx'"),
    ("ok\n", ["--model", "no-such-model"], "unknown model 'no-such-model'"),
    ("ok\n", ["--model", "tiny", "--dtype", "int4"], "unknown dtype 'int4'"),
    ("ok\n", ["--model", "tiny", "--top-p", "1.5"], "top_p=1.5"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, content, args, fragment):
    src = tmp_path / "in.txt"
    if content is not None:
        src.write_text(content)
    out = tmp_path / "out.jsonl"
    code = main(["generate", str(src), "--out", str(out), "--no-watermark", *args])
    assert code == 2
    assert fragment in _one_line_error(capsys)
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl*"))


def test_missing_key_tells_how_to_make_one(prompts_file, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    assert main(["generate", str(prompts_file), "--out", str(out), "--model", "tiny"]) == 2
    assert "distillscope watermark keygen" in _one_line_error(capsys)
    assert out.read_text() == "previous results\n", "a failed run must not touch the output file"


def test_wrong_key_is_rejected_without_echoing_it(prompts_file, monkeypatch, capsys):
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_KEY", "zz-not-a-key-secretvalue")
    assert main(["generate", str(prompts_file), "--model", "tiny"]) == 2
    line = _one_line_error(capsys)
    assert "watermark key" in line and "secretvalue" not in line


def test_generate_help_names_the_options(capsys):
    assert main(["generate", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--model", "--out", "--watermark", "--max-new-tokens", "--temperature", "--top-p", "--top-k",
                 "--seed", "--batch-size", "--dtype", "--device", "--format", "--stop"):
        assert flag in out
