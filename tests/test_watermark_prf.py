"""The keyed PRF: known-answer vectors, an independent pure-Python reference, batch-position,
dtype and device independence, and key handling."""

from __future__ import annotations

import hashlib
import os
import stat

import numpy as np
import pytest
import torch

from distillscope.errors import ConfigError, WatermarkError
from distillscope.settings import load_settings
from distillscope.watermark import KGWScheme, WatermarkKey, make_scheme, scheme_from_settings

M64 = (1 << 64) - 1
KAT_KEY = bytes(range(32))  # hex 000102...1f, published in docs/watermark.md


# -- an independent reference implementation in Python integers ---------------------------------
def ref_mix64(z: int) -> int:
    z &= M64
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & M64
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def ref_code(t: int) -> int:
    return ref_mix64((t + 1) * 0x9E3779B97F4A7C15)


def ref_seed(key: bytes, person: bytes, ids) -> int:
    data = b"".join(int(i).to_bytes(8, "little", signed=True) for i in ids)
    return int.from_bytes(hashlib.blake2b(data, key=key, digest_size=8, person=person).digest(), "little")


def ref_bits(scheme_name: str, key: bytes, context, token: int) -> int:
    if scheme_name == "kgw-selfhash":
        pairs = [ref_mix64(ref_seed(key, b"dscope.kgwsh.v1", [a]) ^ ref_code(token)) for a in [*context, token]]
        return ref_mix64(min(pairs) ^ ref_code(token)) >> 11
    person = b"dscope.kgw.v1" if scheme_name == "kgw" else b"dscope.gumbel.v1"
    return ref_mix64(ref_seed(key, person, context) ^ ref_code(token)) >> 11


@pytest.fixture
def kat_key():
    return WatermarkKey(KAT_KEY)


# -- known answers (the vectors printed in docs/watermark.md) -----------------------------------
def test_known_answer_vectors(kat_key):
    assert kat_key.key_id == "0e6e769c3f37"
    kgw = make_scheme("kgw", kat_key)
    bits, seeds = kgw.token_bits(torch.tensor([[42]]), None, 49152)
    assert int(seeds[0, 0]) & M64 == 0x73E080309548AE24
    assert bits[0, :4].tolist() == [1945115626412382, 5092374384273370, 2324462205900166, 709081597128358]
    assert (bits[0] < kgw.threshold).nonzero().flatten()[:10].tolist() == [0, 3, 12, 16, 18, 28, 31, 33, 36, 38]
    self_hash = make_scheme("kgw-selfhash", kat_key)
    bits, _ = self_hash.token_bits(torch.tensor([[1, 2, 3, 4]]), None, 49152)
    assert (bits[0] < self_hash.threshold).nonzero().flatten()[:10].tolist() == [2, 4, 6, 10, 13, 23, 27, 29, 30, 31]
    gumbel = make_scheme("gumbel", kat_key)
    bits, _ = gumbel.token_bits(torch.tensor([[1, 2, 3, 4]]), None, 49152)
    assert bits[0, :4].tolist() == [2224652494231970, 8835477968632061, 6206018216170223, 6303692899450332]


@pytest.mark.parametrize("name,width", [("kgw", 1), ("kgw", 3), ("kgw-selfhash", 4), ("gumbel", 4)])
def test_torch_matches_the_python_reference(kat_key, name, width):
    rng = np.random.default_rng(7)
    contexts = rng.integers(0, 50_000, size=(6, width))
    tokens = rng.integers(0, 50_000, size=(6, 5))
    scheme = make_scheme(name, kat_key, context_width=width)
    bits, _ = scheme.token_bits(torch.tensor(contexts), torch.tensor(tokens))
    expected = [[ref_bits(name, KAT_KEY, list(c), int(t)) for t in row] for c, row in zip(contexts, tokens)]
    assert bits.tolist() == expected


@pytest.mark.parametrize("name", ["kgw", "kgw-selfhash"])
def test_full_vocabulary_path_equals_candidate_path(kat_key, name):
    scheme = make_scheme(name, kat_key)
    contexts = torch.tensor([[5, 9, 11, 400], [7, 7, 7, 7]])[:, -scheme.context_width:]
    full, _ = scheme.token_bits(contexts, None, 1000)
    some = torch.tensor([[0, 17, 999], [3, 500, 998]])
    part, _ = scheme.token_bits(contexts, some)
    assert torch.equal(full.gather(1, some), part)


@pytest.mark.parametrize("name", ["kgw", "kgw-selfhash", "gumbel"])
def test_processor_row_is_independent_of_batch_position_padding_and_dtype(kat_key, name):
    scheme = make_scheme(name, kat_key)
    proc = scheme.processor(temperature=0.7, top_k=20, top_p=0.9)
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 300, generator=gen) * 3
    row = torch.tensor([[0, 0, 0, 11, 12, 13, 14, 15]])         # left-padded
    others = torch.randint(1, 300, (5, 8), generator=gen)
    alone = proc(row[:, -5:], logits.clone())
    batch = torch.cat([others[:3], row, others[3:]])
    in_batch = proc(batch, torch.cat([torch.randn(3, 300, generator=gen), logits, torch.randn(2, 300, generator=gen)]))
    assert torch.equal(alone[0], in_batch[3])
    as64 = proc(row, logits.double())
    assert torch.equal((as64[0] - logits[0].double()).isinf(), (alone[0] - logits[0]).isinf())
    if name != "gumbel":
        assert torch.allclose(as64[0].float() - logits[0], alone[0] - logits[0])


