"""Evaluation numbers computed on known inputs; the train/eval CLI end to end on tiny models."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from test_train_data import make_store, make_tokenizer

from distillscope.cli import main
from distillscope.distill.evaluation import evaluate
from distillscope.distill.kd_data import read_store
from distillscope.distill.tasks import CATEGORIES, TaskItem, builtin_tasks, score_answer


class FakeLM(torch.nn.Module):
    """Known predictions: with ``oracle`` it gives probability ``p`` to the true next token (and
    spreads the rest evenly); otherwise it is uniform. ``generate`` always replies ``reply``."""

    def __init__(self, vocab: int, tokenizer, *, oracle: bool, p: float = 0.9, reply: str = "yes") -> None:
        super().__init__()
        self.vocab, self.oracle, self.p = vocab, oracle, p
        self.weight = torch.nn.Parameter(torch.zeros(10))        # 10 parameters
        self.reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]

    def forward(self, input_ids, attention_mask=None):
        b, t = input_ids.shape
        logits = torch.zeros(b, t, self.vocab)
        if self.oracle:
            boost = math.log(self.p * (self.vocab - 1) / (1 - self.p))
            nxt = torch.roll(input_ids, -1, dims=1)
            logits.scatter_(-1, nxt[..., None], boost)
        return SimpleNamespace(logits=logits)

    def generate(self, input_ids, attention_mask=None, max_new_tokens=8, **kwargs):
        reply = torch.tensor(self.reply_ids).expand(input_ids.shape[0], -1)
        return torch.cat([input_ids, reply], dim=1)


@pytest.fixture
def setup(tmp_path):
    tok = make_tokenizer(tmp_path / "tok")
    records = read_store(make_store(tmp_path / "s", tok, n=6))
    return tok, records


def test_perplexity_agreement_and_accuracy_on_known_inputs(setup):
    tok, records = setup
    vocab = len(tok)
    tasks = [TaskItem("logic", "Is 3 greater than 2?", ("yes",)), TaskItem("logic", "Is 2 greater than 3?", ("no",)),
             TaskItem("logic", "Is 5 odd?", ("yes",)), TaskItem("capitals", "Capital of Peru?", ("Lima",))]
    teacher = FakeLM(vocab, tok, oracle=True, p=0.9, reply="yes")
    student = FakeLM(vocab, tok, oracle=False, reply="Lima")
    report = evaluate((student, tok), (teacher, tok), records, tasks=tasks, max_new_tokens=4)
    t, s = report.models
    assert report.answer_tokens == sum(len(r["token_ids"]) for r in records)
    assert t.perplexity == pytest.approx(1 / 0.9, rel=1e-4)
    assert s.perplexity == pytest.approx(vocab, rel=1e-4)            # uniform over the vocabulary
    # a uniform model's argmax is token 0; the teacher's argmax is the true next token
    zeros = sum(i == 0 for r in records for i in r["token_ids"])
    assert s.top1_agreement == pytest.approx(zeros / report.answer_tokens)
    assert t.top1_agreement is None and t.role == "teacher" and s.role == "student"
    assert t.task_accuracy == pytest.approx(2 / 4) and s.task_accuracy == pytest.approx(1 / 4)
    assert dict(s.task_accuracy_by_category) == {"logic": 0.0, "capitals": 1.0}
    assert t.parameters == s.parameters == 10

    same = evaluate((FakeLM(vocab, tok, oracle=True), tok), (teacher, tok), records, tasks=tasks[:1])
    assert same.models[1].top1_agreement == 1.0


def test_builtin_tasks_are_deterministic_and_cover_categories():
    a, b = builtin_tasks(), builtin_tasks()
    assert a == b and len(a) == 120
    assert {t.category for t in a} == set(CATEGORIES)
    assert builtin_tasks(seed=1) != a
    assert len({t.prompt for t in a if t.category == "arithmetic"}) >= 25


@pytest.mark.parametrize("answers,reply,ok", [
    (("124",), "The answer is 124.", True), (("124",), "1240", False), (("3000",), "3,000 meters", True),
    (("yes",), "Yes, it is.", True), (("no",), "Yes. No wait.", False), (("Paris",), "paris", True),
    (("Buenos Aires",), "It is Buenos Aires.", True), (("7",), "7.5", False),
])
def test_score_answer(answers, reply, ok):
    assert score_answer(TaskItem("x", "q", answers), reply) is ok


@pytest.mark.slow
def test_train_then_eval_cli(tmp_path, capsys):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer(tmp_path / "tok")
    store = make_store(tmp_path / "store", tok, n=60)
    teacher_dir = tmp_path / "teacher"
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=2, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)).save_pretrained(teacher_dir)
    tok.save_pretrained(teacher_dir)
    out = tmp_path / "student"
    code = main(["train", str(store), "--out", str(out), "--tokenizer", str(tmp_path / "tok"), "--hidden-size", "32",
                 "--layers", "2", "--heads", "2", "--max-steps", "30", "--lr", "3e-3", "--max-length", "64",
                 "--json", str(tmp_path / "train.json")])
    assert code == 0, capsys.readouterr().err
    trained = json.loads((tmp_path / "train.json").read_text())
    assert trained["steps"] == 30 and trained["mode"] == "kd"
    code = main(["eval", str(out), "--store", str(store), "--teacher", str(teacher_dir), "--tasks-per-category", "2",
                 "--max-new-tokens", "4", "--json", str(tmp_path / "eval.json")])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "eval.json").read_text())
    teacher, student = report["models"]
    assert report["heldout_records"] >= 1 and report["tasks"] == 8
    # the trained student fits the teacher's held-out answers far better than the random teacher does
    assert student["perplexity"] < teacher["perplexity"] / 5
    assert 0.0 <= student["top1_agreement"] <= 1.0
    assert student["teacher_tokens"] == trained["teacher_tokens"]
    shown = capsys.readouterr().out
    assert "teacher" in shown and "student" in shown and f"{student['perplexity']:.2f}" in shown


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    assert main(["train", str(tmp_path / "bad"), "--out", str(tmp_path / "o")]) == 2
    assert main(["train", str(tmp_path / "bad"), "--out", str(tmp_path / "o"), "--mode", "rl"]) == 2
    err = capsys.readouterr().err
    assert "not a harvest store" in err and "mode 'rl'" in err and "Traceback" not in err


def test_student_with_other_tokenizer_is_scored_per_teacher_token_at_aligned_positions(setup, tmp_path):
    tok, records = setup
    other = make_tokenizer(tmp_path / "other", vocab_size=300, corpus_extra=("zebra quantum " * 20,))
    tasks = [TaskItem("logic", "Is 3 greater than 2?", ("yes",))]
    report = evaluate((FakeLM(len(other), other, oracle=False), other), (FakeLM(len(tok), tok, oracle=True), tok),
                      records, tasks=tasks)
    student = report.models[1]
    from distillscope.distill.evaluation import heldout_records
    from distillscope.distill.kd_data import align_by_offsets

    held = heldout_records(records, 0.1, 64)
    n_teacher = sum(len(r["token_ids"]) for r in held)
    n_student = sum(len(align_by_offsets(tok, r["token_ids"], other).student_ids) for r in held)
    # a uniform student: total NLL = n_student * log V, per teacher token (comparable across tokenizers)
    assert student.perplexity == pytest.approx(math.exp(n_student * math.log(len(other)) / n_teacher), rel=1e-4)
    # agreement at character-aligned positions; the uniform student always predicts token 0
    assert student.top1_agreement is not None and student.top1_agreement < 0.2


def test_before_sft_kd_and_teacher_rows_with_format_and_speed(setup):
    tok, records = setup
    tasks = [TaskItem("logic", "Is 3 greater than 2? Answer yes or no.", ("yes",)),
             TaskItem("arithmetic", "What is 2 + 2? Answer with just the number.", ("4",))]
    report = evaluate((FakeLM(len(tok), tok, oracle=True, reply="yes"), tok),
                      (FakeLM(len(tok), tok, oracle=True, reply="yes"), tok), records, tasks=tasks,
                      baseline=(FakeLM(len(tok), tok, oracle=False, reply="Well, let me think"), tok),
                      others=[("sft", (FakeLM(len(tok), tok, oracle=True, reply="yes"), tok))])
    assert [m.role for m in report.models] == ["teacher", "base", "sft", "student"]
    base, student = report.by_role("base"), report.by_role("student")
    assert base.instruction_following == 0.0 and student.instruction_following == 0.5   # "yes" fits the yes/no item only
    assert student.task_accuracy == 0.5                                                  # right on the yes/no item
    assert report.by_role("teacher").speed_vs_teacher is None and student.speed_vs_teacher > 0
    assert base.perplexity > student.perplexity
    assert len(report.rows()[0]) == len(report.COLUMNS)
