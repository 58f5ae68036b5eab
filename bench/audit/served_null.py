"""Null check of the black-box filter on served texts at the ``cpu-large`` scale.

The teacher's own unwatermarked answers (1,024 answers to 250 prompts, cycled: independent of every
key) are scored under ``--keys`` fresh keys, each with its own served corpus of watermarked answers
to those 250 prompts and its own window filter (windows in ≥ 2 of them), exactly as the
``blackbox_served`` mode of ``run.py`` filters. Under H0 the p-values are uniform; the result
gives their KS test, the false-positive rate at 0.05 and the mean green fraction.

    python bench/audit/served_null.py --keys 40   # ~5 min -> bench/results/audit-served-null.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import lm  # noqa: E402
import run as bench  # noqa: E402
from distillscope.audit.radioactivity import score_pairs, select_blackbox_pairs  # noqa: E402
from distillscope.teacher import load_tokenizer  # noqa: E402
from distillscope.watermark import make_scheme  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=40)
    ap.add_argument("--preset", default="cpu-large", choices=sorted(bench.PRESETS))
    ap.add_argument("--served", type=int, default=250, help="served prompts (rho = 5 %% of 5,000)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=os.environ.get("DISTILLSCOPE_BENCH_WORK", "/tmp/distillscope-bench-audit"))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "audit-served-null.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = dict(bench.PRESETS[args.preset])
    vocab, docs = lm.build_corpus(load_tokenizer("smollm2"), cfg["vocab"], cfg["corpus_chars"])
    _, teacher, _ = bench.pretrained(docs, vocab, cfg, "cpu", Path(args.work))
    prompts = bench.make_prompts(docs, args.served, cfg["prompt_tokens"])
    answers = lm.generate(teacher, bench.cycled(prompts, cfg["bb_tokens"] // cfg["answer_tokens"]),
                          new_tokens=cfg["answer_tokens"], top_k=cfg["top_k"], temperature=1.0, seed=5, batch=256,
                          device="cpu")
    real = [vocab.to_real(a) for a in answers]
    rows = []
    for k in range(args.keys):
        scheme = make_scheme("kgw", bench.bench_key(f"nullF-{k}"), gamma=cfg["gamma"], delta=cfg["delta"],
                             context_width=cfg["context_width"])
        wm = lm.generate(teacher, prompts, new_tokens=cfg["answer_tokens"], top_k=cfg["top_k"], temperature=1.0,
                         seed=3000 + k, batch=256, device="cpu", scheme=scheme, vocab=vocab, delta=cfg["delta"])
        sel = select_blackbox_pairs(real, scheme.context_width,
                                    bench.frequent_windows(vocab, wm, cfg, scheme.context_width))
        sc = score_pairs(scheme.detector(), sel.pairs, chunk=10**9)
        rows.append({"key_id": scheme.key.key_id, "n_scored": sc.n_scored, "green_fraction": sc.score / sc.n_scored,
                     "p_value": sc.p_value})
        print(k, rows[-1], flush=True)
    ps = [r["p_value"] for r in rows]
    out = {"preset": args.preset, "keys": args.keys, "served_prompts": args.served, "rows": rows,
           "ks_pvalue": float(stats.kstest(ps, "uniform").pvalue), "fpr_at_0.05": float(np.mean(np.array(ps) <= 0.05)),
           "fpr_at_0.01": float(np.mean(np.array(ps) <= 0.01)),
           "mean_green_fraction": float(np.mean([r["green_fraction"] for r in rows]))}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print({k: v for k, v in out.items() if k != "rows"})
    return out


if __name__ == "__main__":
    main()
