"""The harvest store on disk, prompt files, and key rotation / pacing (no server needed)."""

from __future__ import annotations

import asyncio
import json
import time

import pandas as pd
import pytest

from distillscope.distill import HarvestError, HarvestRecord, HarvestStore, PromptGenerator, read_prompt_file, record_id
from distillscope.distill.harvest_prompts import normalize_prompts
from distillscope.distill.rotation import KeyRing
from distillscope.errors import DistillError, InputDataError


def _rec(i: int, status: str = "ok", **kw) -> HarvestRecord:
    msgs = ({"role": "user", "content": f"prompt {i}"},)
    base = dict(id=record_id(list(msgs), "m", {}), status=status, prompt=f"prompt {i}", messages=msgs,
                completion=f"answer {i}" if status == "ok" else None, attempts=1, key_alias="key-0")
    base.update(kw)
    return HarvestRecord(**base)


@pytest.fixture
def store(tmp_path):
    s = HarvestStore(tmp_path / "store")
    s.create({"endpoint": "http://x/v1", "model": "m", "params": {}})
    return s


def test_round_trip_keeps_every_field(store):
    rec = _rec(1, tokens=("token_id:5", "token_id:7"), token_ids=(5, 7), token_logprobs=(-0.5, -1.0),
               top_logprobs=((("token_id:5", -0.5), ("token_id:9", -2.0)), (("token_id:7", -1.0),)),
               top_logprob_ids=(((5, -0.5), (9, -2.0)), ((7, -1.0),)), usage={"prompt_tokens": 3,
                                                                             "completion_tokens": 2},
               category="qa", topic="physics", template_id="qa.define/0", ts="2026-01-01T00:00:00Z")
    failed = _rec(2, "failed", error=HarvestError("rate_limited", "slow down", 429), attempts=6)
    with store.open_writer() as w:
        assert w.append([rec, failed]) == 2
    got = {r.id: r for r in store.records()}
    assert got[rec.id] == rec and got[failed.id] == failed
    assert [r.id for r in store.ok_records()] == [rec.id]
    line = json.loads((store.path / "records.jsonl").read_text().splitlines()[0])
    assert line["top_logprob_ids"][0] == [[5, -0.5], [9, -2.0]] and line["error"] is None


def test_latest_record_per_id_wins_and_stats_count_it(store):
    with store.open_writer() as w:
        w.append([_rec(1, "failed", error=HarvestError("timeout", "t")), _rec(2)])
        w.append([_rec(1, usage={"prompt_tokens": 4, "completion_tokens": 6}), _rec(3, "failed",
                                                                                   error=HarvestError("timeout", "t"))])
    assert len(list(store.records(latest=False))) == 4
    stats = store.stats()
    assert (stats.n_records, stats.n_ok, stats.n_failed, stats.n_lines) == (3, 2, 1, 4)
    assert stats.failed_by_reason == {"timeout": 1} and stats.completion_tokens == 6


def test_torn_tail_is_ignored_by_readers_and_cut_by_the_writer(store):
    with store.open_writer() as w:
        w.append([_rec(1), _rec(2)])
    path = store.path / "records.jsonl"
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"id": "half", "sta')
    assert [r.prompt for r in store.records()] == ["prompt 1", "prompt 2"]
    assert store.stats().torn_tail
    with store.open_writer() as w:
        w.append([_rec(3)])
    assert path.read_bytes().startswith(intact)
    assert [r.prompt for r in store.records()] == ["prompt 1", "prompt 2", "prompt 3"]
    assert not store.stats().torn_tail


@pytest.mark.parametrize("bad_line, match", [
    (b"not json\n", "line 2 is not valid JSON"),
    (b"[1, 2]\n", "line 2 is not a harvest record"),
    (b'{"status": "ok"}\n', "line 2 is not a harvest record"),
])
def test_a_bad_line_in_the_middle_is_corruption(store, bad_line, match):
    with store.open_writer() as w:
        w.append([_rec(1)])
    with open(store.path / "records.jsonl", "ab") as fh:
        fh.write(bad_line + json.dumps(_rec(2).to_dict()).encode() + b"\n")
    with pytest.raises(DistillError, match=match):
        list(store.records())
    with pytest.raises(DistillError, match=match):
        store.status_by_id()


def test_foreign_directories_and_versions_are_refused(tmp_path):
    with pytest.raises(DistillError, match="does not exist"):
        HarvestStore(tmp_path / "none").manifest()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x")
    with pytest.raises(DistillError, match="non-empty directory"):
        HarvestStore(tmp_path / "d").create({})
    with pytest.raises(DistillError, match="no manifest.json"):
        list(HarvestStore(tmp_path / "d").records())
    (tmp_path / "d" / "manifest.json").write_text(json.dumps({"format": "distillscope-harvest", "version": 9}))
    with pytest.raises(DistillError, match="version 9"):
        HarvestStore(tmp_path / "d").stats()
    (tmp_path / "d" / "manifest.json").write_text("{oops")
    with pytest.raises(DistillError, match="not valid JSON"):
        HarvestStore(tmp_path / "d").manifest()


def test_only_one_writer_at_a_time(store):
    with store.open_writer():
        with pytest.raises(DistillError, match="in use by another harvest"):
            with store.open_writer():
                pass
    with store.open_writer() as w:  # the lock is released again
        w.append([_rec(1)])


def test_record_id_depends_on_messages_model_and_params():
    m = [{"role": "user", "content": "hi"}]
    a = record_id(m, "m", {"temperature": 0.7, "max_tokens": 8})
    assert a == record_id(m, "m", {"max_tokens": 8, "temperature": 0.7}) and len(a) == 64
    assert len({a, record_id(m, "m2", {"temperature": 0.7, "max_tokens": 8}),
                record_id(m, "m", {"temperature": 0.1, "max_tokens": 8}),
                record_id([{"role": "user", "content": "hi!"}], "m", {"temperature": 0.7, "max_tokens": 8})}) == 4


