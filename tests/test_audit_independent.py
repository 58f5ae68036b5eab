"""Smoke test of bench/audit/independent: the suspect-zoo trainer and the CLI-driven zoo audit, tiny sizes.

The zoo is trained by a subprocess (as the benchmark runs it) on a watermarked corpus that the tiny teacher
writes through ``distillscope generate``; one suspect is then audited through ``distillscope audit``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "audit" / "independent"
sys.path.insert(0, str(BENCH))

import audit_zoo  # noqa: E402
import data  # noqa: E402


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "AUDITBENCH_CACHE": str(tmp_path / "cache"),
            "AUDITBENCH_HOME": os.environ["DISTILLSCOPE_HOME"],
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _ds(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distillscope", *args], env=env, capture_output=True, text=True,
                          check=True)


def test_paraphrase_rewrites_words_and_is_seeded():
    text = "This is a very big problem. People often need help. It is easy to start. We make a new plan."
    out = data.paraphrase(text, seed=3)
    assert out == data.paraphrase(text, seed=3)
    assert out != text
    assert "very" not in out.split() or "big" not in out  # fillers dropped or synonyms swapped
    assert out.startswith("This is a")  # the first sentence stays first
    assert len(out.split()) <= len(text.split())


def test_text_sources_are_offline_and_capped():
    for name in ("doc", "pypi"):
        docs = data.load_source(name, 5_000, seed=1)
        assert docs and sum(map(len, docs)) <= 5_000
        assert docs == data.load_source(name, 5_000, seed=1)
    with pytest.raises(ValueError, match="unknown text source"):
        data.load_source("nope", 10)


def test_plan_labels_follow_the_data():
    import train_suspects as ts

    plans = ts.full_plan()
    innocents = [p for p in plans if p.label == "innocent"]
    assert len(innocents) >= 20
    assert len({p.family for p in innocents}) >= 3 and len({s for p in innocents for s, _ in p.sources}) >= 3
    assert all(p.rho == 0 for p in innocents) and all(p.rho > 0 for p in plans if p.label == "positive")
    assert {p.rho for p in plans if p.method == "lora" and p.label == "positive"} == {1.0, 0.2, 0.05}
    with pytest.raises(ValueError, match="label"):
        ts.SuspectPlan("x", "innocent", "text", "llama", "bpe", (("wm", 1.0),))


def test_zoo_trains_and_audits_through_the_cli(tmp_path):
    env = _env(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    _ds("watermark", "keygen", env=env)
    prompts = [f"Tell me one fact about the number {i}." for i in range(24)]
    (cache / "prompts.txt").write_text("\n".join(prompts) + "\n")
    _ds("generate", str(cache / "prompts.txt"), "--model", "tiny:1", "--out", str(cache / "answers_wm.jsonl"),
        "--max-new-tokens", "24", "--seed", "1", env=env)

    zoo = tmp_path / "zoo"
    subprocess.run([sys.executable, str(BENCH / "train_suspects.py"), "--preset", "smoke", "--out", str(zoo)],
                   env=env, check=True, capture_output=True, text=True)
    manifest = json.loads((zoo / "manifest.json").read_text())["suspects"]
    by_name = {e["name"]: e for e in manifest}
    assert set(by_name) == {"inn-llama-doc", "inn-gpt2-pypi", "pos-neox-wm", "pos-lora-wm"}
    assert by_name["pos-neox-wm"]["label"] == "positive" and by_name["pos-neox-wm"]["rho"] == 0.5
    assert by_name["inn-gpt2-pypi"]["label"] == "innocent"
    assert by_name["pos-lora-wm"]["trainable"].startswith("lora")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    for entry in manifest:
        tok = AutoTokenizer.from_pretrained(entry["path"])
        model = AutoModelForCausalLM.from_pretrained(entry["path"])
        assert tok.chat_template is None and model.config.model_type in {"llama", "gpt2", "gpt_neox"}
        assert entry["params"] == sum(p.numel() for p in model.parameters())

    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "audit_zoo.py"), "--zoo", str(zoo), "--corpus", str(cache / "answers_wm.jsonl"),
         "--suspects", "pos-neox-wm", "--controls", "fair", "--n", "4", "--reports", str(tmp_path / "audits"),
         "--out", str(out), "--audit-args", "--teacher tiny:1 --reference tiny:2 --no-probes --max-new-tokens 16"],
        env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert "error" not in row, row
    assert row["control"] == "inn-llama-doc" and row["n"] == 4
    assert row["verdict"] in {"trained on our outputs", "no evidence", "inconclusive"}
    assert "blackbox" in row["suspect_tests"] and "p_value" in row["suspect_tests"]["blackbox"]
    assert "| pos-neox-wm |" in proc.stdout


def test_summarise_keeps_unknown_p_values():
    report = {"verdict": {"label": "no evidence", "suspect_p": 0.3, "control_p": 0.5},
              "suspect": {"tests": [{"test": "zoo", "status": "ok", "p_value": 0.2, "details": {"rank_p": 0.25}}]},
              "control": {"tests": []}, "passive": {"zoo_p_value": 0.4}}
    s = audit_zoo.summarise(report)
    assert s["suspect_tests"]["zoo"]["p_value"] == 0.2 and s["suspect_tests"]["zoo"]["detail_p"] == {"rank_p": 0.25}
    assert s["other_p_values"] == {"passive.zoo_p_value": 0.4}
