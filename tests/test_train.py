"""Training a tiny student: losses fall, components are logged, outputs are HF dirs, bad input fails early."""

from __future__ import annotations

import json

import pytest
from test_train_data import make_store, make_tokenizer

from distillscope.distill.training import DistillConfig, train
from distillscope.errors import ConfigError, DistillError, ModelError

TINY = dict(hidden_size=32, layers=2, heads=2, per_device_train_batch_size=8, max_length=64, logging_steps=2,
            learning_rate=3e-3, warmup_steps=0, lr_scheduler_type="constant", heldout_fraction=0.1)


@pytest.fixture
def tok_dir(tmp_path):
    make_tokenizer(tmp_path / "tok")
    return tmp_path / "tok"


@pytest.fixture
def store(tmp_path, tok_dir):
    from transformers import AutoTokenizer

    return make_store(tmp_path / "store", AutoTokenizer.from_pretrained(tok_dir), n=48)


class _Recorder:
    def __init__(self):
        self.advanced, self.totals = 0, []

    def task(self, description, total=None):
        import contextlib

        rec = self

        class _T:
            def advance(self, n=1):
                rec.advanced += n

            def update(self, *, total=None, description=None):
                pass

        @contextlib.contextmanager
        def cm():
            rec.totals.append(total)
            yield _T()
        return cm()


def _first_last(history, key):
    values = [getattr(h, key) for h in history]
    return sum(values[:2]) / 2, sum(values[-2:]) / 2


@pytest.mark.parametrize("mode", ["sft", "kd"])
def test_few_steps_reduce_loss(tmp_path, store, tok_dir, mode):
    progress = _Recorder()
    cfg = DistillConfig(store=store, output_dir=tmp_path / f"out-{mode}", mode=mode, tokenizer=str(tok_dir),
                        max_steps=24, **TINY)
    res = train(cfg, progress=progress)
    assert res.mode == mode and res.steps == 24 and progress.advanced == 24 and progress.totals == [24]
    first, last = _first_last(res.history, "loss")
    assert last < 0.7 * first
    first_ce, last_ce = _first_last(res.history, "ce")
    assert last_ce < first_ce
    if mode == "kd":
        assert all(h.kd is not None and h.kd >= 0 for h in res.history)
        assert res.kd_loss == "forward"
    else:
        assert all(h.kd is None for h in res.history)
    assert res.trained_tokens > 0 and res.tokens_per_second > 0 and res.teacher_tokens > 0
    out = tmp_path / f"out-{mode}"
    saved = json.loads((out / "distill_config.json").read_text())
    assert saved["mode"] == mode and saved["ce_weight"] == (1.0 if mode == "sft" else 0.5)
    assert json.loads((out / "train_result.json").read_text())["steps"] == 24

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.vocab_size == len(AutoTokenizer.from_pretrained(out))


def test_checkpoints_carry_config_and_resume(tmp_path, store, tok_dir):
    out = tmp_path / "out"
    base = dict(store=store, output_dir=out, tokenizer=str(tok_dir), save_steps=4, **TINY)
    first = train(DistillConfig(max_steps=4, **base))
    ckpt = out / "checkpoint-4"
    assert (ckpt / "distill_config.json").is_file() and (ckpt / "trainer_state.json").is_file()
    res = train(DistillConfig(max_steps=8, resume=True, **base))
    assert res.steps == 8
    assert [h.step for h in res.history] == [2, 4, 6, 8]           # history carried over, no step twice
    assert res.trained_tokens < 1.5 * first.trained_tokens         # only steps 5-8 ran in this session


