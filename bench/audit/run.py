"""Benchmark: radioactivity of students trained on a fraction ρ of watermarked teacher output.

Students of one architecture are fine-tuned on a mix where a fraction ρ of the training texts is our
watermarked teacher output and the rest is the same teacher's output without the watermark (same
style); null students see no watermarked text at all. For each student we run the audit's open
(reading) and black-box tests and report the p-value, the scored tuples needed for p < 1e-5, and,
over the null students, the empirical false-positive rate and a KS test of uniformity.

    python bench/audit/run.py            # CPU preset (tiny models), writes bench/results/audit.json
    python bench/audit/run.py --preset gpu --device cuda

Reference (Sander et al. 2024): open weights p < 1e-5 at ρ = 5 %; closed mode ~37k scored tokens
for p < 1e-5 at ρ = 5 %.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from distillscope.audit.radioactivity import (TokenText, score_pairs, select_blackbox_pairs,  # noqa: E402
                                              select_reading_pairs, window_document_frequency)
from distillscope.settings import load_settings  # noqa: E402
from distillscope.teacher import SamplingParams, Teacher, load_model  # noqa: E402
from distillscope.watermark import WatermarkKey, make_scheme  # noqa: E402

PRESETS = {
    "cpu": dict(teacher="tiny:0", student="tiny", texts=24, tokens=16, steps=12, lr=3e-3, batch=24, nulls=20,
                null_steps=1, rhos=(1.0, 0.2, 0.05, 0.01), bb_prompts=24, delta=2.0),
    "cpu-large": dict(teacher="tiny:0", student="tiny", texts=80, tokens=32, steps=30, lr=3e-3, batch=80, nulls=20,
                      null_steps=4, rhos=(1.0, 0.2, 0.05, 0.01), bb_prompts=80, delta=2.0),
    "gpu": dict(teacher="smollm2", student="smollm2", texts=2000, tokens=128, steps=400, lr=5e-5, batch=16,
                nulls=20, null_steps=400, rhos=(1.0, 0.2, 0.05, 0.01), bb_prompts=500, delta=2.0),
}


def finetune(spec: str, seqs: list[tuple[list[int], list[int]]], steps: int, lr: float, batch: int, seed: int,
             settings, device: str):
    """SFT on (prompt ids, answer ids): loss on answer tokens, AdamW, mini-batches."""
    loaded = load_model(spec, settings=settings, dtype="float32", device=device)
    model = loaded.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randperm(len(seqs), generator=gen)[:batch].tolist()
        chunk = [seqs[i] for i in idx]
        width = max(len(p) + len(a) for p, a in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.full_like(ids, -100)
        mask = torch.zeros_like(ids)
        for r, (p, a) in enumerate(chunk):
            ids[r, :len(p) + len(a)] = torch.tensor(p + a)
            labels[r, len(p):len(p) + len(a)] = torch.tensor(a)
            mask[r, :len(p) + len(a)] = 1
        model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return loaded


def needed_for(curve, p_target: float = 1e-5, gamma: float = 0.25, green: float | None = None) -> float | None:
    """Scored tuples at which p first fell below ``p_target``; else a KL extrapolation from ``green``."""
    for n, p in curve:
        if p < p_target:
            return float(n)
    if green is None or green <= gamma:
        return None
    kl = green * math.log(green / gamma) + (1 - green) * math.log((1 - green) / (1 - gamma))
    return math.log(1 / p_target) / kl


def audit_student(loaded, scheme, wm_texts: list[TokenText], frequent, prompts_ids, cfg, device: str) -> dict:
    detector = scheme.detector()
    preds = []
    for i in range(0, len(wm_texts), 16):
        tops = loaded.next_token_topk([list(t.stream) for t in wm_texts[i:i + 16]], 1)
        for t, top in zip(wm_texts[i:i + 16], tops):
            preds.append([tuple(int(x) for x in top.ids[pos - 1]) for pos in range(len(t.prompt_ids), len(t.stream))])
    open_sel = select_reading_pairs(wm_texts, preds, scheme.context_width)
    open_sc = score_pairs(detector, open_sel.pairs, chunk=10**9)
    teacher_view = Teacher(loaded)
    gens = teacher_view.generate(prompts_ids, SamplingParams(max_new_tokens=cfg["tokens"], temperature=1.0, top_k=50,
                                                             seed=1), watermark=False, batch_size=64)
    answers = [list(g.token_ids) for g in gens]
    bb_sel = select_blackbox_pairs(answers, scheme.context_width, frequent)
    bb_sc = score_pairs(detector, bb_sel.pairs, chunk=10**9)
    gamma = scheme.green_probability
    out = {}
    for name, sc in (("open", open_sc), ("blackbox", bb_sc)):
        green = sc.score / sc.n_scored if sc.n_scored else None
        out[name] = {"p_value": sc.p_value, "n_scored": sc.n_scored, "green_fraction": green,
                     "tuples_for_p_1e-5": needed_for(sc.curve, 1e-5, gamma, green)}
    return out


def watermarked_corpus(teacher_loaded, prompts, enc, cfg, seed: int):
    """A fresh key and the teacher's watermarked answers under it (what we served)."""
    scheme = make_scheme("kgw", WatermarkKey.generate(), gamma=0.25, delta=cfg["delta"], context_width=1)
    wm = Teacher(teacher_loaded, watermark=scheme).generate(
        prompts, SamplingParams(max_new_tokens=cfg["tokens"], temperature=1.0, top_k=50, seed=seed),
        watermark=True, batch_size=64)
    wm_texts = [TokenText(tuple(e), tuple(g.token_ids)) for e, g in zip(enc, wm)]
    df = window_document_frequency([t.answer_ids for t in wm_texts], 1)
    return scheme, wm, wm_texts, {w for w, c in df.items() if c >= 2}


