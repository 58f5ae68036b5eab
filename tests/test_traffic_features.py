"""Traffic log schema and per-account features on constructed logs with known values."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillscope.errors import InputDataError
from distillscope.traffic import load_log, parse_mapping
from distillscope.traffic.engines import make_engine
from distillscope.traffic.features import SQL_COLUMNS, entity_features_sql
from distillscope.traffic.prepare import prepare
from distillscope.traffic.templates import TemplateConfig, cluster_templates, last_user_text, mask

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=timezone.utc)


def _row(rid, acct, sec, *, prompt="What is entropy?", pt=10, ct=20, mt=100, lp=0, status=200, ip="10.0.0.1"):
    return {"request_id": rid, "ts": T0 + timedelta(seconds=sec), "account_id": acct, "client_ip": ip,
            "user_agent": "ua", "prompt": prompt, "prompt_tokens": pt, "completion_tokens": ct, "max_tokens": mt,
            "logprobs": lp, "logit_bias": False, "status": status}


def constructed_log() -> pa.Table:
    rows = [
        _row("a1", "A", 0, lp=5),
        _row("a2", "A", 10, prompt="Explain entropy. Think step by step."),
        _row("a3", "A", 20, ct=40, mt=40, prompt="Why? Show your reasoning, then answer.", ip="10.0.0.2"),
        _row("a4", "A", 40, ct=0, mt=None, status=429),
        _row("b1", "B", 5, prompt="Let's think step by step about 17 apples.", ct=4000, mt=4096, lp=20),
    ]
    return pa.Table.from_pylist(rows)


def features_of(table: pa.Table):
    prepared = prepare(load_log(table)).select(list(SQL_COLUMNS))
    eng = make_engine("duckdb")
    try:
        return eng.run(entity_features_sql(), {"requests": prepared}).to_pandas().set_index("account_id")
    finally:
        eng.close()


def test_account_features_have_known_values():
    f = features_of(constructed_log())
    a = f.loc["A"]
    assert a.n_requests == 4 and a.n_ok == 3
    assert a.out_in_ratio == pytest.approx(80 / 30)
    assert a.mean_completion_tokens == pytest.approx(80 / 3)
    assert a.mean_max_tokens == pytest.approx(80.0)
    assert a.capped_share == pytest.approx(1 / 3)            # only a3 used >= 95% of max_tokens
    assert a.cot_share == pytest.approx(0.5)                 # a2 and a3 elicit reasoning
    assert a.logprob_share == pytest.approx(0.25)
    assert a.rejected_share == pytest.approx(0.25)
    gaps = [10.0, 10.0, 20.0]
    mean = sum(gaps) / 3
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / 2)
    assert a.gap_cv == pytest.approx(sd / mean)
    assert a.hour_entropy == pytest.approx(0.0)
    assert a.ip_rotation == pytest.approx(0.5) and a.n_ips == 2
    assert a.requests_per_day == pytest.approx(4.0)


def test_single_request_account_has_null_timing_features():
    b = features_of(constructed_log()).loc["B"]
    assert b.n_requests == 1
    for name in ("gap_cv", "hour_entropy", "ip_rotation", "topic_ratio", "topic_spread"):
        assert math.isnan(b[name]), name
    assert b.cot_share == 1.0 and b.logprob_share == 1.0


def test_absent_optional_columns_give_null_features_not_zero():
    t = constructed_log().drop_columns(["logprobs", "max_tokens", "prompt"])
    loaded = load_log(t)
    assert {"logprobs", "max_tokens", "prompt"} <= set(loaded.report.missing_columns)
    a = features_of(t).loc["A"]
    assert math.isnan(a.logprob_share) and math.isnan(a.mean_max_tokens) and math.isnan(a.cot_share)
    assert a.n_requests == 4


def test_missing_required_column_is_a_clear_error():
    t = constructed_log().drop_columns(["account_id"])
    with pytest.raises(InputDataError, match="account_id.*--map"):
        load_log(t)


def test_foreign_columns_map_onto_canonical_names(tmp_path):
    t = constructed_log().rename_columns(["id", "created", "user", *constructed_log().column_names[3:]])
    path = tmp_path / "foreign.parquet"
    pq.write_table(t, path)
    loaded = load_log(path, mapping=parse_mapping(["id=request_id", "created=ts", "user=account_id"]))
    assert loaded.num_rows == 5 and set(loaded.table.column("account_id").to_pylist()) == {"A", "B"}
    with pytest.raises(InputDataError, match="not of the form"):
        parse_mapping(["user"])
    with pytest.raises(InputDataError, match="unknown column"):
        parse_mapping(["user=acount"])


def test_wrong_types_name_the_column():
    t = constructed_log().set_column(6, "prompt_tokens", pa.array(["ten", "x", "y", "z", "w"]))
    with pytest.raises(InputDataError, match="prompt_tokens"):
        load_log(t)


def test_duplicates_skew_and_bad_timestamps_are_counted_not_fatal():
    rows = constructed_log().to_pylist()
    rows.append(dict(rows[0], completion_tokens=999))        # duplicated request id: first kept
    rows.insert(0, dict(rows[3], request_id="late"))         # out of order (clock skew)
    rows.append(dict(rows[1], request_id="nots", ts=None))   # no timestamp: dropped
    loaded = load_log(pa.Table.from_pylist(rows))
    r = loaded.report
    assert (r.n_duplicate_ids, r.n_bad_ts, r.n_rows) == (1, 1, 6)
    assert r.n_out_of_order >= 1
    ts = loaded.table.column("ts").to_pylist()
    assert ts == sorted(ts)
    a1 = [x for x in loaded.table.to_pylist() if x["request_id"] == "a1"]
    assert len(a1) == 1 and a1[0]["completion_tokens"] == 20


def test_string_and_epoch_timestamps_parse(tmp_path):
    t = constructed_log()
    iso = t.set_column(1, "ts", pa.array([x.isoformat() for x in t.column("ts").to_pylist()]))
    epoch = t.set_column(1, "ts", pa.array([x.timestamp() for x in t.column("ts").to_pylist()]))
    assert load_log(iso).table.column("ts").to_pylist() == load_log(epoch).table.column("ts").to_pylist()


def test_unreadable_or_empty_logs_raise(tmp_path):
    with pytest.raises(InputDataError, match="does not exist"):
        load_log(tmp_path / "nope.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(InputDataError, match="could not be read"):
        load_log(bad)
    rows = [dict(r, ts=None) for r in constructed_log().to_pylist()]
    with pytest.raises(InputDataError, match="no usable rows"):
        load_log(pa.Table.from_pylist(rows, schema=constructed_log().schema))


def test_masking_and_template_clusters():
    assert mask('Classify "great phone" as 3 or 4.5%') == "classify <q> as <n> or <n>"
    assert last_user_text('[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, '
                          '{"role": "user", "content": "c"}]') == "c"
    frame = "You are an expert. Complete the task below in full detail. Task: {} Think step by step and explain."
    texts = [mask(frame.format(t)) for t in ("what is entropy", "define osmosis", "explain tides")]
    texts += ["how do i bake bread at home", "the weather in paris is lovely today"]
    labels = cluster_templates(texts, TemplateConfig())
    assert labels[0] == labels[1] == labels[2]
    assert len({labels[0], labels[3], labels[4]}) == 3


def test_reads_the_gateway_request_log_database(tmp_path):
    from distillscope.gateway import RequestLog, RequestRecord, make_engine, upgrade_database

    url = f"sqlite:///{tmp_path / 'gw.sqlite'}"
    engine = make_engine(url)
    upgrade_database(engine)
    log = RequestLog(engine)
    for i in range(3):
        log.write(RequestRecord(request_id=f"r{i}", ts=T0 + timedelta(seconds=i), endpoint="/v1/chat/completions",
                                status=200, account_id="acct_x", prompt="Think step by step: 2+2?", max_tokens=64,
                                prompt_tokens=8, completion_tokens=12, logprobs=5 if i == 0 else 0))
    log.write(RequestRecord(request_id="bad", ts=T0, endpoint="/v1/chat/completions", status=401,
                            error="invalid_api_key"))
    engine.dispose()
    loaded = load_log(url)
    assert loaded.num_rows == 4 and loaded.report.n_unauthenticated == 1
    f = features_of(loaded.table).loc["acct_x"]
    assert f.n_requests == 3 and f.cot_share == 1.0 and f.logprob_share == pytest.approx(1 / 3)
