"""How much of our watermark survives the laundering a distiller applies to harvested text.

A distiller who expects a watermark rewrites the harvested answers before training on them
(Pan et al., ACL 2025: targeted paraphrasing, watermark neutralisation). What reaches the student
can only be weaker than what survives in the rewritten text, so this measures the text: our
watermark's green fraction and detection p-value on the corpus after each attack, at several
strengths, with our key. A student-level figure (a model trained on paraphrased answers, audited
with `distillscope audit`) is in the independent-suspect benchmark (`bench/audit/independent/`).

Attacks (each a distiller's cheap rewrite; none uses our key):
* ``drop-r``: delete a share r of the words;
* ``swap-r``: swap a share r of adjacent word pairs;
* ``replace-r``: replace a share r of the words by words drawn from the corpus's own vocabulary
  (a crude synonym substitution: it changes the tokens the watermark chose);
* ``paraphrase``: rewrite each answer with the reference model (Gemma-3-270M base, a few-shot
  paraphrase prompt, greedy), the first ``--paraphrase-n`` answers only (slow on CPU).

    python bench/audit/laundering.py --corpus ANSWERS.jsonl [--paraphrase-n 40] [--out bench/results/audit-laundering.json]

The key comes from the settings (``DISTILLSCOPE_HOME``/``DISTILLSCOPE_WATERMARK_KEY[_FILE]``): use
the key the corpus was generated with.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

RATES = (0.1, 0.25, 0.5)
FEW_SHOT = ("Rewrite the text in different words, keeping its meaning.\n\n"
            "Text: The cat sat on the mat because it was warm.\n"
            "Rewritten: Since the mat was warm, the cat was sitting on it.\n\n"
            "Text: Water boils at 100 degrees Celsius at sea level.\n"
            "Rewritten: At sea level, water reaches its boiling point at 100 °C.\n\n")


def attack(texts: list[str], kind: str, rate: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    vocab = [w for t in texts for w in t.split()]
    out = []
    for text in texts:
        words = text.split()
        if kind == "drop":
            words = [w for w in words if rng.random() >= rate] or words[:1]
        elif kind == "swap":
            for i in range(len(words) - 1):
                if rng.random() < rate:
                    words[i], words[i + 1] = words[i + 1], words[i]
        elif kind == "replace":
            words = [rng.choice(vocab) if rng.random() < rate else w for w in words]
        out.append(" ".join(words))
    return out


def paraphrase(texts: list[str], settings, max_new_tokens: int = 96) -> list[str]:
    from distillscope.teacher import SamplingParams, Teacher, load_model

    ref = Teacher(load_model("gemma3-270m", settings=settings))
    prompts = [FEW_SHOT + "Text: " + " ".join(t.split()[:80]) + "\nRewritten:" for t in texts]
    gens = ref.generate(prompts, SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, stop=("\n\n", "Text:")),
                        watermark=False, chat=False, batch_size=8)
    return [g.text.strip() for g in gens]


def measure(texts: list[str], scheme, tokenizer) -> dict:
    from distillscope.audit.radioactivity import TokenText, corpus_pairs

    det = scheme.detector(tokenizer)
    ids = [TokenText((), tuple(tokenizer.encode(t, add_special_tokens=False))) for t in texts if t.strip()]
    whole = det.score_pairs(corpus_pairs(ids, scheme.context_width), dedup=True)
    per = [det.detect(list(t.answer_ids)) for t in ids]
    return {"texts": len(ids), "tuples": int(whole.n_scored),
            "green_fraction": float(whole.score) / whole.n_scored if whole.n_scored else None,
            "log10_p": float(whole.log10_p), "detected_share": sum(d.p_value < 1e-3 for d in per) / max(1, len(per))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, type=Path)
    ap.add_argument("--paraphrase-n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/audit-laundering.json"))
    args = ap.parse_args()

    from distillscope.settings import load_settings
    from distillscope.teacher import load_tokenizer
    from distillscope.watermark import scheme_from_settings

    settings = load_settings()
    scheme, tok = scheme_from_settings(settings), load_tokenizer(settings.teacher, settings=settings)
    texts = [json.loads(line)["completion"] for line in args.corpus.read_text().splitlines() if line.strip()]
    texts = [t for t in texts if t and t.strip()]
    rows = [{"attack": "none", "rate": 0.0, **measure(texts, scheme, tok)}]
    for kind in ("drop", "swap", "replace"):
        for rate in RATES:
            rows.append({"attack": kind, "rate": rate, **measure(attack(texts, kind, rate, args.seed), scheme, tok)})
    if args.paraphrase_n:
        sample = texts[:args.paraphrase_n]
        t0 = time.perf_counter()
        para = paraphrase(sample, settings)
        rows.append({"attack": "none (paraphrase sample)", "rate": 0.0, **measure(sample, scheme, tok)})
        rows.append({"attack": "paraphrase (Gemma-3-270M, few-shot, greedy)", "rate": 1.0,
                     "seconds": time.perf_counter() - t0, **measure(para, scheme, tok)})
    result = {"corpus": str(args.corpus), "watermark": scheme.config(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print("| attack | rate | texts | tuples | green fraction | log10 p (corpus) | texts detected (p<1e-3) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        g = f"{r['green_fraction']:.3f}" if r["green_fraction"] is not None else "—"
        print(f"| {r['attack']} | {r['rate']:g} | {r['texts']} | {r['tuples']} | {g} | {r['log10_p']:.1f} | "
              f"{r['detected_share']:.0%} |")


if __name__ == "__main__":
    main()
