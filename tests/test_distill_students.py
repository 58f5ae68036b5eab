"""Pretrained students (LoRA, frozen layers, truncation, restricted softmax), cross-tokenizer KD,
the TrainingArguments-based config, and the checks that refuse bad input before any work."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_train import TINY
from test_train_data import make_store, make_tokenizer

from distillscope.distill.kd_data import align_by_offsets, build_cross_examples
from distillscope.distill.losses import topk_uld
from distillscope.distill.training import DistillConfig, train
from distillscope.errors import ConfigError, ModelError

pytestmark = pytest.mark.usefixtures("torch_one_thread")
FAST = {k: v for k, v in TINY.items() if k not in ("hidden_size", "layers", "heads", "learning_rate")}


@pytest.fixture
def tok_dir(tmp_path):
    make_tokenizer(tmp_path / "tok")
    return tmp_path / "tok"


@pytest.fixture
def store(tmp_path, tok_dir):
    from transformers import AutoTokenizer

    return make_store(tmp_path / "store", AutoTokenizer.from_pretrained(tok_dir), n=48)


@pytest.fixture
def pretrained(tmp_path, tok_dir):
    """A small 'pretrained' causal LM directory (3 layers) with the test tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(5)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2,
                                         tie_word_embeddings=True, eos_token_id=tok.eos_token_id,
                                         pad_token_id=tok.pad_token_id))
    out = tmp_path / "base"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _weights(directory):
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(directory).state_dict().items()}


# ---- cross-tokenizer KD -----------------------------------------------------------------------------

def _uld_reference(logits, topk_logprobs, mask):
    """Loop-by-loop ULD: sorted teacher top-k probabilities + tail against the student's largest k + tail."""
    total, n = 0.0, 0
    for row_logits, row_lps, keep in zip(logits.tolist(), topk_logprobs.tolist(), mask.tolist()):
        if not keep:
            continue
        z = max(row_logits)
        probs = [math.exp(v - z) for v in row_logits]
        s = sum(probs)
        student = sorted((p / s for p in probs), reverse=True)[:len(row_lps)]
        teacher = sorted((math.exp(v) for v in row_lps if v != -math.inf), reverse=True)
        teacher += [0.0] * (len(row_lps) - len(teacher))
        dist = sum(abs(a - b) for a, b in zip(teacher, student))
        dist += abs(max(1 - sum(teacher), 1e-6) - (1 - sum(student)))
        total, n = total + dist, n + 1
    return total / n


def test_uld_equals_the_slow_reference():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 11, generator=g) * 2
    lps = torch.log_softmax(torch.randn(6, 4, generator=g), -1) - 0.3        # top-4 covering ~74 % of the mass
    lps[1, 3] = -math.inf                                                    # a padded rank
    mask = torch.tensor([True, True, False, True, True, False])
    assert topk_uld(logits, lps, mask).item() == pytest.approx(_uld_reference(logits, lps, mask), abs=1e-5)
    assert topk_uld(logits, lps, torch.zeros(6, dtype=torch.bool)).item() == 0.0


