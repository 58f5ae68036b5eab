"""Null calibration of the benchmark's audits with many keys: one null student, K fresh keys.

A null student (fine-tuned on clean teacher text only, exactly as in ``run.py``) is independent of
every key, so its audit p-values under K independent fresh keys — each with its own freshly
generated watermarked corpus — are K independent draws from the null distribution of each test.
That is a much sharper check of uniformity than 20 null students (which ``run.py`` also trains).

    python bench/audit/calibrate.py --keys 200     # -> bench/results/audit-calibration.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lm  # noqa: E402
import run as bench  # noqa: E402
from distillscope.audit.radioactivity import window_document_frequency  # noqa: E402
from distillscope.teacher import load_tokenizer  # noqa: E402
from distillscope.watermark import make_scheme  # noqa: E402

logger = logging.getLogger("bench.audit.calibrate")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(bench.PRESETS), default="cpu")
    ap.add_argument("--keys", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", default="/tmp/distillscope-bench-audit")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "audit-calibration.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    cfg = {**bench.PRESETS[args.preset], "open_topk": (1,)}
    t0 = time.perf_counter()
    vocab, docs = lm.build_corpus(load_tokenizer("smollm2"), cfg["vocab"], cfg["corpus_chars"])
    base, teacher, _ = bench.pretrained(docs, vocab, cfg, args.device, Path(args.work))
    N, M = cfg["train_texts"], cfg["heldout_texts"]
    prompts = bench.make_prompts(docs, N + M, cfg["prompt_tokens"])
    clean = lm.generate(teacher, prompts[:N], new_tokens=cfg["answer_tokens"], top_k=cfg["top_k"],
                        temperature=cfg["temperature"], seed=12, batch=256, device=args.device)
    student, _ = bench.student_run("null", base, [(prompts[i], clean[i]) for i in range(N)], cfg, args.device,
                                   seed=200)
    n_bb = cfg["bb_tokens"] // cfg["answer_tokens"]
    bb_prompts = [prompts[i % len(prompts)] for i in range(n_bb)]
    answers = [vocab.to_real(a) for a in lm.generate(
        student, bb_prompts, new_tokens=cfg["answer_tokens"], top_k=cfg["top_k"], temperature=cfg["temperature"],
        seed=13, batch=256, device=args.device)]
    ps: dict[str, list[float]] = {"open_heldout": [], "blackbox": []}
    for k in range(args.keys):
        scheme = make_scheme("kgw", bench.bench_key(f"calibration-{k}"), gamma=cfg["gamma"], delta=cfg["delta"],
                             context_width=cfg["context_width"])
        wm = lm.generate(teacher, prompts[N:], new_tokens=cfg["answer_tokens"], top_k=cfg["top_k"],
                         temperature=cfg["temperature"], seed=5000 + k, batch=256, device=args.device,
                         scheme=scheme, vocab=vocab, delta=cfg["delta"])
        ps["open_heldout"].append(bench.audit_open(student, scheme, vocab, prompts[N:], wm, cfg,
                                                   args.device)["p_value"])
        df = window_document_frequency([vocab.to_real(a) for a in wm], scheme.context_width)
        frequent = {w for w, c in df.items() if c >= cfg["min_window_df"]}
        sel = bench.select_blackbox_pairs(answers, scheme.context_width, frequent)
        ps["blackbox"].append(bench.score_pairs(scheme.detector(), sel.pairs, chunk=10**9).p_value)
        if k % 20 == 19:
            logger.info("key %d: %s", k + 1, {m: round(float(np.mean(np.asarray(v) <= 0.01)), 3)
                                              for m, v in ps.items()})
    out = {"preset": args.preset, "keys": args.keys, "seconds": time.perf_counter() - t0, "modes": {}}
    for mode, v in ps.items():
        out["modes"][mode] = {"fpr_at_0.01": float(np.mean(np.asarray(v) <= 0.01)),
                              "fpr_at_0.05": float(np.mean(np.asarray(v) <= 0.05)),
                              "ks_pvalue": float(stats.kstest(v, "uniform").pvalue), "min_p": min(v),
                              "p_values": v}
        logger.info("%s: FPR@0.01 %.3f, FPR@0.05 %.3f, KS p %.3g, min p %.3g", mode,
                    out["modes"][mode]["fpr_at_0.01"], out["modes"][mode]["fpr_at_0.05"],
                    out["modes"][mode]["ks_pvalue"], min(v))
    Path(args.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