def markdown_table(log: dict) -> str:
    """The table for docs/benchmarks.md."""
    def fmt(x):
        return "—" if x is None else (f"{x:.2g}" if isinstance(x, float) else str(x))

    lines = ["| ρ (realised) | open p | open n | open tuples for p<1e-5 | black-box p | black-box n | "
             "black-box tuples for p<1e-5 |", "|---|---|---|---|---|---|---|"]
    for rho, r in log["rho"].items():
        lines.append(f"| {rho} ({r['realised_fraction']:.3g}) | {fmt(r['open']['p_value'])} | {r['open']['n_scored']} | "
                     f"{fmt(r['open']['tuples_for_p_1e-5'])} | {fmt(r['blackbox']['p_value'])} | "
                     f"{r['blackbox']['n_scored']} | {fmt(r['blackbox']['tuples_for_p_1e-5'])} |")
    for mode, s in log["summary"].items():
        lines.append(f"\n{mode}: {len(log['nulls'])} null students, false-positive rate at 0.01 = "
                     f"{fmt(s['null_fpr_at_0.01'])}, KS p (uniformity) = {fmt(s['null_ks_pvalue'])}, "
                     f"smallest null p = {fmt(s['null_min_p'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nulls", type=int, default=None, help="number of null students (default: preset)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "audit.json"))
    args = ap.parse_args(argv)
    cfg = dict(PRESETS[args.preset])
    if args.nulls is not None:
        cfg["nulls"] = args.nulls
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    t0 = time.perf_counter()
    home = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    settings = load_settings(home=home, model_cache=os.environ.get("DISTILLSCOPE_MODEL_CACHE") or home / "models")
    teacher_loaded = load_model(cfg["teacher"], settings=settings, dtype="float32", device=args.device)
    prompts = [f"Question {i}: explain topic {i} in a few sentences." for i in range(cfg["texts"])]
    plain = Teacher(teacher_loaded)
    enc = [plain.encode_prompt(p) for p in prompts]
    clean = plain.generate(prompts, SamplingParams(max_new_tokens=cfg["tokens"], temperature=1.0, top_k=50, seed=7),
                           watermark=False, batch_size=64)
    scheme, wm, wm_texts, frequent = watermarked_corpus(teacher_loaded, prompts, enc, cfg, seed=0)
    bb_prompts = prompts[:cfg["bb_prompts"]]  # the prompts in our log: the audit's default too
    log = {"config": {**cfg, "rhos": list(cfg["rhos"])}, "key_id": scheme.key.key_id, "rho": {}, "nulls": []}
    for rho in cfg["rhos"]:
        n_wm = max(1, round(rho * cfg["texts"]))  # at least one text: the realised fraction is reported
        seqs = [(enc[i], list(wm[i].token_ids)) for i in range(n_wm)] + \
               [(enc[i], list(clean[i].token_ids)) for i in range(n_wm, cfg["texts"])]
        student = finetune(cfg["student"], seqs, cfg["steps"], cfg["lr"], cfg["batch"], 0, settings, args.device)
        log["rho"][f"{rho:g}"] = audit_student(student, scheme, wm_texts, frequent, bb_prompts, cfg, args.device)
        log["rho"][f"{rho:g}"]["realised_fraction"] = n_wm / cfg["texts"]
        print(f"rho={rho:g}: {log['rho'][f'{rho:g}']}", file=sys.stderr, flush=True)
    for k in range(cfg["nulls"]):
        # a fresh key (and so a fresh watermarked corpus) per null: p-values of different nulls are independent
        scheme_k, _, wm_texts_k, frequent_k = watermarked_corpus(teacher_loaded, prompts, enc, cfg, seed=1 + k)
        seqs = [(enc[i], list(clean[i].token_ids)) for i in range(cfg["texts"])]
        spec = cfg["student"] if cfg["student"] != "tiny" else f"tiny:{100 + k}"
        student = finetune(spec, seqs, cfg["null_steps"], cfg["lr"], cfg["batch"], k, settings, args.device)
        log["nulls"].append(audit_student(student, scheme_k, wm_texts_k, frequent_k, bb_prompts, cfg, args.device))
        print(f"null {k}: {log['nulls'][-1]['open']['p_value']:.3g} {log['nulls'][-1]['blackbox']['p_value']:.3g}",
              file=sys.stderr, flush=True)
    summary = {}
    for mode in ("open", "blackbox"):
        ps = [n[mode]["p_value"] for n in log["nulls"]]
        summary[mode] = {"null_fpr_at_0.01": float(np.mean([p <= 0.01 for p in ps])) if ps else None,
                         "null_ks_pvalue": float(stats.kstest(ps, "uniform").pvalue) if len(ps) > 1 else None,
                         "null_min_p": min(ps) if ps else None}
    log["summary"] = summary
    log["seconds"] = time.perf_counter() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(log, indent=2))
    print(markdown_table(log))
    print(f"\n{log['seconds']:.0f} s")
    return log


if __name__ == "__main__":
    main()