def test_kgw_candidate_shortcut_changes_nothing_that_can_be_sampled(kat_key):
    from transformers import TopKLogitsWarper

    scheme = make_scheme("kgw", kat_key)
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 5000, generator=gen) * 4
    ctx = torch.randint(0, 5000, (4, 1), generator=gen)
    exact = TopKLogitsWarper(50)(None, scheme.processor()(ctx, logits.clone()))
    fast = TopKLogitsWarper(50)(None, scheme.processor(top_k=50)(ctx, logits.clone()))
    assert bool(scheme._candidates(logits, 50)[1].all())      # the shortcut was taken
    assert torch.equal(exact, fast)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["kgw", "kgw-selfhash", "gumbel"])
def test_same_bits_on_cuda(kat_key, name):
    scheme = make_scheme(name, kat_key)
    ctx = torch.randint(0, 49152, (8, scheme.context_width))
    cpu, _ = scheme.token_bits(ctx, None, 49152)
    gpu, _ = scheme.token_bits(ctx.cuda(), None, 49152)
    assert torch.equal(cpu, gpu.cpu())


# -- keys -----------------------------------------------------------------------------------------
def test_key_roundtrip_permissions_and_no_secret_in_repr(tmp_path):
    key = WatermarkKey.generate()
    path = key.save(tmp_path / "wm.key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = WatermarkKey.load_file(path)
    assert loaded == key and loaded.key_id == key.key_id and len(key.key_id) == 12
    secret_hex = key.secret.hex()
    assert secret_hex not in repr(key) and secret_hex not in str(key)
    scheme = make_scheme("kgw", key)
    assert secret_hex not in repr(scheme) and secret_hex not in str(scheme.config())
    assert scheme.config()["key_id"] == key.key_id
    with pytest.raises(WatermarkError, match="already exists"):
        WatermarkKey.generate().save(path)
    assert WatermarkKey.load_file(path) == key


def test_key_resolution_order_and_errors(tmp_path, monkeypatch):
    with pytest.raises(WatermarkError, match="keygen"):
        WatermarkKey.load(load_settings())
    file_key = WatermarkKey.generate()
    file_key.save(tmp_path / "k")
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_KEY_FILE", str(tmp_path / "k"))
    assert WatermarkKey.load(load_settings()) == file_key
    env_key = WatermarkKey.generate()
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_KEY", env_key.secret.hex())
    assert WatermarkKey.load(load_settings()) == env_key
    bad = "zz" + env_key.secret.hex()[2:]
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_KEY", bad)
    with pytest.raises(WatermarkError, match="non-hex") as info:
        WatermarkKey.load(load_settings())
    assert bad not in str(info.value)
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_KEY", "abcd")
    with pytest.raises(WatermarkError, match="64 hex characters, found 4"):
        WatermarkKey.load(load_settings())


def test_scheme_from_settings_and_parameter_validation(monkeypatch):
    key = WatermarkKey.generate()
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_KEY", key.secret.hex())
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_SCHEME", "kgw-selfhash")
    scheme = scheme_from_settings(load_settings(watermark_params={"gamma": 0.5}))
    assert isinstance(scheme, KGWScheme) and scheme.self_hash and scheme.gamma == 0.5 and scheme.context_width == 4
    with pytest.raises(ConfigError, match="unknown watermark scheme 'kbw'"):
        make_scheme("kbw", key)
    with pytest.raises(ConfigError, match="unknown parameter.*delta"):
        make_scheme("gumbel", key, delta=2.0)
    with pytest.raises(ConfigError, match="gamma must be strictly between 0 and 1, got 1.5"):
        make_scheme("kgw", key, gamma=1.5)
    with pytest.raises(ConfigError, match="context_width"):
        make_scheme("kgw", key, context_width=0)
    with pytest.raises(ConfigError, match="temperature"):
        make_scheme("gumbel", key).processor(temperature=-1)


def test_secret_never_reaches_logs(tmp_path, monkeypatch, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    key = WatermarkKey.generate()
    key.save(tmp_path / "k")
    monkeypatch.setenv("DISTILLSCOPE_WATERMARK_KEY_FILE", str(tmp_path / "k"))
    scheme = scheme_from_settings(load_settings())
    scheme.detector().detect(list(range(50)))
    scheme.processor(top_k=5)(torch.tensor([[1, 2]]), torch.randn(1, 100))
    assert key.key_id in caplog.text
    assert key.secret.hex() not in caplog.text and key.secret.hex() not in repr(scheme.processor())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["kgw", "kgw-selfhash", "gumbel"])
def test_processor_output_is_identical_on_cuda(kat_key, name):
    """The whole processor (not only the PRF bits) gives the same logits on CPU and GPU."""
    scheme = make_scheme(name, kat_key)
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 49152, (6, 12), generator=gen)
    logits = torch.randn(6, 49152, generator=gen) * 3
    cpu = scheme.processor()(ids, logits.clone())
    gpu = scheme.processor()(ids.cuda(), logits.clone().cuda()).cpu()
    assert torch.equal(cpu.isinf(), gpu.isinf())
    finite = ~cpu.isinf()
    assert torch.allclose(cpu[finite], gpu[finite], rtol=0, atol=1e-5)
    assert torch.equal(cpu.argmax(-1), gpu.argmax(-1))
