"""The audit end to end on tiny models: all three access modes, the report, and bad input.

A tiny watermarked teacher (``tiny:0``) answers 12 prompts; a tiny student (``tiny:1``) is fine-tuned
on those answers (the distiller); the control is an independent model (``tiny:2``) and ``tiny:3`` is
the passive test's reference. The student is audited as open weights; the endpoint and texts modes
are audited against a suspect that writes with our watermark, served over a local OpenAI-compatible
endpoint and written to a file.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import pytest
import torch

from distillscope.audit import AuditConfig, run_audit, write_report
from distillscope.errors import AuditError
from distillscope.watermark import WatermarkKey, make_scheme

PROMPTS = [f"Question {i}: tell me about topic number {i}." for i in range(12)]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _finetune(spec: str, prompts, answers, out_dir, settings, *, steps: int = 30, lr: float = 3e-3):
    """A few full-batch SFT steps on (prompt, answer) pairs; saves an HF model directory."""
    from distillscope.teacher import Teacher, load_model

    loaded = load_model(spec, settings=settings, dtype="float32")
    teacher = Teacher(loaded)
    seqs = [(teacher.encode_prompt(p), loaded.tokenizer.encode(a, add_special_tokens=False))
            for p, a in zip(prompts, answers)]
    width = max(len(p) + len(a) for p, a in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for r, (p, a) in enumerate(seqs):
        ids[r, :len(p) + len(a)] = torch.tensor(p + a)
        labels[r, len(p):len(p) + len(a)] = torch.tensor(a)
        mask[r, :len(p) + len(a)] = 1
    model = loaded.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(out_dir)
    loaded.tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def case(model_settings, tmp_path_factory):
    """Corpus, key, watermarked teacher, distilled student and control student (built once)."""
    from distillscope.teacher import SamplingParams, Teacher, load_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("audit-case")
    scheme = make_scheme("kgw", WatermarkKey(bytes(range(32))), gamma=0.25, delta=4.0, context_width=1)  # fixed: deterministic
    params = SamplingParams(max_new_tokens=32, temperature=1.0, top_k=50, seed=0)
    teacher = Teacher(load_model("tiny:0", settings=model_settings, dtype="float32"), watermark=scheme)
    answers = [g.text for g in teacher.generate(PROMPTS, params, watermark=True)]
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"prompt": p, "completion": a, "watermark_key_id": scheme.key.key_id}) + "\n"
                              for p, a in zip(PROMPTS, answers)))
    student = _finetune("tiny:1", PROMPTS, answers, root / "student", model_settings)
    from distillscope.audit import ZooCandidate, build_zoo

    zoo = build_zoo([ZooCandidate(f"local:tiny:{20 + i}", "scratch", "llama", "random init") for i in range(6)],
                    prompts=PROMPTS[:8], teacher_loaded=teacher.loaded,
                    reference_loaded=[load_model("tiny:3", settings=model_settings, dtype="float32")],
                    max_new_tokens=24, temperature=1.0, seed=0, settings=model_settings)
    return {"root": root, "scheme": scheme, "corpus": corpus, "student": student,
            "settings": model_settings, "zoo": zoo.save(root / "zoo.json")}


def _config(case, suspect: str, control: str | None = None, **kw) -> AuditConfig:
    base = dict(suspect=suspect, control=control or "local:tiny:2", corpus=str(case["corpus"]),
                teacher="tiny:0", references=("tiny:3",), max_new_tokens=32, temperature=0.0, min_window_df=1,
                identity_probes=False, zoo=str(case["zoo"]))
    base.update(kw)
    return AuditConfig(**base)


@pytest.mark.slow
def test_open_weights_student_is_detected_and_its_control_is_not(case, tmp_path):
    result = run_audit(_config(case, f"local:{case['student']}"), settings=case["settings"], scheme=case["scheme"])
    s_open, c_open = result.suspect.test("open"), result.control.test("open")
    assert s_open.ran and s_open.p_value < 1e-6, s_open
    assert c_open.ran and c_open.p_value > 1e-3, c_open
    assert result.verdict.label == "trained on our outputs", result.verdict.summary
    assert result.control.combined_p > 0.01
    html, js = write_report(result, tmp_path / "out.html")
    data = json.loads(js.read_text())
    assert data["verdict"]["label"] == "trained on our outputs"
    text = html.read_text()
    assert "<svg" in text and case["scheme"].key.key_id in text
    assert case["scheme"].key.secret.hex() not in text and case["scheme"].key.secret.hex() not in js.read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"']https?:", text)  # self-contained: nothing to fetch


def _serve(teacher):
    """A minimal OpenAI-compatible server for one in-process model, on 127.0.0.1 in a thread."""
    import uvicorn
    from fastapi import FastAPI

    from distillscope.teacher import SamplingParams

    app = FastAPI()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "suspect", "object": "model", "created": 0, "owned_by": "test"}]}

    @app.post("/v1/chat/completions")
    def chat(body: dict):
        params = SamplingParams(max_new_tokens=body.get("max_tokens", 32), temperature=body.get("temperature", 1.0),
                                seed=body.get("seed"))
        text = teacher.generate([body["messages"][-1]["content"]], params)[0].text
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "suspect",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}/v1"


@pytest.mark.slow
def test_endpoint_and_texts_modes_end_to_end(case, tmp_path):
    """A black-box suspect that writes with our watermark (the limit of a student that learned it fully)."""
    from distillscope.teacher import SamplingParams, Teacher, load_model

    marked = Teacher(load_model("tiny:0", settings=case["settings"], dtype="float32"), watermark=case["scheme"])
    server, url = _serve(marked)
    try:
        result = run_audit(_config(case, f"endpoint:{url}#suspect", temperature=1.0), settings=case["settings"],
                           scheme=case["scheme"])
    finally:
        server.should_exit = True
    assert result.suspect.test("open").status == "skipped" and "open weights" in result.suspect.test("open").note
    bb = result.suspect.test("blackbox")
    assert bb.ran and bb.n_scored >= 10 and bb.p_value < 1e-4, bb
    assert result.control.test("blackbox").p_value > 1e-3
    passive = result.suspect.test("passive")
    # the watermarked teacher itself is more teacher-like than every zoo model: the smallest zoo p-value
    assert passive.ran and passive.n_scored == 8 and passive.details["rank"] == 1, passive
    assert passive.p_value == pytest.approx(1 / 7) and "corroboration only" in passive.method
    assert result.verdict.label == "trained on our outputs", result.verdict.summary
    assert "corroboration only" in result.verdict.corroboration and "rank 1 of 7" in result.verdict.corroboration
    gens = marked.generate(PROMPTS, SamplingParams(max_new_tokens=32, temperature=1.0, seed=5))
    texts = tmp_path / "suspect.jsonl"
    texts.write_text("".join(json.dumps({"prompt": p, "completion": g.text}) + "\n" for p, g in zip(PROMPTS, gens)))
    result = run_audit(_config(case, f"texts:{texts}", tests=("blackbox", "passive")), settings=case["settings"],
                       scheme=case["scheme"])
    assert result.suspect.test("blackbox").p_value < 1e-4 and result.control.test("blackbox").p_value > 1e-3
    assert result.suspect.test("passive").ran and result.suspect.test("passive").n_scored == 8  # answers zoo prompts
    # texts that do not answer the zoo's prompts cannot be ranked against it: said, not silently dropped
    texts.write_text("".join(json.dumps({"prompt": p, "completion": g.text}) + "\n"
                             for p, g in zip(PROMPTS[8:], gens[8:])))
    result = run_audit(_config(case, f"texts:{texts}", tests=("blackbox", "passive")), settings=case["settings"],
                       scheme=case["scheme"])
    assert result.suspect.test("passive").status == "skipped"
    assert any("zoo" in p for p in result.verdict.problems)


@pytest.mark.slow
def test_samples_per_prompt_feed_the_blackbox_test_only(case):
    """``samples=3``: three sampled answers per prompt (seeds 0, 1, 2) for the black-box test, more
    scored tuples; the passive test answers the zoo's prompts with the zoo's sampling, unchanged."""
    kw = dict(tests=("blackbox", "passive"), temperature=1.0)
    one = run_audit(_config(case, f"local:{case['student']}", **kw), settings=case["settings"], scheme=case["scheme"])
    three = run_audit(_config(case, f"local:{case['student']}", samples=3, **kw), settings=case["settings"],
                      scheme=case["scheme"])
    for role in ("suspect", "control"):
        bb1, bb3 = getattr(one, role).test("blackbox"), getattr(three, role).test("blackbox")
        assert bb3.n_scored > bb1.n_scored, (role, bb1.n_scored, bb3.n_scored)
        assert getattr(three, role).test("passive").p_value == getattr(one, role).test("passive").p_value
    assert "3 per prompt, seeds 0..2" in three.suspect.test("blackbox").method
    assert three.reproducibility["config"]["samples"] == 3
    with pytest.raises(AuditError, match="samples=0"):
        _config(case, f"local:{case['student']}", samples=0)


@pytest.mark.slow
def test_wrong_key_says_control_shows_nothing_and_key_does_not_match(case):
    wrong = make_scheme("kgw", WatermarkKey(bytes(range(1, 33))), gamma=0.25, delta=4.0, context_width=1)
    result = run_audit(_config(case, f"local:{case['student']}", tests=("open",), reading_texts=5),
                       settings=case["settings"], scheme=wrong)
    assert result.suspect.test("open").details["units"] == 5          # --reading-texts: the first 5 texts
    assert result.verdict.label in ("no evidence", "inconclusive")
    assert result.suspect.combined_p > 1e-3
    text = " ".join(result.verdict.problems)
    assert wrong.key.key_id in text and case["scheme"].key.key_id in text and "does not match" in text
    assert "control also shows nothing" in result.verdict.summary or result.verdict.label == "inconclusive"


@pytest.mark.slow
def test_too_few_tuples_is_inconclusive_with_how_many_more(case, tmp_path):
    small = tmp_path / "small.jsonl"
    rows = [json.loads(line) for line in case["corpus"].read_text().splitlines()[:1]]
    rows[0]["completion"] = " ".join(rows[0]["completion"].split()[:4])
    small.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _config(case, f"local:{case['student']}", tests=("open",), corpus=str(small))
    result = run_audit(cfg, settings=case["settings"], scheme=case["scheme"])
    assert result.verdict.label == "inconclusive"
    assert result.verdict.needed_more and result.verdict.needed_more > 0
    assert f"{result.verdict.needed_more} more scored tuples" in result.verdict.summary


@pytest.mark.slow
def test_different_tokenizer_gets_cross_tokenizer_reading_mode(case, tmp_path):
    """The student with one extra token in its vocabulary: another tokenizer, so reading mode reads it
    through text (cross-tokenizer) instead of skipping, and still finds it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    other = tmp_path / "other-tok"
    tok = AutoTokenizer.from_pretrained(case["student"])
    tok.add_tokens(["<distillscope-extra>"])
    model = AutoModelForCausalLM.from_pretrained(case["student"])
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(other)
    tok.save_pretrained(other)
    result = run_audit(_config(case, f"local:{other}", tests=("open",)), settings=case["settings"],
                       scheme=case["scheme"])
    s_open = result.suspect.test("open")
    assert s_open.ran and s_open.details["cross_tokenizer"] and "cross-tokenizer" in s_open.method
    assert s_open.p_value < 1e-6, s_open
    assert not result.control.test("open").details["cross_tokenizer"]
    assert result.verdict.label == "trained on our outputs"