def test_uld_decreases_on_a_tiny_student():
    g = torch.Generator().manual_seed(1)
    w = torch.nn.Linear(8, 20)
    x = torch.randn(16, 8, generator=g)
    lps = torch.log(torch.tensor([[0.6, 0.2, 0.1, 0.05]])).repeat(16, 1)
    opt = torch.optim.Adam(w.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        loss = topk_uld(w(x), lps, torch.ones(16, dtype=torch.bool))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_offset_alignment_pairs_positions_that_start_at_the_same_character(tmp_path, tok_dir):
    from transformers import AutoTokenizer

    teacher = AutoTokenizer.from_pretrained(tok_dir)
    make_tokenizer(tmp_path / "other", vocab_size=290, corpus_extra=("zebra quantum " * 20,))
    student = AutoTokenizer.from_pretrained(tmp_path / "other")
    text = "The capital of Peru is Lima."
    t_ids = teacher(text, add_special_tokens=False)["input_ids"]
    al = align_by_offsets(teacher, t_ids, student)
    assert al.text == text and student.decode(list(al.student_ids)) == text
    t_starts = [len(teacher.decode(t_ids[:i])) for i in range(len(t_ids))]
    s_starts = [len(student.decode(list(al.student_ids[:j]))) for j in range(len(al.student_ids))]
    assert any(r == -1 for r in al.teacher_row) or len(t_ids) == len(al.student_ids)
    for j, row in enumerate(al.teacher_row):
        if row >= 0:
            assert t_starts[row] == s_starts[j]
        else:
            assert s_starts[j] not in t_starts


def test_cross_examples_carry_sorted_teacher_rows(tmp_path, store, tok_dir):
    from transformers import AutoTokenizer

    from distillscope.distill.kd_data import read_store

    make_tokenizer(tmp_path / "other", vocab_size=290, corpus_extra=("zebra quantum " * 20,))
    student = AutoTokenizer.from_pretrained(tmp_path / "other")
    data = build_cross_examples(read_store(store)[:6], student, AutoTokenizer.from_pretrained(tok_dir),
                                max_length=64)
    ex = data.examples[0]
    rows = ex.topk_logprobs[torch.isfinite(torch.from_numpy(ex.topk_logprobs)).any(-1).numpy()]
    assert len(rows) > 0 and (rows[:, :-1] >= rows[:, 1:]).all()          # sorted, as ULD needs
    assert rows[0, 0] == pytest.approx(math.log(0.7), abs=1e-5)


# ---- pretrained students ----------------------------------------------------------------------------

def test_lora_student_trains_and_its_frozen_weights_are_unchanged(tmp_path, store, pretrained):
    before = _weights(pretrained)
    res = train(DistillConfig(store=store, output_dir=tmp_path / "lora", student=str(pretrained), lora_r=4,
                              max_steps=6, learning_rate=1e-2, **FAST))
    assert res.steps == 6 and 0 < res.trainable_parameters < 0.2 * res.parameters
    first, last = res.history[0].loss, res.history[-1].loss
    assert last < first
    after = _weights(tmp_path / "lora")                                  # a plain HF dir, adapters merged
    assert set(after) == set(before)
    adapted = [k for k in before if k.endswith("proj.weight")]
    assert adapted and any(not torch.equal(before[k], after[k]) for k in adapted)
    for k in before:
        if k not in adapted:                                             # embeddings, norms: frozen
            assert torch.equal(before[k], after[k]), k


def test_top_layer_training_leaves_the_lower_layers_alone(tmp_path, store, pretrained):
    before = _weights(pretrained)
    res = train(DistillConfig(store=store, output_dir=tmp_path / "top", student=str(pretrained), train_top_layers=1,
                              max_steps=3, learning_rate=1e-2, **FAST))
    after = _weights(tmp_path / "top")
    for k in before:
        changed = not torch.equal(before[k], after[k])
        assert changed == (k.startswith("model.layers.2.") or k == "model.norm.weight"), k
    assert res.trainable_parameters < res.parameters


def test_truncated_student_keeps_the_first_layers(tmp_path, store, pretrained):
    from transformers import AutoConfig

    res = train(DistillConfig(store=store, output_dir=tmp_path / "cut", student=str(pretrained), student_layers=1,
                              max_steps=2, **FAST))
    assert AutoConfig.from_pretrained(tmp_path / "cut").num_hidden_layers == 1
    assert res.parameters < sum(v.numel() for k, v in _weights(pretrained).items() if k != "lm_head.weight")


def test_restricted_vocab_is_the_full_projection_on_its_rows_and_is_reported(tmp_path, store, pretrained):
    from transformers import AutoModelForCausalLM

    from distillscope.distill.training import restricted_logits

    model = AutoModelForCausalLM.from_pretrained(pretrained)
    vocab = torch.tensor([0, 3, 7, 42])
    hidden = torch.randn(5, 32)
    full = model.get_output_embeddings()(hidden)
    assert torch.allclose(restricted_logits(model, hidden, vocab), full[:, vocab], atol=1e-6)
    res = train(DistillConfig(store=store, output_dir=tmp_path / "rv", student=str(pretrained), lora_r=4,
                              restrict_vocab=True, max_steps=4, learning_rate=1e-2, **FAST))
    assert res.vocab_kept is not None and res.vocab_kept < 400
    assert 0.0 < res.excluded_mass < 1.0 and res.excluded_mass_after is not None
    assert res.history[-1].loss < res.history[0].loss


# ---- config ------------------------------------------------------------------------------------------

def test_config_round_trips_through_training_arguments_and_the_saved_json(tmp_path, store, tok_dir):
    from dataclasses import fields

    from transformers import TrainingArguments

    cfg = DistillConfig(store=store, output_dir=tmp_path / "o", tokenizer=str(tok_dir), max_steps=2, **TINY)
    assert isinstance(cfg, TrainingArguments)
    assert cfg.get_warmup_steps(100) == 0 and DistillConfig(store="s", output_dir="o").get_warmup_steps(100) == 5
    hf_names = {f.name for f in fields(TrainingArguments) if f.init}
    as_hf = TrainingArguments(**{k: v for k, v in cfg.to_dict().items() if k in hf_names})
    ours = cfg.to_dict()
    assert {k: v for k, v in as_hf.to_dict().items()} == {k: ours[k] for k in as_hf.to_dict()}
    train(cfg)
    saved = json.loads((tmp_path / "o" / "distill_config.json").read_text())
    assert saved["token_level"] is True and saved["per_device_train_batch_size"] == 8
    again = DistillConfig.load(tmp_path / "o")
    assert again.to_dict() == cfg.to_dict()


# ---- bad input ---------------------------------------------------------------------------------------

def test_chat_format_without_a_template_is_refused_before_any_work(tmp_path, store, pretrained):
    from transformers import AutoTokenizer

    for f in pretrained.glob("chat_template*"):                          # a base model: no chat template
        f.unlink()
    conf = json.loads((pretrained / "tokenizer_config.json").read_text())
    conf.pop("chat_template", None)
    (pretrained / "tokenizer_config.json").write_text(json.dumps(conf))
    assert not AutoTokenizer.from_pretrained(pretrained).chat_template
    with pytest.raises(ConfigError, match="no chat template.*--prompt-format plain"):
        train(DistillConfig(store=store, output_dir=tmp_path / "o", student=str(pretrained), prompt_format="chat",
                            max_steps=1, **FAST))
    assert not (tmp_path / "o").exists()
    # auto: the plain format, saved as the student's chat template so later users prompt it the same way
    train(DistillConfig(store=store, output_dir=tmp_path / "p", student=str(pretrained), max_steps=1, **FAST))
    saved = AutoTokenizer.from_pretrained(tmp_path / "p")
    text = saved.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("User: Hi\nAssistant:")


def test_a_student_too_large_for_memory_is_refused_before_loading(tmp_path, store, pretrained):
    with pytest.raises(ModelError, match="GiB to train.*--lora-r"):
        train(DistillConfig(store=store, output_dir=tmp_path / "o", student=str(pretrained), max_memory_gb=1e-4,
                            max_steps=1, **FAST))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("bad", [dict(lora_r=4), dict(prompt_format="xml"), dict(lora_r=4, train_top_layers=1)])
def test_bad_student_options_are_rejected(tmp_path, store, bad):
    with pytest.raises(ConfigError):
        DistillConfig(store=store, output_dir=tmp_path / "o", **({"student": "x"} if "train_top_layers" in bad
                                                                   else {}), **bad)


def test_gradient_checkpointing_with_lora_trains(tmp_path, store, pretrained):
    from distillscope.distill.training import checkpointing_field

    res = train(DistillConfig(store=store, output_dir=tmp_path / "gc", student=str(pretrained), lora_r=4, max_steps=6,
                              learning_rate=1e-2, **checkpointing_field(True), **FAST))
    saved = json.loads((tmp_path / "gc" / "distill_config.json").read_text())
    assert res.steps == 6 and res.history[-1].loss < res.history[0].loss
    assert saved.get("activation_checkpointing", saved.get("gradient_checkpointing")) is True