# --- prompt inputs ----------------------------------------------------------------------------

def test_prompt_files_in_every_format_keep_metadata(tmp_path):
    items = PromptGenerator(seed=2).generate(6)
    rows = [i.to_dict() for i in items]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pd.DataFrame(rows).to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "p.parquet")
    (tmp_path / "p.txt").write_text("".join(i.prompt.replace("\n", " ") + "\n" for i in items))
    for name in ("p.jsonl", "p.csv", "p.parquet"):
        got = read_prompt_file(tmp_path / name)
        assert [g["prompt"] for g in got] == [i.prompt for i in items], name
        assert [g["template_id"] for g in got] == [i.template_id for i in items], name
    assert len(read_prompt_file(tmp_path / "p.txt")) == 6


def test_hugging_face_dataset_directories(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"instruction": ["a", "b"], "topic": ["x", "y"]}).save_to_disk(tmp_path / "ds")
    assert read_prompt_file(tmp_path / "ds") == [{"instruction": "a", "topic": "x"}, {"instruction": "b", "topic": "y"}]
    chat = [[{"role": "user", "content": "hello"}]]
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"messages": chat})}).save_to_disk(tmp_path / "dd")
    assert read_prompt_file(tmp_path / "dd")[0]["messages"][0]["content"] == "hello"
    datasets.DatasetDict({"a": datasets.Dataset.from_dict({"text": ["1"]}),
                          "b": datasets.Dataset.from_dict({"text": ["2"]})}).save_to_disk(tmp_path / "two")
    with pytest.raises(InputDataError, match="none is 'train'"):
        read_prompt_file(tmp_path / "two")
    datasets.Dataset.from_dict({"body": ["a"]}).save_to_disk(tmp_path / "nocol")
    with pytest.raises(InputDataError, match="no prompt column"):
        read_prompt_file(tmp_path / "nocol")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputDataError, match="not a Hugging Face dataset"):
        read_prompt_file(tmp_path / "empty")


def test_normalize_prompts_validates_and_deduplicates():
    jobs = normalize_prompts(["a", "a", [{"role": "user", "content": "b"}], {"prompt": "c", "topic": "t"}],
                             "m", {}, system_prompt="be brief")
    assert [j.prompt for j in jobs] == ["a", "b", "c"] and jobs[2].topic == "t"
    assert jobs[0].messages[0] == {"role": "system", "content": "be brief"}
    assert jobs[1].messages == [{"role": "user", "content": "b"}]  # a message list is sent as given
    for bad, match in (([""], "prompt 1 is empty"), ([[{"role": "user"}]], "malformed chat messages"),
                       ([{"question": "x"}], "none of the fields"), ([3], "int, not a prompt")):
        with pytest.raises(InputDataError, match=match):
            normalize_prompts(bad, "m", {})


# --- key rotation and pacing ------------------------------------------------------------------

def test_rotation_policies():
    ring = KeyRing(["a", "b", "c"], "round-robin")
    assert [ring.choose().alias for _ in range(4)] == ["key-0", "key-1", "key-2", "key-0"]
    rand = KeyRing(["a", "b", "c"], "random", seed=4)
    seq = [rand.choose().alias for _ in range(30)]
    again = KeyRing(["a", "b", "c"], "random", seed=4)
    assert seq == [again.choose().alias for _ in range(30)] and len(set(seq)) == 3
    sticky = KeyRing(["a", "b", "c"], "sticky-topic")
    assert len({sticky.choose("physics").alias for _ in range(10)}) == 1
    assert len({sticky.choose(t).alias for t in PromptGenerator().topics}) == 3
    ring.retire(ring.keys[1])
    assert {ring.choose().alias for _ in range(6)} == {"key-0", "key-2"}
    assert repr(KeyRing(["sk-top-secret"]).keys[0]) == "ApiKey(key-0)"
    for secret in ("b", "c"):
        ring.retire(next(k for k in ring.keys if k.secret == secret))
    ring.retire(ring.keys[0])
    with pytest.raises(DistillError, match="all 3 API key"):
        ring.choose()


def test_rpm_pacing_and_retry_after_deferral():
    async def run() -> tuple[float, float]:
        ring = KeyRing(["a"], rpm=1200)  # one request per 50 ms
        t0 = time.monotonic()
        for _ in range(5):
            await ring.acquire()
        paced = time.monotonic() - t0
        ring.defer(ring.keys[0], 0.2)
        t1 = time.monotonic()
        await ring.acquire()
        return paced, time.monotonic() - t1

    paced, deferred = asyncio.run(run())
    assert 0.19 <= paced < 1.0
    assert 0.18 <= deferred < 1.0
    with pytest.raises(DistillError, match="rpm=0"):
        KeyRing(["a"], rpm=0)
    with pytest.raises(DistillError, match="unknown key rotation"):
        KeyRing(["a"], "lottery")


def test_the_audit_reads_a_store_as_the_harvester_does(store):
    """A torn last line is ignored and a superseded record is read once, as HarvestStore reads them."""
    from distillscope.audit.corpus import load_corpus

    with store.open_writer() as w:
        w.append([_rec(1), _rec(2)])
        w.append([_rec(1, completion="answer 1, retried")])
    with (store.path / "records.jsonl").open("a") as fh:
        fh.write('{"id": "torn", "status": "ok", "compl')      # a harvest killed mid-write
    corpus = load_corpus(store.path)
    assert [(r.prompt, r.completion) for r in corpus.records] == [("prompt 1", "answer 1, retried"),
                                                                  ("prompt 2", "answer 2")]
