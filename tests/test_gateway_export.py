"""``logs export`` formats (CSV really is CSV) and ``watermark detect`` reading our own export."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from distillscope.cli import main
from distillscope.gateway import Limits, LocalBackend, StubBackend, create_app
from distillscope.settings import load_settings
from distillscope.watermark import WatermarkKey, make_scheme

CHAT = "/v1/chat/completions"


def _serve_some(home, backend, *, max_tokens: int = 16) -> None:
    """One plain chat, one n=2 chat, one legacy completion of two prompts, and two refused requests."""
    app = create_app(load_settings(home=home), backend=backend)
    with TestClient(app) as client:
        state = app.state.gateway
        state.store.create_account("alice", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
        headers = {"Authorization": f"Bearer {state.store.create_key('alice')[0]}"}
        model = backend.info.model_ids[0]
        msg = [{"role": "user", "content": "Tell me about rivers and lakes."}]
        for extra in ({}, {"n": 2, "seed": 3}):
            r = client.post(CHAT, headers=headers, json={"model": model, "messages": msg, "max_tokens": max_tokens,
                                                         **extra})
            assert r.status_code == 200, r.text
        r = client.post("/v1/completions", headers=headers,
                        json={"model": model, "prompt": ["Rivers are", "Lakes are"], "max_tokens": max_tokens})
        assert r.status_code == 200, r.text
        assert client.post(CHAT, headers=headers, json={"model": "nope", "messages": msg}).status_code == 404
        assert client.post(CHAT, json={"model": model, "messages": msg}).status_code == 401


def test_logs_export_csv_writes_csv_and_refuses_a_mismatched_suffix(isolated_home, tmp_path, capsys):
    _serve_some(isolated_home, StubBackend())
    out = tmp_path / "log.csv"
    assert main(["logs", "export", str(out)]) == 0
    assert "(csv)" in capsys.readouterr().out
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 and {"request_id", "completion", "status", "params"} <= set(rows[0])
    assert sorted(r["status"] for r in rows) == ["200", "200", "200", "401", "404"]
    assert main(["logs", "export", str(tmp_path / "x.csv"), "--format", "parquet"]) == 2
    assert "suffix of csv" in capsys.readouterr().err
    assert main(["logs", "export", str(tmp_path / "x.txt")]) == 2
    assert "--format" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.txt").exists()
    assert main(["logs", "export", str(tmp_path / "x.data"), "--format", "csv"]) == 0  # explicit is fine
    assert (tmp_path / "x.data").read_text().startswith('"request_id"')


@pytest.mark.parametrize("suffix", ["parquet", "jsonl", "csv"])
def test_watermark_detect_reads_our_own_export(isolated_home, tmp_path, capsys, suffix):
    WatermarkKey(bytes(range(32))).save(isolated_home / "watermark.key")
    _serve_some(isolated_home, StubBackend())
    out = tmp_path / f"log.{suffix}"
    assert main(["logs", "export", str(out)]) == 0
    capsys.readouterr()
    from distillscope.cli.watermark import _read_items

    items, skipped = _read_items(str(out), "auto", None)
    assert skipped == 2  # the 404 and the 401 have no completion
    texts = [(text, choice) for text, _, _, choice in items]
    # one plain chat, the two choices of n=2, one text per prompt of the legacy completion
    assert texts == [("echo: Tell me about rivers and lakes.", 0), ("echo: Tell me about rivers and lakes.", 0),
                     ("echo: Tell me about rivers and lakes.", 1), ("echo: Rivers are", 0),
                     ("echo: Lakes are", 1)]


@pytest.mark.slow
def test_watermark_detect_finds_the_watermark_in_an_export_of_the_local_teacher(isolated_home, tiny_loaded,
                                                                                 tmp_path, capsys):
    key = WatermarkKey(bytes(range(32)))
    key.save(isolated_home / "watermark.key")
    backend = LocalBackend.from_loaded(tiny_loaded, make_scheme("kgw", key), aliases=("tiny",))
    _serve_some(isolated_home, backend, max_tokens=60)
    out = tmp_path / "log.parquet"
    assert main(["logs", "export", str(out)]) == 0
    assert pq.read_table(out).num_rows == 5
    capsys.readouterr()
    assert main(["watermark", "detect", str(out), "--scheme", "kgw", "--tokenizer", "tiny",
                 "--format", "jsonl"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert "skipped 2" in captured.err
    assert len(rows) == 5 and [r["choice"] for r in rows] == [0, 0, 1, 0, 1]
    assert all(r["request_id"] for r in rows)
    assert sum(r["detected"] for r in rows) >= 4, rows


def test_the_request_log_schema_is_declared_once():
    import dataclasses

    from distillscope.gateway.requestlog import EXPORT_SCHEMA, RequestRecord
    from distillscope.gateway.tables import request_log
    from distillscope.traffic.schema import EXPORT_NAMES, LOG_COLUMNS

    assert EXPORT_SCHEMA.names == [c.name for c in request_log.columns]  # derived from the SQL table
    assert {f.name for f in dataclasses.fields(RequestRecord)} == set(EXPORT_SCHEMA.names)
    for name, kind in LOG_COLUMNS.items():  # what the traffic detector reads has the export's types
        assert EXPORT_SCHEMA.field(EXPORT_NAMES.get(name, name)).type == kind, name