def test_reference_as_control_and_teacher_as_suspect_are_said(case):
    result = run_audit(_config(case, "local:tiny:0", control="local:tiny:3", tests=("open", "passive")),
                       settings=case["settings"], scheme=case["scheme"])
    text = " ".join(result.verdict.problems)
    assert "suspect is our teacher itself" in text and "control is the reference model tiny:3" in text


def test_missing_or_foreign_zoo_is_clear(case, tmp_path):
    from distillscope.audit import Zoo

    with pytest.raises(AuditError, match="no zoo at"):
        run_audit(_config(case, "local:tiny:5", tests=("passive",), zoo=str(tmp_path / "none.json")),
                  settings=case["settings"], scheme=case["scheme"])
    zoo = Zoo.load(case["zoo"])
    foreign = tmp_path / "foreign.json"
    Zoo(**{**zoo.__dict__, "teacher_fingerprint": "0" * 64}).save(foreign)
    with pytest.raises(AuditError, match="another teacher"):
        run_audit(_config(case, "local:tiny:5", tests=("passive",), zoo=str(foreign)), settings=case["settings"],
                  scheme=case["scheme"])
    # no zoo named and none installed for this teacher: the passive test is skipped, and the verdict says why
    result = run_audit(_config(case, "local:tiny:5", tests=("open", "passive"), zoo=None), settings=case["settings"],
                       scheme=case["scheme"])
    assert result.suspect.test("passive").status == "skipped"
    assert any("zoo" in p and "zoo build" in p for p in result.verdict.problems)


def test_unloadable_and_unreachable_suspects_are_clear_errors(tmp_path):
    from distillscope.audit import open_suspect

    with pytest.raises(AuditError, match="cannot be loaded.*missing-dir"):
        open_suspect(f"local:{tmp_path / 'missing-dir'}")
    with pytest.raises(AuditError, match="cannot be reached"):
        open_suspect("endpoint:http://127.0.0.1:9/v1")
    with pytest.raises(AuditError, match="not understood"):
        open_suspect("ftp:somewhere")
    with pytest.raises(AuditError, match="alpha"):
        AuditConfig(suspect="texts:x", control="texts:y", corpus="c", alpha=2.0)


def test_cli_bad_input_is_one_line(capsys, tmp_path):
    from distillscope.cli import main

    code = main(["audit", "ftp:somewhere", "--control", "texts:x.jsonl", "--corpus", str(tmp_path / "c.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "ftp:somewhere" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