def test_kd_with_another_tokenizer_is_cross_tokenizer_or_says_how_to_fix(tmp_path, store, tok_dir):
    other = tmp_path / "other"
    make_tokenizer(other, vocab_size=300, corpus_extra=("zebra quantum " * 20,))
    cfg = dict(store=store, tokenizer=str(other), max_steps=2, **TINY)
    # the store's manifest names a model ("synthetic") whose tokenizer cannot be loaded: no silent SFT
    with pytest.raises(ModelError, match="--teacher-tokenizer"):
        train(DistillConfig(mode="kd", output_dir=tmp_path / "o", **cfg))
    assert not (tmp_path / "o").exists()
    cross = res = train(DistillConfig(mode="kd", output_dir=tmp_path / "x", teacher_tokenizer=str(tok_dir), **cfg))
    assert res.mode == "kd" and res.kd_loss == "uld" and res.kd_alignment == "cross" and not res.fell_back
    assert 0.3 < res.aligned_share <= 1.0 and all(h.kd is not None for h in res.history)
    res = train(DistillConfig(mode="kd", output_dir=tmp_path / "f", fallback_to_sft=True, **cfg))
    assert res.fell_back and res.mode == "sft" and res.steps == 2
    assert res.teacher_tokens == cross.teacher_tokens      # the teacher's tokens, not the student's re-tokenisation


def test_kd_without_topk_says_how_to_fix(tmp_path, tok_dir):
    from transformers import AutoTokenizer

    store = make_store(tmp_path / "s", AutoTokenizer.from_pretrained(tok_dir), n=8, topk=None)
    with pytest.raises(DistillError, match="--mode sft"):
        train(DistillConfig(store=store, output_dir=tmp_path / "o", tokenizer=str(tok_dir), mode="kd", **TINY))


@pytest.mark.parametrize("bad", [dict(mode="rl"), dict(kd_loss="tv"), dict(temperature=0.0),
                                 dict(ce_weight=0.0, kd_weight=0.0), dict(heads=3, hidden_size=32)])
def test_bad_config_is_rejected(tmp_path, store, tok_dir, bad):
    args = {**TINY, **bad}
    with pytest.raises((ConfigError, ModelError), match=r"mode|kd_loss|temperature|nothing to train|divisible"):
        train(DistillConfig(store=store, output_dir=tmp_path / "o", tokenizer=str(tok_dir), max_steps=1, **args))


@pytest.mark.slow
def test_demo_act_quick(tmp_path):
    """The demo act on tiny models: harvest in process, train, evaluate, leave artifacts."""
    from distillscope.demo import DemoContext
    from distillscope.demo.distill_act import act
    from distillscope.settings import load_settings

    ctx = DemoContext(settings=load_settings(), workdir=tmp_path, quick=True)
    res = act(ctx)
    assert [r[1] for r in res.rows] == ["teacher", "student"]          # --quick: a fresh student, no "base" row
    assert (ctx.artifacts["student_path"] / "config.json").is_file()
    assert ctx.artifacts["train_result"].mode == "kd" and ctx.artifacts["train_result"].steps >= 1
    again = ctx.artifacts["train_fn"](ctx.artifacts["harvest_store"], tmp_path / "control", mode="sft", max_steps=1)
    assert again.mode == "sft" and again.steps == 1


def test_time_budget_stops_and_saves(tmp_path, store, tok_dir):
    res = train(DistillConfig(store=store, output_dir=tmp_path / "o", tokenizer=str(tok_dir), max_steps=50,
                              max_seconds=0.001, **TINY))
    assert res.steps == 1 and (tmp_path / "o" / "config.json").is_file()


def test_student_from_a_model_directory(tmp_path, store, tok_dir):
    """A trained student (an HF dir with its tokenizer) can itself be the starting point."""
    first = tmp_path / "first"
    train(DistillConfig(store=store, output_dir=first, tokenizer=str(tok_dir), max_steps=2, **TINY))
    args = {k: v for k, v in TINY.items() if k != "learning_rate"}
    cfg = DistillConfig(store=store, output_dir=tmp_path / "second", student=str(first), max_steps=2, **args)
    assert cfg.tokenizer == str(first) and cfg.learning_rate == 5e-5
    res = train(cfg)
    assert res.steps == 2 and res.mode == "kd"
