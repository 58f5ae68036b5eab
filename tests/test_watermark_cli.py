"""``distillscope watermark keygen | show | detect`` end to end, including bad input."""

from __future__ import annotations

import json
import os
import stat

import pytest

from distillscope.cli import main
from distillscope.watermark import WatermarkKey, make_scheme


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_keygen_writes_a_private_key_prints_only_its_id_and_refuses_to_overwrite(isolated_home, capsys):
    assert main(["watermark", "keygen"]) == 0
    out = capsys.readouterr().out
    path = isolated_home / "watermark.key"
    key = WatermarkKey.load_file(path)
    assert key.key_id in out and key.secret.hex() not in out
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert main(["watermark", "keygen"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and len(_lines(err)) == 1
    assert WatermarkKey.load_file(path) == key
    assert main(["watermark", "keygen", "--force"]) == 0
    assert WatermarkKey.load_file(path) != key


def test_show_prints_the_scheme_and_key_id_never_the_key(isolated_home, capsys):
    key = WatermarkKey.generate()
    key.save(isolated_home / "watermark.key")
    assert main(["watermark", "show", "--scheme", "gumbel"]) == 0
    out = capsys.readouterr().out
    assert key.key_id in out and "gumbel" in out and key.secret.hex() not in out


def test_missing_or_malformed_key_is_one_line(isolated_home, tmp_path, capsys, monkeypatch):
    texts = tmp_path / "t.txt"
    texts.write_text("hello there\n")
    assert main(["watermark", "detect", str(texts)]) == 2
    err = capsys.readouterr().err
    assert "no watermark key file" in err and "keygen" in err and len(_lines(err)) == 1
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_KEY", "not-a-key")
    assert main(["watermark", "detect", str(texts)]) == 2
    err = capsys.readouterr().err
    assert "not a watermark key" in err and "not-a-key" not in err and "Traceback" not in err


@pytest.fixture
def key_file(isolated_home):
    key = WatermarkKey(bytes(range(32)))
    key.save(isolated_home / "watermark.key")
    return key


def test_detect_token_ids_jsonl_as_json_and_jsonl(key_file, tmp_path, capsys):
    detector = make_scheme("kgw", key_file).detector()
    chain = [7]                                                   # each token green after its predecessor
    while len(chain) < 41:
        chain.append(next(t for t in range(100, 5000)
                          if t not in chain and detector.score_pairs([((chain[-1],), t)]).score == 1.0))
    rows = [{"token_ids": chain, "prompt_ids": [1, 2]},
            {"token_ids": list(range(100, 160))}]
    src = tmp_path / "ids.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["watermark", "detect", str(src), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["watermark"]["key_id"] == key_file.key_id and "secret" not in json.dumps(doc)
    first, second = doc["results"]
    assert first["n_scored"] == 41 and first["detected"] and first["p_value"] < 1e-10
    assert not second["detected"] and second["n_scored"] == 59
    out = tmp_path / "res.jsonl"
    assert main(["watermark", "detect", str(src), "--format", "jsonl", "--out", str(out)]) == 0
    assert [json.loads(line)["n_scored"] for line in out.read_text().splitlines()] == [41, 59]


def test_detect_bad_inputs_fail_cleanly_without_output(key_file, tmp_path, capsys):
    out = tmp_path / "never.jsonl"
    cases = {
        "empty.txt": ("", "holds no texts"),
        "bad.jsonl": ('{"text": "fine"}\n{"text": \n', "line 2 is not valid JSON"),
        "nofield.jsonl": ('{"prompt": "x"}\n', "record 1 has no text or completion field"),
        "blank.jsonl": ('{"text": "   "}\n', "record 1 has an empty text"),
        "ids.jsonl": ('{"token_ids": [1, -2]}\n', "record 1: token_ids[1] = -2"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_text(content)
        code = main(["watermark", "detect", str(path), "--format", "jsonl", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(_lines(err)) == 1, (name, err)
        assert not out.exists()
    assert main(["watermark", "detect", str(tmp_path / "missing.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["watermark", "detect", str(tmp_path / "bad.jsonl"), "--scheme", "nope"]) == 2
    assert "unknown watermark scheme" in capsys.readouterr().err


@pytest.mark.slow
def test_detect_text_end_to_end_with_the_teacher_tokenizer(key_file, tiny_loaded, tmp_path, capsys):
    from distillscope.teacher import SamplingParams, Teacher

    scheme = make_scheme("kgw", key_file)
    params = SamplingParams(max_new_tokens=60, seed=0)
    prompts = ["Tell me about rivers.", "What is a prime number?", "Name three colours."]
    marked = Teacher(tiny_loaded, watermark=scheme).generate(prompts, params, watermark=True)
    plain = Teacher(tiny_loaded, watermark=scheme).generate(prompts, params, watermark=False)
    src = tmp_path / "answers.jsonl"
    src.write_text("".join(json.dumps({"completion": g.text}) + "\n" for g in [*marked, *plain]))
    assert main(["watermark", "detect", str(src), "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["detected"] for r in rows] == [True] * 3 + [False] * 3, rows
    assert main(["watermark", "detect", str(src)]) == 0          # the table
    table = capsys.readouterr().out
    assert key_file.key_id in table and "yes" in table and "no" in table


def test_detect_reads_jsonl_from_stdin(key_file, monkeypatch, capsys):
    import io

    rows = [{"token_ids": list(range(10, 40))}, {"token_ids": [3, 4]}]
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(json.dumps(r) + "\n" for r in rows)))
    assert main(["watermark", "detect", "-", "--input-format", "jsonl", "--format", "jsonl"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["n_scored"] for r in out] == [29, 1] and all(r["key_id"] == key_file.key_id for r in out)
