"""The evidence report: content, secrecy, and rendering in headless Chromium with no console errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from distillscope.audit import write_report
from distillscope.audit.combine import combine_audit
from distillscope.audit.results import AuditResult, ModelAudit, TestResult
from distillscope.audit.verdict import decide

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SECRET = "5ec2e7" * 8  # stands in for a key: it must never reach the report


def _test(name: str, p: float, n: int, note: str = "") -> TestResult:
    curve = tuple((k, min(1.0, p ** (k / n))) for k in (1, n // 4, n // 2, n)) if name != "passive" else ()
    chunks = (0.3, 0.35, 0.4, 0.28) if name != "passive" else ()
    return TestResult(name, f"{name} method <b>escaped</b> {note}", "ok", n, n * 0.3, "score", p, note,
                      {"z": 3.0}, curve, chunks)


def _result() -> AuditResult:
    audits = {}
    for role, ps in (("suspect", (1e-9, 1e-4, 0.02)), ("control", (0.4, 0.7, 0.6))):
        tests = (_test("open", ps[0], 800), _test("blackbox", ps[1], 1200), _test("passive", ps[2], 60))
        comb = combine_audit({t.test: t.p_value for t in tests})
        audits[role] = ModelAudit(role, f"local:/models/{role}", role, "ab" * 32, tests, comb.p_value, comb.method,
                                  (("Who made you?", "<script>alert(1)</script> I am a model"),))
    verdict = decide(audits["suspect"], audits["control"], alpha=1e-6, control_alpha=0.01, gamma=0.25)
    repro = {"watermark": {"scheme": "kgw", "gamma": 0.25, "delta": 2.0, "context_width": 1, "key_id": "kid-123"},
             "versions": {"distillscope": "0.1.0"}, "seed": 0, "command": "distillscope audit ..."}
    return AuditResult(verdict, audits["suspect"], audits["control"], repro, ("limitation one",),
                       {"key_id": "kid-123", "n_scored": 900, "p_value": 1e-40, "texts": 30, "corpus_key_ids": []})


def test_report_html_and_json(tmp_path):
    result = _result()
    assert result.verdict.label == "trained on our outputs"
    html, js = write_report(result, tmp_path / "report.html")
    text, data = html.read_text(), json.loads(js.read_text())
    assert data["verdict"]["label"] == "trained on our outputs" and data["format"] == "distillscope-audit-report"
    assert data["suspect"]["tests"][0]["p_value"] == pytest.approx(1e-9)
    assert text.count("<svg") == 2  # p-value curve and green-fraction histogram, inline
    assert "<script>alert(1)" not in text and "&lt;script&gt;" in text  # autoescaped
    for needle in ("kid-123", "limitation one", "Holm", "independent of our secret watermark key", "control",
                   "Who made you?", "never enters the verdict"):
        assert needle in text
    assert SECRET not in text and SECRET not in js.read_text()
    with pytest.raises(Exception, match="ends in .json"):
        write_report(result, tmp_path / "report.json")


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe:
        return exe
    if IN_CI:
        pytest.fail("headless Chromium is missing; CI must install it (.ci/run apt-installs chromium)")
    pytest.skip("headless Chromium is not installed (apt-get install chromium) — the render check needs it")


def _console_errors(exe: str, url: str, workdir: Path) -> tuple[list[str], str]:
    """Open ``url`` over the DevTools protocol; return console errors/exceptions and the page's text."""
    import httpx
    import websocket

    profile = workdir / "profile"
    proc = subprocess.Popen([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--disable-component-update", "--disable-sync", "--no-first-run",
                             f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        target = next(t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page")
        ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30)
        msg_id, errors = 0, []

        def call(method: str, **params):
            nonlocal msg_id
            msg_id += 1
            ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                if msg.get("method") in ("Runtime.exceptionThrown",):
                    errors.append(json.dumps(msg["params"])[:4000])
                elif msg.get("method") == "Runtime.consoleAPICalled" and msg["params"]["type"] in ("error", "assert"):
                    errors.append(json.dumps(msg["params"])[:4000])
                elif msg.get("method") == "Log.entryAdded" and msg["params"]["entry"]["level"] == "error":
                    errors.append(msg["params"]["entry"]["text"])
                if msg.get("id") == msg_id:
                    return msg.get("result", {})

        call("Runtime.enable")
        call("Log.enable")
        call("Page.enable")
        call("Page.navigate", url=url)
        deadline = time.time() + 20
        while time.time() < deadline:
            state = call("Runtime.evaluate", expression="document.readyState", returnByValue=True)
            if state.get("result", {}).get("value") == "complete":
                break
            time.sleep(0.2)
        time.sleep(0.5)
        body = call("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)
        ws.close()
        return errors, body.get("result", {}).get("value", "")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.browser
def test_report_renders_in_headless_chromium_without_console_errors(tmp_path):
    exe = _chromium()
    html, _ = write_report(_result(), tmp_path / "report.html")
    errors, text = _console_errors(exe, html.resolve().as_uri(), tmp_path)
    assert errors == []
    assert "TRAINED ON OUR OUTPUTS" in text.upper() and "Black-box radioactivity" in text


@pytest.mark.browser
def test_the_render_check_catches_console_errors(tmp_path):
    """The harness above can fail: a page with a script error is caught."""
    exe = _chromium()
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><script>console.error('boom'); undefinedFn();</script></body></html>")
    errors, _ = _console_errors(exe, bad.resolve().as_uri(), tmp_path)
    assert any("boom" in e for e in errors) and any("undefinedFn" in e for e in errors)
