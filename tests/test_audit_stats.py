"""The audit's statistics on synthetic corpora: calibration on nulls, power, and the selection rules.

A synthetic "teacher" is a random bigram table over a small vocabulary, watermarked with the real
KGW scheme; suspects are token-level predictors. The copying suspect (predicts whatever followed
the current window earlier in its input) is the hardest honest null: it is independent of the key,
yet it reproduces green tokens whenever a window repeats.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from distillscope.audit.attribution import sign_test
from distillscope.audit.combine import P_FLOOR, holm
from distillscope.audit.zoo import Zoo, ZooMember
from distillscope.audit.radioactivity import (TokenText, score_pairs, select_blackbox_pairs, select_reading_pairs,
                                              window_document_frequency)
from distillscope.errors import AuditError
from distillscope.watermark import WatermarkKey, make_scheme

V = 200


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one torch thread is much faster than several on a shared, busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _scheme(seed: int, **params):
    rng = np.random.default_rng(seed)
    return make_scheme("kgw", WatermarkKey(bytes(rng.integers(0, 256, 32, dtype=np.uint8))), **params)


def _generate(scheme, table: torch.Tensor, n_texts: int, length: int, seed: int, *, watermark: bool = True,
              prompts: list[list[int]] | None = None) -> list[TokenText]:
    """Sample texts from a bigram table (optionally watermarked); prompts are fed before each text."""
    gen = torch.Generator().manual_seed(seed)
    h = scheme.context_width
    starts = prompts or [list(torch.randint(0, V, (h,), generator=gen).tolist()) for _ in range(n_texts)]
    seqs = [list(p) for p in starts]
    proc = scheme.processor()
    for _ in range(length):
        last = torch.tensor([s[-1] for s in seqs])
        scores = table[last].clone()
        if watermark:
            ids = torch.tensor([s[-h:] for s in seqs])
            scores = proc(ids, scores)
        nxt = torch.multinomial(torch.softmax(scores, -1), 1, generator=gen)[:, 0].tolist()
        for s, t in zip(seqs, nxt):
            s.append(int(t))
    return [TokenText(tuple(p), tuple(s[len(p):])) for p, s in zip(starts, seqs)]


def _table(seed: int) -> torch.Tensor:
    return torch.randn((V, V), generator=torch.Generator().manual_seed(seed)) * 2.0


def bigram_predict(table: torch.Tensor, texts, k: int = 1):
    return [[tuple(torch.topk(table[t.stream[len(t.prompt_ids) + i - 1]], k).indices.tolist())
             for i in range(len(t.answer_ids))] for t in texts]


def copy_predict(table: torch.Tensor, texts, h: int):
    """Induction copying: after window w, predict the token that followed w last time in the input."""
    out = []
    for t in texts:
        s, start, preds, memory = t.stream, len(t.prompt_ids), [], {}
        for pos in range(h, len(s)):
            w = tuple(s[pos - h:pos])
            if pos >= start:
                preds.append((memory[w],) if w in memory else (int(torch.argmax(table[s[pos - 1]])),))
            memory[w] = s[pos]
        out.append(preds[-len(t.answer_ids):] if t.answer_ids else [])
    return out


def _p(scheme, pairs) -> float:
    return score_pairs(scheme.detector(), pairs, curve_points=0, chunk=10**9).p_value


def _ks_ok(ps: list[float]) -> None:
    """p-values are (at least) uniform: not stochastically smaller, and not wildly different overall."""
    assert stats.kstest(ps, "uniform", alternative="greater").pvalue > 0.01, sorted(ps)[:10]
    assert stats.kstest(ps, "uniform").pvalue > 0.001


def _fpr_ok(ps: list[float], alpha: float = 0.01) -> None:
    rejections = sum(p <= alpha for p in ps)
    bound = stats.binom.ppf(0.999, len(ps), alpha)  # what an exact test exceeds with probability 0.001
    assert rejections <= bound, f"{rejections} of {len(ps)} null p-values ≤ {alpha}"


@pytest.mark.slow
@pytest.mark.parametrize("h", [1, 2])
def test_reading_mode_is_calibrated_on_copying_null_models(h):
    ps = []
    for rep in range(150):
        scheme, table = _scheme(rep, context_width=h, delta=4.0), _table(1000 + rep)
        texts = _generate(scheme, table, 6, 60, seed=rep)
        sel = select_reading_pairs(texts, copy_predict(_table(5000 + rep), texts, h), h)
        ps.append(_p(scheme, sel.pairs))
    assert all(p >= P_FLOOR for p in ps)
    _ks_ok(ps)
    _fpr_ok(ps)


def test_skipping_seen_window_exclusion_makes_a_clean_copier_look_radioactive():
    scheme, table = _scheme(7, delta=4.0), _table(7)
    texts = _generate(scheme, table, 20, 120, seed=7)
    preds = copy_predict(_table(99), texts, 1)
    naive = select_reading_pairs(texts, preds, 1, exclude_seen_windows=False)
    safe = select_reading_pairs(texts, preds, 1)
    assert _p(scheme, naive.pairs) < 1e-6           # a clean model, falsely "radioactive"
    assert _p(scheme, safe.pairs) > 1e-3
    assert safe.n_seen_windows > 0


def test_skipping_prompt_window_exclusion_gives_a_false_positive():
    """Prompts that quote our watermarked text: a copier copies green tokens out of the prompt."""
    scheme, table = _scheme(11, delta=4.0), _table(11)
    quoted = _generate(scheme, table, 30, 80, seed=1)
    prompts = [list(q.stream) for q in quoted]
    texts = _generate(scheme, table, 30, 5, seed=2, prompts=prompts)
    # the answer is short; nearly every window already occurred in the (watermarked) prompt
    preds = copy_predict(_table(98), texts, 1)
    naive = select_reading_pairs(texts, preds, 1, exclude_seen_windows=False, dedup=True)
    safe = select_reading_pairs(texts, preds, 1)
    assert _p(scheme, naive.pairs) < 1e-2
    assert _p(scheme, safe.pairs) > 0.01 or len(safe.pairs) == 0


def test_skipping_dedup_turns_one_lucky_text_into_a_false_positive():
    scheme, table = _scheme(13, delta=4.0), _table(13)
    null_table = _table(97)
    for seed in range(200):  # find a clean text whose few tuples happen to be mostly green
        text = _generate(scheme, table, 1, 12, seed=seed)
        pairs = select_reading_pairs(text, bigram_predict(null_table, text), 1).pairs
        if len(pairs) >= 5 and _p(scheme, pairs) < 0.2:
            break
    corpus = text * 40  # the same harvested answer, stored 40 times
    preds = bigram_predict(null_table, corpus)
    naive = select_reading_pairs(corpus, preds, 1, dedup=False, exclude_seen_windows=False)
    pairs = list(naive.pairs)
    detector = scheme.detector()
    assert detector.score_pairs(pairs, dedup=False).p_value < 1e-4
    assert _p(scheme, select_reading_pairs(corpus, preds, 1).pairs) > 0.01


def test_reading_mode_detects_a_student_that_learned_the_watermark():
    scheme, table = _scheme(21, delta=2.0), _table(21)
    texts = _generate(scheme, table, 30, 80, seed=3)
    ctx = torch.arange(V)[:, None]
    green = (scheme.token_bits(ctx, None, vocab_size=V)[0] < scheme.threshold).float()
    student = _table(21) * 0.5 + _table(77) * 0.5 + 2.0 * green  # half the teacher, plus its green bias
    sel = select_reading_pairs(texts, bigram_predict(student, texts), 1)
    control = select_reading_pairs(texts, bigram_predict(_table(21) * 0.5 + _table(77) * 0.5, texts), 1)
    assert _p(scheme, sel.pairs) < 1e-6
    assert _p(scheme, control.pairs) > 1e-3


@pytest.mark.slow
def test_blackbox_mode_is_calibrated_and_has_power():
    ps = []
    for rep in range(150):
        scheme, table = _scheme(300 + rep, delta=4.0), _table(rep)
        corpus = _generate(scheme, table, 10, 60, seed=rep)
        frequent = {w for w, c in window_document_frequency([t.answer_ids for t in corpus], 1).items() if c >= 2}
        answers = _generate(scheme, table, 10, 60, seed=10_000 + rep, watermark=False)  # same style, no key
        ps.append(_p(scheme, select_blackbox_pairs([a.answer_ids for a in answers], 1, frequent).pairs))
    _ks_ok(ps)
    _fpr_ok(ps)
    scheme, table = _scheme(1, delta=4.0), _table(1)
    corpus = _generate(scheme, table, 10, 60, seed=1)
    frequent = {w for w, c in window_document_frequency([t.answer_ids for t in corpus], 1).items() if c >= 2}
    marked = _generate(scheme, table, 10, 60, seed=2)  # a student that writes like the watermarked teacher
    assert _p(scheme, select_blackbox_pairs([a.answer_ids for a in marked], 1, frequent).pairs) < 1e-6


def test_sign_test_is_exact_and_calibrated():
    rng = np.random.default_rng(0)
    ps = [sign_test(rng.normal(size=40), rng.normal(size=40)).p_value for _ in range(2000)]
    _fpr_ok(ps, 0.01)
    assert stats.kstest(ps, "uniform", alternative="greater").pvalue > 0.01
    st = sign_test([1.0] * 10, [0.0] * 10)
    assert st.p_value == pytest.approx(0.5 ** 10) and st.positives == 10
    assert sign_test([1.0] * 3000, [0.0] * 3000).p_value >= P_FLOOR > 0.0  # floored, never 0.0
    assert sign_test([0.0, 1.0], [0.0, 0.0]).n == 1  # ties dropped


def test_holm():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    rng = np.random.default_rng(2)
    _fpr_ok([min(holm(list(rng.uniform(size=3)))) for _ in range(3000)], 0.01)
    with pytest.raises(AuditError, match="outside"):
        holm([1.5])


def _bigram_logprob(table: torch.Tensor, seq: list[int]) -> float:
    logp = torch.log_softmax(table, -1)
    return float(sum(logp[a, b] for a, b in zip(seq[:-1], seq[1:])))


def _sample(table: torch.Tensor, n: int, length: int, gen: torch.Generator) -> list[list[int]]:
    seqs = [[int(torch.randint(0, V, (1,), generator=gen))] for _ in range(n)]
    for _ in range(length):
        nxt = torch.multinomial(torch.softmax(table[[s[-1] for s in seqs]], -1), 1, generator=gen)[:, 0]
        for s, t in zip(seqs, nxt.tolist()):
            s.append(int(t))
    return seqs


def _zoo(values) -> Zoo:
    members = tuple(ZooMember(f"m{i}", "scratch", "bigram", "sim", str(i), float(v)) for i, v in enumerate(values))
    return Zoo("t", "tf", ("r",), ("rf",), ("q",), 8, 1.0, 0, "float32", members)


@pytest.mark.slow
def test_zoo_pvalues_are_uniform_on_innocents():
    """Suspect and zoo members are independent models of one population (bigram tables answering from
    their own tables): the conformal p-value of an innocent suspect is uniform on {1/(n+1), ..., 1}."""
    ps, gen = [], torch.Generator().manual_seed(0)
    teacher, ref = _table(20_000), _table(30_000)

    def mean_affinity(table):
        return float(np.mean([_bigram_logprob(teacher, s) - _bigram_logprob(ref, s) for s in _sample(table, 10, 12, gen)]))

    population = [mean_affinity(_table(40_000 + i)) for i in range(200)]
    rng = np.random.default_rng(3)
    for rep in range(400):
        pick = rng.choice(len(population), size=10, replace=False)
        zoo = _zoo([population[i] for i in pick[1:]])
        ps.append(zoo.compare(population[pick[0]]).p_value)
    assert min(ps) == pytest.approx(1 / 10)
    for u in (0.1, 0.3, 0.5):   # P(p ≤ u) ≤ u, within binomial noise
        assert np.mean(np.array(ps) <= u + 1e-12) <= u + 3 * math.sqrt(u * (1 - u) / len(ps))
    assert abs(np.mean(np.array(ps) <= 0.5 + 1e-12) - 0.5) < 0.1    # and not far below: uniform
    # a student of the teacher (its table mixed with the teacher's) ranks first
    student = torch.log_softmax(teacher, -1) * 0.7 + torch.log_softmax(_table(50_000), -1) * 0.3
    assert _zoo(population[:19]).compare(mean_affinity(student)).p_value == pytest.approx(1 / 20)


def test_a_zoo_restricted_to_its_first_prompts_recomputes_every_member():
    members = tuple(ZooMember(f"m{i}", "scratch", "f", "s", str(i), 0.0, per)
                    for i, per in enumerate([(1.0, 2.0, 3.0), (0.0, 0.0, 9.0), (2.0, None, 1.0)]))
    zoo = Zoo("t", "tf", ("r",), ("rf",), ("a", "b", "c"), 8, 1.0, 0, "float32", members)
    small = zoo.restrict(2)
    assert small.prompts == ("a", "b") and [m.affinity for m in small.members] == [1.5, 0.0, 2.0]
    assert zoo.restrict(5) is zoo
    with pytest.raises(AuditError):
        zoo.restrict(0)


@pytest.mark.slow
def test_constructed_case_old_rule_accuses_an_innocent_new_rule_does_not():
    """An innocent suspect (its own bigram table), a control that imitates the reference model, 500
    prompts: the old passive sign test 'wins' at a tiny p-value and, Fisher-joined with a null
    radioactivity p-value, accused. Now the verdict rests on radioactivity alone, and the suspect's
    zoo rank among other independent models is unremarkable."""
    from distillscope.audit.combine import combine_audit
    from distillscope.audit.results import ModelAudit, TestResult
    from distillscope.audit.verdict import decide

    gen = torch.Generator().manual_seed(7)
    teacher, ref = _table(60_000), _table(60_001)

    def affinities(table, n):
        return [_bigram_logprob(teacher, s) - _bigram_logprob(ref, s) for s in _sample(table, n, 12, gen)]

    suspect, control = affinities(_table(60_002), 500), affinities(ref, 500)   # control = the reference itself
    old = sign_test(suspect, control).p_value
    assert old < 1e-12                                                        # "more teacher-like than the control"
    assert stats.combine_pvalues([0.5, old], method="fisher").pvalue < 1e-6   # the old accusation
    audits = {}
    for role, aff in (("suspect", suspect), ("control", control)):
        tests = (TestResult("blackbox", "binomial", "ok", 1500, 0.25 * 1500, "", 0.5),
                 TestResult("passive", "zoo", "ok", len(aff), float(np.mean(aff)), "", old if role == "suspect" else 1.0))
        comb = combine_audit({t.test: t.p_value for t in tests})
        audits[role] = ModelAudit(role, role, role, role, tests, comb.p_value, comb.method)
    v = decide(audits["suspect"], audits["control"], alpha=1e-6, control_alpha=0.01, gamma=0.25)
    assert v.label == "no evidence" and v.suspect_p == 0.5
    zoo = _zoo([float(np.mean(affinities(_table(61_000 + i), 100))) for i in range(19)])
    assert zoo.compare(float(np.mean(suspect[:100]))).p_value > 0.05
