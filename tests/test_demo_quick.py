"""Demo act 1 on the tiny model, and ``distillscope demo --quick`` end to end."""

from __future__ import annotations

import json

import pytest

from distillscope.cli import main
from distillscope.demo import DemoContext
from distillscope.demo import watermark_act
from distillscope.settings import load_settings
from distillscope.teacher import Teacher

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_watermark_act_separates_marked_from_plain(tmp_path, monkeypatch):
    from distillscope.watermark import WatermarkKey

    # a fixed "fresh" key: the p-value checks below must not depend on a random key
    monkeypatch.setattr(WatermarkKey, "generate", classmethod(lambda cls: cls(bytes(range(1, 33)))))
    ctx = DemoContext(settings=load_settings(), workdir=tmp_path, quick=True)
    res = watermark_act.act(ctx)
    assert len(res.rows) == 2 * len(watermark_act.DEMO_PROMPTS)
    marked = [float(r[4]) for r in res.rows if r[1] == "yes"]
    plain = [float(r[4]) for r in res.rows if r[1] == "no"]
    assert max(marked) < 1e-6 and min(plain) > 1e-3
    assert all(r[3] > 20 for r in res.rows)
    # later acts reuse the teacher and the scheme; the fresh key lives in the workdir, not the home
    assert isinstance(ctx.artifacts["teacher"], Teacher)
    assert ctx.artifacts["teacher"].watermark is ctx.artifacts["watermark_scheme"]
    assert ctx.artifacts["watermark_key_file"] == tmp_path / "watermark.key"
    secret = (tmp_path / "watermark.key").read_text().strip()
    assert secret not in repr(res)


def test_watermark_act_uses_the_configured_key(tmp_path, monkeypatch):
    from distillscope.watermark import WatermarkKey

    key = WatermarkKey(bytes(range(3, 35)))
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_KEY", key.secret.hex())
    ctx = DemoContext(settings=load_settings(), workdir=tmp_path, quick=True)
    res = watermark_act.act(ctx)
    assert ctx.artifacts["watermark_scheme"].config()["key_id"] == key.key_id
    assert "watermark_key_file" not in ctx.artifacts and not (tmp_path / "watermark.key").exists()
    assert any(key.key_id in note for note in res.notes)


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, capsys):
    assert main(["demo", "--quick", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "The teacher answers, with and without the watermark" in out
    assert "demo finished" in out and "12/12" in out
    assert "timeline: watermark" in out and "→ audit" in out
    assert "verdict on the student:" in out and "evidence report:" in out
    # the audit's corpus is our own log of what the gateway served to the harvesting account
    assert "our corpus:" in out
    served = tmp_path / "served-to-distill-demo.jsonl"
    rows = [json.loads(line) for line in served.read_text().splitlines()]
    answered = [r for r in rows if r["status"] < 400 and r["completion"]]
    assert answered and all(r["watermark_key_id"] for r in answered)
    report = json.loads((tmp_path / "audit-report.json").read_text())
    assert report["reproducibility"]["corpus"]["path"] == str(served)
    assert report["corpus_check"]["corpus_key_ids"] == [report["corpus_check"]["key_id"]]
    # the verdict rests on radioactivity (H0: independent of our key); passive is ranked against a zoo
    assert "independent of our secret watermark key" in report["verdict"]["confidence"]
    assert "verdict p" in out and "zoo p" in out and "Passive attribution (corroboration only" in out
    passive = next(t for t in report["suspect"]["tests"] if t["test"] == "passive")
    assert passive["status"] == "ok" and passive["details"]["zoo_members"] == 6
    assert "corroboration only" in report["verdict"]["corroboration"]


def test_timeline_names_every_act_with_its_time():
    from distillscope.demo import ActResult, timeline

    results = [ActResult("1. Teacher", (), (), seconds=19.4, act="watermark"),
               ActResult("Audit: was it?", (), (), seconds=100.2)]
    assert timeline(results) == "watermark 19s → Audit 100s = 120s"
