"""Watermark benchmark: tokens to detection, false positives, generation overhead, perplexity.

    python bench/watermark/run.py [--prompts 120] [--plain 200] [--new-tokens 128]
                                  [--schemes kgw,gumbel] [--out bench/results/watermark.json]

With the default teacher (SmolLM2-135M-Instruct, bfloat16, CPU) and the prompts of
``distillscope.distill.PromptGenerator(seed=0)``, sampling at temperature 0.7, top-k 50,
top-p 0.95:

* detection: for every watermarked answer, the fewest generated tokens after which the detector
  (on token ids, prompt as context) reports p < 1e-5; the median counts answers that never get
  there as infinitely long. Also the share detected at full length after re-tokenising the text.
* false positives: ``--plain`` unwatermarked answers tested with every scheme at alpha = 1e-5.
* overhead: fixed-length generation (batch 32, EOS ignored) alternating plain and watermarked
  rounds in the same run; tokens/s of each and the time spent inside the processor.
* quality: perplexity of the answers under the reference model (Gemma-3-270M, re-tokenised text,
  prompt as context, answer tokens scored), watermarked / plain ratio.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import statistics
import time
from pathlib import Path

import torch

from distillscope.distill import PromptGenerator
from distillscope.settings import load_settings
from distillscope.teacher import SamplingParams, Teacher, load_model
from distillscope.watermark import WatermarkKey, make_scheme

ALPHA = 1e-5
SCHEME_PARAMS = {"kgw": {"gamma": 0.25, "delta": 2.0, "context_width": 1}, "kgw-selfhash": {},
                 "gumbel": {"context_width": 4}}
log = logging.getLogger("bench.watermark")


def tokens_to_detect(detector, prompt_ids, token_ids) -> float:
    """Fewest generated tokens whose detection p-value is below ALPHA (inf if never)."""
    for n in range(1, len(token_ids) + 1):
        if detector.detect(token_ids[:n], prompt_ids=prompt_ids).p_value < ALPHA:
            return float(n)
    return math.inf


def perplexity(ref, prompts, answers, batch: int = 16) -> float:
    """exp(mean NLL) of answer tokens given the prompt, under the reference model."""
    tok, model = ref.tokenizer, ref.model
    total_nll, total_n = 0.0, 0
    for start in range(0, len(answers), batch):
        rows = []
        for p, a in zip(prompts[start:start + batch], answers[start:start + batch]):
            ctx = tok(p + "\n", add_special_tokens=True)["input_ids"]
            ans = tok(a, add_special_tokens=False)["input_ids"]
            if ans:
                rows.append((ctx, ans))
        if not rows:
            continue
        width = max(len(c) + len(a) for c, a in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for i, (c, a) in enumerate(rows):
            seq = c + a
            ids[i, :len(seq)] = torch.tensor(seq)
            mask[i, :len(seq)] = 1
            labels[i, len(c):len(seq)] = torch.tensor(a)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], reduction="sum",
                                                ignore_index=-100)
        total_nll += float(nll)
        total_n += int((labels[:, 1:] != -100).sum())
    return math.exp(total_nll / max(total_n, 1))


class _TimedProcessor:
    """Wraps a logits processor and accumulates the seconds spent in it."""

    def __init__(self, inner) -> None:
        self.inner, self.seconds = inner, 0.0

    def __call__(self, input_ids, scores):
        t0 = time.perf_counter()
        out = self.inner(input_ids, scores)
        self.seconds += time.perf_counter() - t0
        return out


def overhead(loaded, schemes, prompts, rounds: int, batch: int, new_tokens: int) -> dict:
    """Fixed-length generation, modes alternating round by round; median tokens/s per mode."""
    teacher = Teacher(loaded)
    enc = [teacher.encode_prompt(p) for p in prompts[:batch]]
    width = max(map(len, enc))
    pad = loaded.pad_token_id
    ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc])
    mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(e) for e in enc])[:, None]).long()
    modes = {"plain": None, **schemes}
    rates: dict[str, list[float]] = {m: [] for m in modes}
    proc_share: dict[str, list[float]] = {m: [] for m in schemes}
    for r in range(rounds + 1):                                    # round 0 warms up
        order = list(modes) if r % 2 == 0 else list(reversed(modes))
        for mode in order:
            proc = None if modes[mode] is None else _TimedProcessor(
                modes[mode].processor(temperature=0.7, top_k=50, top_p=0.95))
            t0 = time.perf_counter()
            with torch.inference_mode():
                loaded.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                                      min_new_tokens=new_tokens, do_sample=True, temperature=0.7, top_k=50,
                                      top_p=0.95, pad_token_id=pad, logits_processor=[proc] if proc else [])
            seconds = time.perf_counter() - t0
            if r:
                rates[mode].append(batch * new_tokens / seconds)
                if proc:
                    proc_share[mode].append(proc.seconds / seconds)
    out = {"batch": batch, "new_tokens": new_tokens, "rounds": rounds,
           "tokens_per_s": {m: round(statistics.median(v), 1) for m, v in rates.items()}}
    base = statistics.median(rates["plain"])
    out["slowdown_pct"] = {m: round(100 * (1 - statistics.median(rates[m]) / base), 2) for m in schemes}
    out["processor_time_pct"] = {m: round(100 * statistics.median(v), 2) for m, v in proc_share.items()}
    return out


def quality(teacher_loaded, ref, schemes, prompts, n_marked, n_plain, params, batch) -> dict:
    full_length = params.max_new_tokens  # answers that ran to the token limit
    teacher = Teacher(teacher_loaded)
    t0 = time.perf_counter()
    plain = teacher.generate(prompts[:n_plain], params, watermark=False, batch_size=batch)
    plain_s = time.perf_counter() - t0
    plain_ppl = perplexity(ref, prompts[:n_marked], [g.text for g in plain[:n_marked]])
    results: dict = {"plain": {"answers": len(plain), "mean_tokens": statistics.mean(g.n_tokens for g in plain),
                               "tokens_per_s": round(sum(g.n_tokens for g in plain) / plain_s, 1),
                               "perplexity": round(plain_ppl, 3)}}
    log.info("plain: %s", results["plain"])
    for name, scheme in schemes.items():
        wm_teacher = Teacher(teacher_loaded, watermark=scheme)
        t0 = time.perf_counter()
        marked = wm_teacher.generate(prompts[:n_marked], params, watermark=True, batch_size=batch)
        seconds = time.perf_counter() - t0
        det = scheme.detector(teacher_loaded.tokenizer)
        needed = [tokens_to_detect(det, g.prompt_ids, g.token_ids) for g in marked]
        text_p = [det.detect_text(g.text).p_value for g in marked]
        plain_p = [det.detect(g.token_ids, prompt_ids=g.prompt_ids).p_value for g in plain]
        plain_text_p = [det.detect_text(g.text).p_value for g in plain]
        ppl = perplexity(ref, prompts[:n_marked], [g.text for g in marked])
        results[name] = {
            "config": {k: v for k, v in scheme.config().items() if k != "key_id"},
            "answers": len(marked), "mean_tokens": round(statistics.mean(g.n_tokens for g in marked), 1),
            "tokens_per_s": round(sum(g.n_tokens for g in marked) / seconds, 1),
            "median_tokens_to_p<1e-5": statistics.median(needed),
            "median_tokens_to_p<1e-5_long_answers": statistics.median(
                [x for x, g in zip(needed, marked) if g.n_tokens >= full_length] or [math.inf]),
            "tokens_needed": [x if math.isfinite(x) else None for x in needed],
            "answer_tokens": [g.n_tokens for g in marked],
            "detected_share_ids": round(sum(math.isfinite(x) for x in needed) / len(needed), 3),
            "detected_share_text": round(sum(p < ALPHA for p in text_p) / len(text_p), 3),
            "false_positives_ids": sum(p < ALPHA for p in plain_p),
            "false_positives_text": sum(p < ALPHA for p in plain_text_p),
            "plain_answers_tested": len(plain),
            "min_plain_p": min(plain_p), "perplexity": round(ppl, 3), "perplexity_ratio": round(ppl / plain_ppl, 3),
        }
        log.info("%s: %s", name, results[name])
    return results


def markdown(results: dict) -> str:
    """The table for docs/benchmarks.md."""
    q, o = results["quality"], results["overhead"]
    lines = ["| scheme | median tokens to p<1e-5 (ids) | detected at full length (ids / text) | "
             "false positives at 1e-5 (ids / text) | tokens/s vs plain | processor time | perplexity ratio |",
             "|---|---|---|---|---|---|---|"]
    for name, r in q.items():
        if name == "plain":
            continue
        lines.append(f"| {name} | {r['median_tokens_to_p<1e-5']} | {r['detected_share_ids']:.0%} / "
                     f"{r['detected_share_text']:.0%} | {r['false_positives_ids']} / {r['false_positives_text']} "
                     f"of {r['plain_answers_tested']} | {-o['slowdown_pct'][name]:+.1f}% | "
                     f"{o['processor_time_pct'][name]:.1f}% | {r['perplexity_ratio']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=120, help="watermarked answers per scheme (>= 100)")
    ap.add_argument("--plain", type=int, default=200, help="plain answers for the false-positive test")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of the overhead test")
    ap.add_argument("--overhead-batch", type=int, default=32)
    ap.add_argument("--overhead-tokens", type=int, default=48)
    ap.add_argument("--schemes", default="kgw,gumbel")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (1 avoids OpenMP oversubscription on a shared machine)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/watermark.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = load_settings()
    key = WatermarkKey(bytes.fromhex("42" * 32))                    # a fixed benchmark key
    schemes = {n: make_scheme(n, key, **SCHEME_PARAMS[n]) for n in args.schemes.split(",")}
    prompts = [p.prompt for p in PromptGenerator(seed=0).generate(max(args.prompts, args.plain))]
    loaded = load_model("smollm2", settings=settings, dtype="bfloat16")
    t0 = time.perf_counter()
    over = overhead(loaded, schemes, prompts, args.rounds, args.overhead_batch, args.overhead_tokens)
    log.info("overhead: %s", over)
    ref = load_model("gemma3-270m", settings=settings, dtype="bfloat16")
    params = SamplingParams(max_new_tokens=args.new_tokens, temperature=0.7, top_k=50, top_p=0.95, seed=0)
    qual = quality(loaded, ref, schemes, prompts, args.prompts, args.plain, params, args.batch)
    results = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
               "teacher": "smollm2 (bfloat16)", "reference": "gemma3-270m (bfloat16)", "alpha": ALPHA,
               "sampling": {"temperature": 0.7, "top_k": 50, "top_p": 0.95, "max_new_tokens": args.new_tokens},
               "overhead": over, "quality": qual, "seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))
    print(markdown(results))


if __name__ == "__main__":
    main()
