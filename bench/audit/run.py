"""Benchmark: radioactivity of students fine-tuned on a fraction ρ of watermarked teacher output.

Setting (after Sander et al. 2024, "Watermarking Makes Language Models Radioactive"). A teacher
answers N + M prompts twice: with our watermark (KGW, γ = 0.25, δ = 2, h = 1, a fixed benchmark
key) and without it. Student ρ is fine-tuned on N answers, the first round(ρN) watermarked and the
rest the same teacher's unwatermarked answers to the other prompts (same style, same prompts for
every student; only which answers carry the watermark changes). Null students are trained the
same way on the N clean answers only. Every student is audited three ways:

* **open, trained texts** — Sander's *supervised* reading mode: the watermarked texts that were in
  the student's training set (at most ``open_texts`` of them) are fed through it and its top-1
  predictions are scored (``select_reading_pairs``: dedup + first-appearance window rule);
* **open, held-out texts** — the M watermarked answers to prompts no student trained on;
* **black-box, first prompts** (``blackbox``) — the student answers the first ``bb_tokens /
  answer_tokens`` of our N + M prompts (cycled) by sampling; the answers are scored with the filter
  of windows occurring in ≥ 2 of our N + M watermarked texts (``select_blackbox_pairs``). Only the
  first round(ρN) of those prompts were served to it with our watermark;
* **black-box, served prompts** (``blackbox_served``) — what a provider does with its gateway log:
  the student answers the prompts whose watermarked answers it was trained on (the harvesting
  accounts' requests; cycled up to ``bb_tokens``), filter on the windows of those served texts.
  Null students get the prompts and texts of ρ = 5 %'s share (round(0.05 N)) under their own key.

For both black-box modes we report the generated tokens and scored tuples at which p first fell
below 1e-5.

Each null student is audited with its own fresh key and its own freshly generated watermarked
corpus (N + M texts), so the null p-values are independent draws; we report the false-positive
rate at α = 0.01 and a KS test of uniformity per mode. The models, text and vocabulary are
described in ``bench/audit/lm.py`` (docstring-English, compact SmolLM2 vocabulary, tiny Llamas).

    python bench/audit/run.py                       # cpu: 1,000 texts, 1,024-token vocabulary, 20 nulls
                                                    #   (~35 min on one core) -> bench/results/audit.json
    python bench/audit/run.py --preset cpu-large    # 5,000 texts, 4,096-token vocabulary, ρ ∈ {20, 5, 1} %
                                                    #   (~9 min per student on one core)
                                                    #   -> bench/results/audit-cpu-large.json
    python bench/audit/run.py --preset gpu --device cuda   # 5,000 texts, 8,192 tokens, 256-dim students
    python bench/audit/run.py --render bench/results/audit.json   # the docs/benchmarks.md tables
    python bench/audit/run.py --set 'rhos=[0.05,0.2]' --nulls 0 --set 'bb_temperatures=[1.0,0.7,0.5,0.3]' \
        --out bench/results/audit-bb-temperature.json   # black-box sampling temperature sweep

``bb_temperatures``: the black-box answers are sampled at each of these temperatures (same prompts
and seed); the first is the headline ``blackbox`` result, the others are ``blackbox_tT``, for the
suspects and the nulls alike (each null p-value of each temperature is summarised).

With h = 1 and top-1 predictions, the first-appearance rule scores each vocabulary entry at most
once per audited corpus, so reading mode's n is capped by the number of distinct tokens in the
fed texts (about 260 in the 50 texts of ρ = 5 % with 128-token answers and the 1,024-token
vocabulary; 128-token answers instead of 32 lifted it from about 176); ``cpu-large`` raises that cap
with a 4,096-token vocabulary and gives ρ = 5 % five times more watermarked text (250 of 5,000
answers). Pass ``--set KEY=JSON`` to override a preset value.

Reference: Sander et al. report p < 1e-5 at ρ = 5 % for an open-weights suspect and needed about
37k scored tokens for p < 1e-5 at ρ = 5 % in closed mode.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import lm  # noqa: E402
from distillscope.audit.radioactivity import (TokenText, score_pairs, select_blackbox_pairs,  # noqa: E402
                                              select_reading_pairs, window_document_frequency)
from distillscope.teacher import load_tokenizer  # noqa: E402
from distillscope.watermark import WatermarkKey, make_scheme  # noqa: E402

logger = logging.getLogger("bench.audit")
P_TARGET = 1e-5

_COMMON = dict(corpus_chars=3_000_000, prompt_tokens=8, rhos=(1.0, 0.2, 0.05, 0.01), gamma=0.25, delta=2.0,
               context_width=1, top_k=50, open_topk=(1, 2, 4, 8), temperature=1.0, min_window_df=2,
               bb_temperatures=(1.0,))
PRESETS = {
    "cpu": dict(_COMMON, vocab=1024, dim=64, layers=2, base_epochs=1, teacher_epochs=2, train_texts=1000,
                heldout_texts=100, answer_tokens=128, epochs=12, lr=5e-3, batch=50, nulls=20, open_texts=100,
                bb_tokens=24_576),
    "cpu-large": dict(_COMMON, vocab=4096, dim=64, layers=2, base_epochs=1, teacher_epochs=2, train_texts=5000,
                      heldout_texts=100, answer_tokens=128, epochs=12, lr=5e-3, batch=50, nulls=20, open_texts=100,
                      bb_tokens=131_072, rhos=(0.2, 0.05, 0.01), bb_temperatures=(1.0, 0.7)),
    "gpu": dict(_COMMON, vocab=8192, dim=256, layers=4, base_epochs=2, teacher_epochs=6, train_texts=5000,
                heldout_texts=500, answer_tokens=128, epochs=8, lr=2e-3, batch=128, nulls=30, open_texts=500,
                bb_tokens=131_072),
    "smoke": dict(_COMMON, corpus_chars=200_000, rhos=(1.0, 0.05), vocab=256, dim=32, layers=1, base_epochs=0.2,
                  teacher_epochs=0.4, train_texts=100, heldout_texts=20, answer_tokens=16, epochs=1, lr=2e-3,
                  batch=32, nulls=2, open_texts=50, bb_tokens=1024),
}


def bench_key(label: str) -> WatermarkKey:
    """A deterministic key per label: the run is reproducible, the key id is recorded."""
    return WatermarkKey.from_hex(hashlib.sha256(f"distillscope-bench-audit/{label}".encode()).hexdigest())


def pretrained(docs, vocab: lm.Vocab, cfg, device, work: Path):
    """The student base and the teacher: one Llama pretrained on the docstring corpus (next-token loss
    on 72-token chunks); its state after ``base_epochs`` is the student base, after ``teacher_epochs``
    the teacher. Cached in ``work``."""
    tag = hashlib.sha256(json.dumps([cfg["dim"], cfg["layers"], cfg["base_epochs"], cfg["teacher_epochs"],
                                     vocab.real.tolist(), len(docs)]).encode()).hexdigest()[:12]
    paths = work / f"base-{tag}.pt", work / f"teacher-{tag}.pt"
    base = lm.new_model(vocab.size, cfg["dim"], cfg["layers"], 0)
    teacher = lm.new_model(vocab.size, cfg["dim"], cfg["layers"], 0)
    info_path = work / f"pretraining-{tag}.json"
    if all(p.exists() for p in (*paths, info_path)):
        base.load_state_dict(torch.load(paths[0], map_location="cpu"))
        teacher.load_state_dict(torch.load(paths[1], map_location="cpu"))
        return base.to(device).eval(), teacher.to(device).eval(), {**json.loads(info_path.read_text()),
                                                                   "cached": True}
    seqs = [([lm.BOS], d[i:i + 72]) for d in docs for i in range(0, len(d) - 8, 72)]
    b_loss = lm.train(base, seqs, epochs=cfg["base_epochs"], lr=3e-3, batch=64, seed=0, device=device)
    teacher.load_state_dict(base.state_dict())
    t_loss = lm.train(teacher, seqs, epochs=cfg["teacher_epochs"] - cfg["base_epochs"], lr=2e-3, batch=64, seed=1,
                      device=device)
    work.mkdir(parents=True, exist_ok=True)
    torch.save(base.state_dict(), paths[0])
    torch.save(teacher.state_dict(), paths[1])
    info = {"base_loss_per_epoch": b_loss, "teacher_extra_loss_per_epoch": t_loss}
    info_path.write_text(json.dumps(info))
    return base, teacher, info


def make_prompts(docs, count: int, width: int) -> list[list[int]]:
    """Distinct ``[BOS] + width`` id prompts: successive slices of the docstring paragraphs."""
    seen, out = set(), []
    for offset in range(0, 512, 24):
        for d in docs:
            p = tuple(d[offset:offset + width])
            if len(p) == width and p not in seen:
                seen.add(p)
                out.append([lm.BOS, *p])
                if len(out) == count:
                    return out
    raise SystemExit(f"only {len(out)} distinct prompts available, {count} needed: lower train_texts")


def to_texts(vocab, prompts, answers) -> list[TokenText]:
    return [TokenText(tuple(vocab.to_real(p)), tuple(vocab.to_real(a))) for p, a in zip(prompts, answers)]


def first_crossing(bits: np.ndarray, ends: list[int], gamma: float) -> int | None:
    """Index of the first boundary ``ends[i]`` (a count of scored tuples) where the exact binomial
    p-value of the first ``ends[i]`` bits falls below P_TARGET."""
    if not ends:
        return None
    cum = np.concatenate([[0], np.cumsum(bits)])
    n = np.asarray(ends)
    k = cum[n]
    p = np.where(n > 0, stats.binom.sf(k - 1, np.maximum(n, 1), gamma), 1.0)
    hit = np.nonzero(p < P_TARGET)[0]
    return int(hit[0]) if hit.size else None


def kl_extrapolation(green: float | None, gamma: float) -> float | None:
    """Tuples needed for P_TARGET if the green fraction stayed at ``green`` (Chernoff/KL rate)."""
    if green is None or green <= gamma or green >= 1:
        return None
    kl = green * math.log(green / gamma) + (1 - green) * math.log((1 - green) / (1 - gamma))
    return math.log(1 / P_TARGET) / kl


def green_bits(scheme, pairs) -> np.ndarray:
    if not pairs:
        return np.zeros(0, dtype=np.int64)
    bits, _ = scheme.token_bits(torch.tensor([w for w, _ in pairs]), torch.tensor([[y] for _, y in pairs]))
    return (bits[:, 0] < scheme.threshold).numpy().astype(np.int64)


def result(sel, sc, scheme, bits: np.ndarray, ends: list[int]) -> dict:
    gamma = scheme.green_probability
    green = sc.score / sc.n_scored if sc.n_scored else None
    hit = first_crossing(bits, ends, gamma)
    return {"p_value": sc.p_value, "n_scored": sc.n_scored, "green_fraction": green,
            "tuples_for_p_1e-5": ends[hit] if hit is not None else None,
            "tuples_for_p_1e-5_extrapolated": None if hit is not None else kl_extrapolation(green, gamma),
            "selection": sel.summary(), "curve": [list(c) for c in sc.curve]}


def audit_open(student, scheme, vocab, prompts, answers, cfg, device) -> dict:
    """Reading mode on (prompt, watermarked answer) pairs: the student's top-k at each answer position,
    for every k in ``cfg["open_topk"]`` (the first is the headline)."""
    texts = to_texts(vocab, prompts, answers)
    ks = list(cfg["open_topk"])
    tops = lm.topk(student, [p + a for p, a in zip(prompts, answers)], max(ks), batch=128, device=device)
    out = {}
    for k in ks:
        preds = [[vocab.to_real(top[len(p) - 1 + t][:k]) for t in range(len(a))]
                 for p, a, top in zip(prompts, answers, tops)]
        sel = select_reading_pairs(texts, preds, scheme.context_width)
        sc = score_pairs(scheme.detector(), sel.pairs, chunk=10**9)
        # scored tuples after each text (texts are scored in order, so the tuples of texts 0..i are a
        # prefix; every prompt still counts as seen, as in the full selection)
        ends = [len(select_reading_pairs(texts, preds[:i + 1] + [[]] * (len(texts) - i - 1),
                                         scheme.context_width).pairs) for i in range(len(texts) - 1)]
        res = result(sel, sc, scheme, green_bits(scheme, sel.pairs), ends + [len(sel.pairs)])
        res["texts"], res["top_k"] = len(texts), k
        if k == ks[0]:
            out.update(res)
        else:
            out.setdefault("other_top_k", {})[str(k)] = {key: res[key] for key in (
                "p_value", "n_scored", "green_fraction", "tuples_for_p_1e-5")}
    return out


def audit_blackbox(student, scheme, vocab, bb_prompts, frequent, cfg, device, seed: int,
                   temperature: float) -> dict:
    """Black-box mode: the student's answers to our prompts, sampled at ``temperature`` (the auditor's
    choice: an API takes it as a request parameter), scored on frequent windows."""
    answers = lm.generate(student, bb_prompts, new_tokens=cfg["answer_tokens"], top_k=cfg["top_k"],
                          temperature=temperature, seed=seed, batch=256, device=device)
    real = [vocab.to_real(a) for a in answers]
    sel = select_blackbox_pairs(real, scheme.context_width, frequent)
    sc = score_pairs(scheme.detector(), sel.pairs, chunk=10**9)
    scored: set = set()
    ends = []
    for ids in real:  # the same rule as select_blackbox_pairs, to know where each answer's tuples end
        for pos in range(scheme.context_width, len(ids)):
            w = tuple(ids[pos - scheme.context_width:pos])
            if w in frequent:
                scored.add((w, ids[pos]))
        ends.append(len(scored))
    assert ends[-1] == len(sel.pairs)
    bits = green_bits(scheme, sel.pairs)
    out = result(sel, sc, scheme, bits, ends)
    hit = first_crossing(bits, ends, scheme.green_probability)
    out["temperature"] = temperature
    out["generated_tokens"] = len(real) * cfg["answer_tokens"]
    out["generated_tokens_for_p_1e-5"] = (hit + 1) * cfg["answer_tokens"] if hit is not None else None
    return out


def blackbox_mode(temperature: float, temperatures, prefix: str = "blackbox") -> str:
    """The results key of the black-box audit at ``temperature`` (the first of ``temperatures`` is
    the headline: ``prefix`` alone)."""
    return prefix if temperature == temperatures[0] else f"{prefix}_t{temperature:g}"


def audit_blackboxes(student, scheme, vocab, bb_prompts, frequent, cfg, device, seed: int,
                     prefix: str = "blackbox") -> dict:
    """The black-box audit at every temperature of ``cfg["bb_temperatures"]`` (same prompts and seed)."""
    temps = cfg["bb_temperatures"]
    return {blackbox_mode(t, temps, prefix): audit_blackbox(student, scheme, vocab, bb_prompts, frequent, cfg, device,
                                                            seed, temperature=t) for t in temps}


def cycled(prompts: list, count: int) -> list:
    """``count`` prompts: ``prompts`` in order, repeated as often as needed."""
    return [prompts[i % len(prompts)] for i in range(count)]


def frequent_windows(vocab, answers, cfg, h: int) -> set:
    """The black-box filter: windows occurring in at least ``min_window_df`` of ``answers``."""
    df = window_document_frequency([vocab.to_real(a) for a in answers], h)
    return {w for w, c in df.items() if c >= cfg["min_window_df"]}


def audit_served(student, scheme, vocab, prompts, wm, served: int, cfg, device, seed: int) -> dict:
    """Black-box on what was served: the first ``served`` prompts (cycled to ``bb_tokens``), filtered on
    the windows of their watermarked answers ``wm[:served]``; nothing when nothing was served."""
    if served < 1:
        return {}
    return audit_blackboxes(student, scheme, vocab, cycled(prompts[:served], cfg["bb_tokens"] // cfg["answer_tokens"]),
                            frequent_windows(vocab, wm[:served], cfg, scheme.context_width), cfg, device, seed,
                            prefix="blackbox_served")


def served_corpus(teacher, scheme, vocab, prompts, cfg, device, seed: int):
    """Our watermarked answers to every prompt under ``scheme`` and the black-box window filter."""
    wm = lm.generate(teacher, prompts, new_tokens=cfg["answer_tokens"], top_k=cfg["top_k"],
                     temperature=cfg["temperature"], seed=seed, batch=256, device=device, scheme=scheme, vocab=vocab,
                     delta=cfg["delta"])
    frequent = frequent_windows(vocab, wm, cfg, scheme.context_width)
    h = scheme.context_width
    self_check = score_pairs(scheme.detector(), [(tuple(vocab.to_real(p + a)[len(p) + i - h:len(p) + i]),
                                                  int(vocab.real[a[i]])) for p, a in zip(prompts[:200], wm[:200])
                                                 for i in range(len(a))], chunk=10**9)
    return wm, frequent, {"n_scored": self_check.n_scored, "green_fraction": self_check.score / self_check.n_scored,
                          "p_value": self_check.p_value}


def student_run(label, base, seqs, cfg, device, seed) -> tuple:
    student = lm.new_model(base.config.vocab_size, cfg["dim"], cfg["layers"], seed)
    student.load_state_dict(base.state_dict())
    t = time.perf_counter()
    losses = lm.train(student, seqs, epochs=cfg["epochs"], lr=cfg["lr"], batch=cfg["batch"], seed=seed,
                      device=device)
    return student, {"train_loss_per_epoch": losses, "train_seconds": time.perf_counter() - t}


def hardware(device: str) -> dict:
    out = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device,
           "load_average_at_start": os.getloadavg()}
    if device.startswith("cuda") and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def run(cfg: dict, device: str, work: Path, log_path: Path | None = None) -> dict:
    t0 = time.perf_counter()
    tok = load_tokenizer("smollm2")
    vocab, docs = lm.build_corpus(tok, cfg["vocab"], cfg["corpus_chars"])
    base, teacher, pre = pretrained(docs, vocab, cfg, device, work)
    logger.info("pretrained %.0f s: %s", time.perf_counter() - t0, pre)
    N, M = cfg["train_texts"], cfg["heldout_texts"]
    prompts = make_prompts(docs, N + M, cfg["prompt_tokens"])
    scheme = make_scheme("kgw", bench_key("suspects"), gamma=cfg["gamma"], delta=cfg["delta"],
                         context_width=cfg["context_width"])
    wm, frequent, check = served_corpus(teacher, scheme, vocab, prompts, cfg, device, seed=11)
    clean = lm.generate(teacher, prompts[:N], new_tokens=cfg["answer_tokens"], top_k=cfg["top_k"],
                        temperature=cfg["temperature"], seed=12, batch=256, device=device)
    n_bb = cfg["bb_tokens"] // cfg["answer_tokens"]
    bb_prompts = cycled(prompts, n_bb)
    log = {"config": {**cfg, "rhos": list(cfg["rhos"]), "open_topk": list(cfg["open_topk"])},
           "hardware": hardware(device),
           "corpus": {"paragraphs": len(docs), "tokens": sum(map(len, docs)), "vocab": vocab.size},
           "pretraining": pre, "teacher": {"first_token_entropy_nats": lm.mean_entropy(
               teacher, prompts[:256], top_k=cfg["top_k"], temperature=cfg["temperature"], device=device)},
           "scheme": scheme.config(), "served_self_check": check,
           "rho": {}, "nulls": []}
    logger.info("setup %.0f s; served corpus %s", time.perf_counter() - t0, check)
    for rho in cfg["rhos"]:
        n_wm = round(rho * N)
        seqs = [(prompts[i], wm[i] if i < n_wm else clean[i]) for i in range(N)]
        student, info = student_run(f"rho={rho:g}", base, seqs, cfg, device, seed=100)
        k = min(n_wm, cfg["open_texts"])
        info["watermarked_texts"] = n_wm
        info["open_trained"] = audit_open(student, scheme, vocab, prompts[:k], wm[:k], cfg, device)
        info["open_heldout"] = audit_open(student, scheme, vocab, prompts[N:], wm[N:], cfg, device)
        info.update(audit_blackboxes(student, scheme, vocab, bb_prompts, frequent, cfg, device, seed=13))
        # what a provider does: prompt the suspect with the prompts it was served (the harvesting
        # accounts' requests in the gateway log), filter on the windows of what it was served
        info.update(audit_served(student, scheme, vocab, prompts, wm, n_wm, cfg, device, seed=13))
        log["rho"][f"{rho:g}"] = info
        logger.info("rho=%g: %s", rho, brief(info))
        flush(log, log_path)
    first = cfg.get("first_null", 0)
    for k in range(first, first + cfg["nulls"]):
        # a fresh key and a fresh served corpus per null: independent p-values
        scheme_k = make_scheme("kgw", bench_key(f"null-{k}"), gamma=cfg["gamma"], delta=cfg["delta"],
                               context_width=cfg["context_width"])
        wm_k, frequent_k, _ = served_corpus(teacher, scheme_k, vocab, prompts, cfg, device, seed=1000 + k)
        seqs = [(prompts[i], clean[i]) for i in range(N)]
        student, info = student_run(f"null {k}", base, seqs, cfg, device, seed=200 + k)
        info["key_id"] = scheme_k.key.key_id
        info["open_heldout"] = audit_open(student, scheme_k, vocab, prompts[N:], wm_k[N:], cfg, device)
        n5 = min(round(0.05 * N), cfg["open_texts"])
        info["open_trained_size"] = audit_open(student, scheme_k, vocab, prompts[:n5], wm_k[:n5], cfg, device)
        info.update(audit_blackboxes(student, scheme_k, vocab, bb_prompts, frequent_k, cfg, device, seed=2000 + k))
        # as if served the ρ = 5 % student's share of our texts (under this null's key)
        info.update(audit_served(student, scheme_k, vocab, prompts, wm_k, round(0.05 * N), cfg, device,
                                 seed=2000 + k))
        log["nulls"].append(info)
        logger.info("null %d: %s", k, brief(info))
        flush(log, log_path)
    log["summary"] = summarise(log["nulls"])
    log["seconds"] = time.perf_counter() - t0
    return log


def brief(info: dict) -> str:
    return ", ".join(f"{m} p={info[m]['p_value']:.3g} n={info[m]['n_scored']} g={info[m]['green_fraction'] or 0:.3f}"
                     for m in ("open_trained", "open_trained_size", "open_heldout", "blackbox", "blackbox_served")
                     if m in info)


def summarise(nulls: list[dict]) -> dict:
    out = {}
    modes = ["open_heldout", "open_trained_size"] + [m for m in (nulls[0] if nulls else {}) if m.startswith("blackbox")]
    for mode in modes:
        ps = [n[mode]["p_value"] for n in nulls]
        out[mode] = {"null_fpr_at_0.01": float(np.mean([p <= 0.01 for p in ps])) if ps else None,
                     "null_ks_pvalue": float(stats.kstest(ps, "uniform").pvalue) if len(ps) > 1 else None,
                     "null_min_p": min(ps) if ps else None, "null_p_values": ps}
    return out


def merge(logs: list[dict]) -> dict:
    """One results log from runs of one configuration that cover disjoint ranges of null students."""
    def same(cfg):
        return {k: v for k, v in cfg.items() if k not in ("nulls", "first_null", "rhos")}

    out = dict(logs[0])
    for other in logs[1:]:
        if same(other["config"]) != same(out["config"]):
            raise SystemExit("--merge: the runs differ in configuration; only the null range may differ")
    nulls = [n for log in logs for n in log["nulls"]]
    keys = [n["key_id"] for n in nulls]
    if len(set(keys)) != len(keys):
        raise SystemExit("--merge: a null student appears twice (the runs overlap in --first-null ranges)")
    out["nulls"] = nulls
    out["config"] = {**out["config"], "nulls": len(nulls), "first_null": None}
    out["summary"] = summarise(nulls)
    out["seconds"] = sum(log.get("seconds", 0.0) for log in logs)
    out["merged_from"] = len(logs)
    return out


def flush(log: dict, path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(log, indent=1))


def fmt(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.2g}" if x < 1e4 else f"{x:,.0f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def markdown_table(log: dict) -> str:
    """The tables for docs/benchmarks.md (files written before the served-prompts mode render with
    its columns empty)."""
    def need(d):
        if d["tuples_for_p_1e-5"] is not None:
            return fmt(d["tuples_for_p_1e-5"])
        x = d["tuples_for_p_1e-5_extrapolated"]
        return "—" if x is None else f"≈{x:,.0f} (extrap.)"

    def bb_cells(b):
        if b is None:
            return "— | — | —"
        return (f"{fmt(b['p_value'])} | {b['n_scored']:,} | "
                f"{fmt(b['generated_tokens_for_p_1e-5'])} / {need(b)}")

    lines = ["| ρ | wm texts | open (trained) p | n | tuples for p<1e-5 | open (held-out) p | n "
             "| black-box, first prompts: p | n | gen. tokens / tuples for p<1e-5 "
             "| black-box, served prompts: p | n | gen. tokens / tuples for p<1e-5 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for rho, r in log["rho"].items():
        o, h = r["open_trained"], r["open_heldout"]
        lines.append(f"| {float(rho):.0%} | {r['watermarked_texts']:,} | {fmt(o['p_value'])} | {o['n_scored']:,} | "
                     f"{need(o)} | {fmt(h['p_value'])} | {h['n_scored']:,} | {bb_cells(r['blackbox'])} | "
                     f"{bb_cells(r.get('blackbox_served'))} |")
    lines += ["", "| null students | mode | false-positive rate at 0.01 | KS p (uniformity) | smallest p |",
              "|---|---|---|---|---|"]
    labels = {"open_heldout": f"open, {log['config']['heldout_texts']} held-out texts",
              "open_trained_size": "open, texts as many as ρ = 5 % trained on"}
    temps = list(log["config"].get("bb_temperatures", [log["config"]["temperature"]]))
    for t in temps:
        labels[blackbox_mode(t, temps)] = f"black-box, first prompts, temperature {t:g}"
        labels[blackbox_mode(t, temps, "blackbox_served")] = (
            f"black-box, served prompts (as many as ρ = 5 %), temperature {t:g}")
    for mode, s in log["summary"].items():
        lines.append(f"| {len(log['nulls'])} | {labels.get(mode, mode)} | {fmt(s['null_fpr_at_0.01'])} | {fmt(s['null_ks_pvalue'])} "
                     f"| {fmt(s['null_min_p'])} |")
    if len(temps) > 1:
        lines += ["", "| ρ | black-box prompts | temperature | p | n | green fraction | gen. tokens for p<1e-5 "
                  "| tuples for p<1e-5 |", "|---|---|---|---|---|---|---|---|"]
        for rho, r in log["rho"].items():
            for prefix, name in (("blackbox", "first"), ("blackbox_served", "served")):
                for t in temps:
                    b = r.get(blackbox_mode(t, temps, prefix))
                    if b is not None:
                        lines.append(f"| {float(rho):.0%} | {name} | {t:g} | {fmt(b['p_value'])} | {b['n_scored']:,} | "
                                     f"{fmt(b['green_fraction'])} | {fmt(b['generated_tokens_for_p_1e-5'])} | "
                                     f"{need(b)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nulls", type=int, default=None, help="number of null students (default: the preset's)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a preset value (JSON value), e.g. --set epochs=6 --set 'rhos=[0.05]'")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--work", default=os.environ.get("DISTILLSCOPE_BENCH_WORK", "/tmp/distillscope-bench-audit"),
                    help="cache for the pretrained teacher and student base")
    ap.add_argument("--out", default=None, help="results JSON (default: bench/results/audit.json for the cpu "
                    "preset, bench/results/audit-PRESET.json for the others)")
    ap.add_argument("--render", metavar="JSON", help="print the markdown table of a results file and exit")
    ap.add_argument("--first-null", type=int, default=0,
                    help="index of the first null student (its key, data order and seeds): runs on several "
                         "machines or processes cover disjoint ranges and --merge joins them")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="join results files of the same configuration (the first gives the suspects; the null "
                         "students of all, which must not repeat an index) into --out and exit")
    args = ap.parse_args(argv)
    if args.merge:
        if not args.out:
            ap.error("--merge needs --out")
        log = merge([json.loads(Path(f).read_text()) for f in args.merge])
        flush(log, Path(args.out))
        print(markdown_table(log))
        return log
    if args.render:
        log = json.loads(Path(args.render).read_text())
        print(markdown_table(log))
        return log
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    cfg = dict(PRESETS[args.preset])
    cfg["preset"] = args.preset
    cfg["first_null"] = args.first_null
    if args.nulls is not None:
        cfg["nulls"] = args.nulls
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in cfg:
            ap.error(f"--set {item!r}: unknown key {key!r}; known: {', '.join(sorted(cfg))}")
        cfg[key] = json.loads(value)
    torch.set_num_threads(args.threads)
    results = Path(__file__).resolve().parents[1] / "results"
    name = "audit.json" if args.preset == "cpu" else f"audit-{args.preset}.json"
    out = Path(args.out) if args.out else results / name
    log = run(cfg, args.device, Path(args.work), out)
    flush(log, out)
    print(markdown_table(log))
    print(f"\n{log['seconds']:.0f} s")
    return log


if __name__ == "__main__":
    main()
