"""Distillation benchmark: student quality per teacher token, SFT versus top-k KD, in one run.

    python bench/distill/run.py [--work DIR] [--out bench/results/distill.json] [--prompts 200] ...

(about 30 minutes for the harvest and 25 for training on a loaded 2-core CPU; the harvest is cached in --work)

1. The bundled teacher (smollm2, no watermark) answers ``--prompts`` built-in prompts with
   top-``--logprobs`` log-probabilities, written as a harvest store (kept in ``--work`` and
   reused when the command is run again with the same settings).
2. For each teacher-token budget (a share of the training records) a fresh small Llama student
   is trained by SFT and by forward-KL top-k KD, with the same seed, epochs and student size.
3. Each student is scored by the perplexity of the held-out teacher answers (teacher token ids).
   The table reports how many teacher tokens KD needs to match SFT's perplexity at the full
   budget (log-linear interpolation between budgets), and training tokens/s on this machine.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch

from distillscope.distill import PromptGenerator
from distillscope.distill.evaluation import answer_scores
from distillscope.distill.kd_data import encode_prompt, load_records, prompt_messages, split_heldout
from distillscope.distill.training import DistillConfig, train
from distillscope.settings import load_settings

HELDOUT = 0.15


class _LogProgress:
    """Prints progress of the harvest now and then (a benchmark script may print)."""

    def task(self, description, total=None):
        import contextlib

        @contextlib.contextmanager
        def cm():
            done = [0]

            class _T:
                def advance(self, n=1):
                    done[0] += n
                    print(f"{description}: {done[0]}/{total}", flush=True)

                def update(self, **kw):
                    pass
            yield _T()
        return cm()


def harvest(args: argparse.Namespace, store: Path) -> float:
    from distillscope.demo.distill_act import harvest_in_process
    from distillscope.teacher import Teacher, load_model

    if (store / "manifest.json").is_file():
        return 0.0
    t0 = time.perf_counter()
    teacher = Teacher(load_model(args.teacher, settings=load_settings()))
    prompts = PromptGenerator(seed=0).generate(args.prompts)
    harvest_in_process(teacher, prompts, store, max_tokens=args.new_tokens, logprobs=args.logprobs, batch_size=32,
                       progress=_LogProgress())
    return time.perf_counter() - t0


def heldout_perplexity(model, tokenizer, held: list[dict]) -> float:
    seqs = [(encode_prompt(tokenizer, prompt_messages(r)) + list(r["token_ids"]),
             len(encode_prompt(tokenizer, prompt_messages(r)))) for r in held if r.get("token_ids")]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    nll = torch.cat([s[0] for s in answer_scores(model.eval(), seqs, pad, batch_size=8)])
    return float(math.exp(nll.mean()))


def run_one(args: argparse.Namespace, store: Path, mode: str, n_records: int, held: list[dict]) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = args.work / f"{mode}-{n_records}"
    cfg = DistillConfig(store=str(store), output_dir=str(out), mode=mode, max_records=n_records,
                        heldout_fraction=HELDOUT, epochs=args.epochs, hidden_size=args.hidden, layers=args.layers,
                        heads=args.heads, learning_rate=args.lr, batch_size=8, max_length=384,
                        save_steps=100_000, seed=0, logging_steps=10)
    res = train(cfg)
    ppl = heldout_perplexity(AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out), held)
    row = {"mode": mode, "records": res.train_records, "teacher_tokens": res.teacher_tokens, "steps": res.steps,
           "heldout_ppl": round(ppl, 3), "train_seconds": res.seconds, "train_tokens_per_s": res.tokens_per_second}
    print(json.dumps(row), flush=True)
    return row


def tokens_to_match(kd_rows: list[dict], target_ppl: float) -> float | None:
    """Teacher tokens at which KD's perplexity reaches ``target_ppl`` (log-log interpolation)."""
    pts = sorted((r["teacher_tokens"], r["heldout_ppl"]) for r in kd_rows)
    if pts[0][1] <= target_ppl:
        return float(pts[0][0])           # already there at the smallest budget: an upper bound
    for (t0, p0), (t1, p1) in zip(pts, pts[1:]):
        if p1 <= target_ppl < p0:
            w = (math.log(p0) - math.log(target_ppl)) / (math.log(p0) - math.log(p1))
            return math.exp(math.log(t0) + w * (math.log(t1) - math.log(t0)))
    return None


def markdown(results: dict) -> str:
    """The table pasted into docs/benchmarks.md."""
    lines = ["| objective | training records | teacher tokens | held-out answer ppl | steps | train tokens/s |",
             "|---|---|---|---|---|---|"]
    for r in sorted(results["runs"], key=lambda r: (r["mode"], r["teacher_tokens"])):
        lines.append(f"| {r['mode']} | {r['records']} | {r['teacher_tokens']:,} | {r['heldout_ppl']:.1f} | "
                     f"{r['steps']} | {r['train_tokens_per_s']:,.0f} |")
    need = results["kd_tokens_to_match_sft"]
    full = results["sft_full_budget"]
    lines.append("")
    lines.append(f"SFT with all {full['teacher_tokens']:,} teacher tokens reaches ppl {full['heldout_ppl']:.1f}; "
                 + (f"top-k KD reaches it with about {need:,} teacher tokens ({results['kd_token_saving']}x fewer)."
                    if need else "top-k KD does not reach it within the measured budgets."))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/distillscope-bench-distill"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/distill.json"))
    ap.add_argument("--teacher", default="smollm2")
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--logprobs", type=int, default=20)
    ap.add_argument("--budgets", default="0.25,0.5,1.0", help="shares of the training records")
    ap.add_argument("--epochs", type=float, default=6.0)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--render", type=Path, default=None, help="print the markdown table of a results file and exit")
    args = ap.parse_args()
    if args.render:
        print(markdown(json.loads(args.render.read_text())))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    store = args.work / f"store-{args.teacher}-{args.prompts}-{args.new_tokens}-{args.logprobs}"
    harvest_s = harvest(args, store)
    train_recs, held = split_heldout(load_records(store), HELDOUT)
    rows = []
    for share in (float(b) for b in args.budgets.split(",")):
        n = max(1, round(share * len(train_recs)))
        rows += [run_one(args, store, "sft", n, held), run_one(args, store, "kd", n, held)]
    sft_full = max((r for r in rows if r["mode"] == "sft"), key=lambda r: r["teacher_tokens"])
    kd_rows = [r for r in rows if r["mode"] == "kd"]
    need = tokens_to_match(kd_rows, sft_full["heldout_ppl"])
    results = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads", "torch": torch.__version__,
        "teacher": args.teacher, "prompts": args.prompts, "new_tokens": args.new_tokens, "top_k": args.logprobs,
        "student": {"hidden": args.hidden, "layers": args.layers, "heads": args.heads, "epochs": args.epochs,
                    "lr": args.lr},
        "harvest_seconds": round(harvest_s, 1), "heldout_records": len(held), "runs": rows,
        "sft_full_budget": {"teacher_tokens": sft_full["teacher_tokens"], "heldout_ppl": sft_full["heldout_ppl"]},
        "kd_tokens_to_match_sft": None if need is None else round(need),
        "kd_token_saving": None if need is None else round(sft_full["teacher_tokens"] / need, 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=2))
    print(markdown(results))


if __name__ == "__main__":
    main()
