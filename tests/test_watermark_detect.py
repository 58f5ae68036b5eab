"""Detection: exact p-values, null calibration of every scheme, power on a tiny model,
deduplication, prompts never scored, short and empty inputs."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
from scipy import stats

from distillscope.errors import WatermarkError
from distillscope.watermark import WatermarkKey, make_scheme
from distillscope.watermark.pvalues import P_FLOOR, binomial_upper_tail, gamma_upper_tail

SCHEMES = ["kgw", "kgw-selfhash", "gumbel"]
N_NULL = 2000


@pytest.fixture(scope="module")
def key():
    return WatermarkKey(bytes.fromhex("5a" * 32))


# -- p-value maths ----------------------------------------------------------------------------------
@pytest.mark.parametrize("k,n", [(1, 1), (30, 100), (60, 100), (300, 300), (700, 700), (2000, 2500)])
def test_binomial_tail_matches_exact_rational_arithmetic(k, n):
    p = Fraction(1, 4)
    exact = sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k, n + 1))
    exact_log10 = math.log10(exact.numerator) - math.log10(exact.denominator)
    p_value, log10_p = binomial_upper_tail(k, n, 0.25)
    assert log10_p == pytest.approx(exact_log10, rel=1e-9, abs=1e-12)
    assert p_value > 0.0 and p_value >= float(exact) * (1 - 1e-9)   # never 0, never below the truth


@pytest.mark.parametrize("score,n", [(0.5, 1), (30.0, 20), (150.0, 60), (900.0, 100), (5000.0, 400)])
def test_gamma_tail_matches_arbitrary_precision(score, n):
    mpmath.mp.dps = 50
    exact = mpmath.gammainc(n, score, mpmath.inf, regularized=True)
    p_value, log10_p = gamma_upper_tail(score, n)
    assert log10_p == pytest.approx(float(mpmath.log10(exact)), rel=1e-9)
    assert p_value > 0.0


def test_p_values_stay_finite_and_positive_far_below_1e30():
    p, log10_p = binomial_upper_tail(2000, 2000, 0.25)
    assert p == P_FLOOR and log10_p == pytest.approx(2000 * math.log10(0.25))
    p, log10_p = binomial_upper_tail(60, 60, 0.25)
    assert 0.0 < p < 1e-30 and log10_p == pytest.approx(60 * math.log10(0.25))
    assert binomial_upper_tail(0, 10, 0.25) == (1.0, 0.0)


# -- null calibration: text independent of the key ---------------------------------------------------
def _null_detections(scheme, n_seq, rng, length=200, vocab=32_000):
    det = scheme.detector()
    return [det.detect(rng.integers(0, vocab, size=length).tolist(), prompt_ids=rng.integers(0, vocab, 4).tolist())
            for _ in range(n_seq)]


def _randomised_binomial_p(d, p0, rng):
    """Exactly uniform under the null: P(X > k) + V * P(X = k)."""
    k, n = int(d.score), d.n_scored
    return stats.binom.sf(k, n, p0) + rng.random() * stats.binom.pmf(k, n, p0)


@pytest.mark.slow
@pytest.mark.parametrize("name", SCHEMES)
def test_null_p_values_are_uniform_and_false_positive_rate_is_bounded(key, name):
    rng = np.random.default_rng(2024)
    scheme = make_scheme(name, key)
    dets = _null_detections(scheme, N_NULL, rng)
    p = np.array([d.p_value for d in dets])
    assert all(d.n_scored >= 150 for d in dets)
    # never anti-conservative: the empirical CDF does not rise above the uniform CDF
    assert stats.kstest(p, "uniform", alternative="greater").pvalue > 1e-3
    if name == "gumbel":
        assert stats.kstest(p, "uniform").pvalue > 1e-3                  # continuous: uniform
        size = 0.01
    else:
        p0 = scheme.green_probability                                   # discrete: exact randomised test
        pr = np.array([_randomised_binomial_p(d, p0, rng) for d in dets])
        assert stats.kstest(pr, "uniform").pvalue > 1e-3
        size = float(np.mean([_attained_size(d.n_scored, p0, 0.01) for d in dets]))
    fp = int((p <= 0.01).sum())
    lo, hi = stats.binom.ppf([0.0005, 0.9995], N_NULL, size)
    assert lo <= fp <= hi, (fp, size)
    assert fp <= stats.binom.ppf(0.9995, N_NULL, 0.01)


def _attained_size(n, p0, alpha):
    """The exact probability that the binomial test of n tuples rejects at level alpha."""
    crit = int(stats.binom.isf(alpha, n, p0)) + 1
    while binomial_upper_tail(crit - 1, n, p0)[0] <= alpha:
        crit -= 1
    while binomial_upper_tail(crit, n, p0)[0] > alpha:
        crit += 1
    return binomial_upper_tail(crit, n, p0)[0]


@pytest.mark.slow
def test_deduplication_keeps_repetitive_null_text_calibrated(key):
    """Repetitive text (a few phrases repeated) is anti-conservative without dedup, valid with it."""
    rng = np.random.default_rng(5)
    det = make_scheme("kgw", key).detector()
    p_dedup, p_raw = [], []
    for _ in range(400):
        phrases = [rng.integers(0, 32_000, size=8).tolist() for _ in range(3)]
        ids = sum((phrases[i] for i in rng.integers(0, 3, size=20)), [])
        p_dedup.append(det.detect(ids).p_value)
        pairs = [((ids[i - 1],), ids[i]) for i in range(1, len(ids))]
        p_raw.append(det.score_pairs(pairs, dedup=False).p_value)
    assert np.mean(np.array(p_raw) <= 0.01) > 0.05             # without dedup: far too many false alarms
    assert np.mean(np.array(p_dedup) <= 0.01) <= stats.binom.ppf(0.999, 400, 0.01) / 400


def test_dedup_counts_each_context_token_tuple_once(key):
    det = make_scheme("kgw", key).detector()
    ids = [5, 6, 7] * 30
    d = det.detect(ids)
    assert (d.n_tokens, d.n_scored) == (90, 3)                 # (5,6) (6,7) (7,5)
    pairs = [((ids[i - 1],), ids[i]) for i in range(1, 90)]
    assert det.score_pairs(pairs, dedup=False).n_scored == 89
    assert det.score_pairs(pairs).n_scored == 3
    d4 = make_scheme("gumbel", key).detector().detect(ids)
    assert d4.n_scored == 3                                     # 4-token windows of a period-3 cycle


# -- prompts, short and malformed inputs ------------------------------------------------------------
def test_prompt_supplies_context_but_is_never_scored(key):
    scheme = make_scheme("kgw", key)
    det = scheme.detector()
    gen = [101, 202, 303, 404]
    green = [t for t in range(2000) if scheme.token_bits(torch.tensor([[t]]), torch.tensor([[t]]))[0][0, 0]
             < scheme.threshold]
    a = det.detect(gen, prompt_ids=[9, 9, 9, 77])
    b = det.detect(gen, prompt_ids=green[:50] + [77])          # a prompt full of green tokens
    assert a.n_tokens == b.n_tokens == 4 and a.n_scored == b.n_scored == 4
    assert a.score == b.score and a.p_value == b.p_value
    assert det.detect(gen).n_scored == 3                       # no prompt: first token has no context


def test_empty_and_short_inputs_are_graceful(key):
    for name in SCHEMES:
        det = make_scheme(name, key).detector()
        for ids in ([], [17], [1, 2, 3]):
            d = det.detect(ids)
            expected = len(ids) - 1 if name == "kgw" and ids else 0     # context widths 1 and 4
            assert d.n_tokens == len(ids) and d.n_scored == expected
            assert (d.z is None) == (expected == 0) and 0.0 < d.p_value <= 1.0
            assert d.p_value == 1.0 or expected > 0


def test_bad_detector_inputs_raise_watermark_errors(key):
    det = make_scheme("kgw", key).detector()
    with pytest.raises(WatermarkError, match=r"token_ids\[1\] = -3"):
        det.detect([1, -3])
    with pytest.raises(WatermarkError, match="1-D"):
        det.detect(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(WatermarkError, match="no tokenizer"):
        det.detect_text("hello")
    with pytest.raises(WatermarkError, match="context of 2 ids.*exactly 1"):
        det.score_pairs([((1, 2), 3)])


# -- power: a tiny random Llama generating with the processor ----------------------------------------
@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def _generate(model, processors, seed):
    torch.manual_seed(seed)
    prompts = torch.randint(3, 1000, (8, 6))
    prompts[:4, :2] = 0                                          # left padding in half the batch
    mask = (prompts != 0).long()
    with torch.inference_mode():
        out = model.generate(prompts, attention_mask=mask, max_new_tokens=30, do_sample=True, temperature=0.7,
                             top_k=50, top_p=0.95, logits_processor=processors, pad_token_id=0, eos_token_id=None)
    return [(out[i, :6][mask[i] == 1].tolist(), out[i, 6:].tolist()) for i in range(len(out))]


@pytest.fixture(scope="module")
def plain_generations(tiny_llama):
    return _generate(tiny_llama, [], seed=1)


@pytest.mark.parametrize("name", SCHEMES)
def test_watermarked_generations_are_detected_and_plain_ones_are_not(key, tiny_llama, plain_generations, name):
    scheme = make_scheme(name, key)
    det = scheme.detector()
    marked = _generate(tiny_llama, [scheme.processor(temperature=0.7, top_k=50, top_p=0.95)], seed=1)
    p_marked = [det.detect(g, prompt_ids=p).p_value for p, g in marked]
    p_plain = [det.detect(g, prompt_ids=p).p_value for p, g in plain_generations]
    assert max(p_marked) < 1e-5, p_marked
    assert min(p_plain) > 1e-4, p_plain
    other_key = make_scheme(name, WatermarkKey(bytes(32))).detector()
    assert min(other_key.detect(g, prompt_ids=p).p_value for p, g in marked) > 1e-4


def test_gumbel_sampling_is_distortion_free(key):
    """Over many contexts, the Gumbel-max choice follows the warped distribution exactly."""
    scheme = make_scheme("gumbel", key)
    proc = scheme.processor(temperature=0.8, top_k=6, top_p=0.9)
    logits = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0]]).repeat(4000, 1)
    contexts = torch.arange(4000 * 4).reshape(4000, 4)
    chosen = proc(contexts, logits).argmax(-1)
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warped = TopPLogitsWarper(0.9)(None, TopKLogitsWarper(6)(None, TemperatureLogitsWarper(0.8)(None, logits[:1])))
    probs = warped.softmax(-1)[0].double().numpy()
    support = probs > 0
    counts = np.bincount(chosen.numpy(), minlength=8)
    assert counts[~support].sum() == 0
    expected = probs[support] / probs[support].sum() * counts.sum()
    assert stats.chisquare(counts[support], expected).pvalue > 1e-3


def test_kgw_bias_raises_the_green_fraction_as_expected(key):
    scheme = make_scheme("kgw", key, gamma=0.25, delta=2.0)
    gen = torch.Generator().manual_seed(0)
    contexts = torch.randint(0, 5000, (2000, 1), generator=gen)
    scores = scheme.processor()(contexts, torch.zeros(2000, 5000))
    chosen = torch.multinomial(scores.softmax(-1), 1, generator=gen)
    green = (scheme.token_bits(contexts, chosen)[0] < scheme.threshold).double().mean().item()
    expected = 0.25 * math.e ** 2 / (0.25 * math.e ** 2 + 0.75)
    assert abs(green - expected) < 4 * math.sqrt(expected * (1 - expected) / 2000) + 0.01


def test_gumbel_leaves_repeated_context_windows_to_plain_sampling(key):
    scheme = make_scheme("gumbel", key)
    logits = torch.randn(2, 100, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[5, 6, 7, 8, 9, 5, 6, 7, 8],            # window 5 6 7 8 seen before
                        [1, 6, 7, 8, 9, 5, 6, 7, 8]])
    out = scheme.processor(temperature=0.7, top_k=20)(ids, logits.clone())
    assert torch.equal(out[0], logits[0])
    assert int(out[1].isfinite().sum()) == 1
    no_skip = make_scheme("gumbel", key, skip_repeated=False).processor(temperature=0.7, top_k=20)(ids, logits)
    assert int(no_skip[0].isfinite().sum()) == 1 and torch.equal(no_skip[1], out[1])


def test_detect_batch_matches_single_detections(key):
    det = make_scheme("kgw", key).detector()
    seqs = [list(range(i, i + 30)) for i in range(0, 90, 30)] + [[]]
    assert det.detect_batch(seqs) == [det.detect(s) for s in seqs]
