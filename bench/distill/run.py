"""Distillation benchmark: what a student learns per teacher token, SFT versus top-k KD, in one run.

    python bench/distill/run.py --students gemma3-270m,llama --budgets 250,500,1000,2000 --modes sft,kd
    python bench/distill/run.py --render bench/results/distill.json      # the markdown table

1. The bundled teacher (smollm2, no watermark) answers ``--prompts`` built-in prompts with top-``--logprobs``
   log-probabilities (a harvest store, cached in ``--work`` and reused by later runs with the same settings).
2. For every student, budget (harvested answers trained on: the first N training records, so every run sees
   the same records in the same seeded order) and objective, a student is trained with the same seed and
   epochs: ``gemma3-270m`` is the pretrained base with LoRA (another tokenizer than the teacher's, so KD is
   cross-tokenizer ULD); ``llama`` is a fresh 256-wide Llama with the teacher's tokenizer (token-level KD),
   for contrast.
3. One :func:`distillscope.distill.evaluate` per student scores the teacher, the untrained base, and every
   trained student on the same held-out answers and built-in tasks (strict scoring, instruction following,
   perplexity per teacher token, agreement, decoding speed).
4. Reported: the share of the base-to-teacher gap each student closes on task accuracy, and the teacher
   tokens KD needs to reach SFT's best held-out perplexity (log-log interpolation between budgets).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch

from distillscope.distill import PromptGenerator
from distillscope.distill.evaluation import evaluate
from distillscope.distill.kd_data import load_records, split_heldout
from distillscope.distill.tasks import builtin_tasks
from distillscope.distill.training import DistillConfig, train
from distillscope.settings import load_settings

HELDOUT = 0.15
STUDENTS = {  # the student's DistillConfig fields
    "gemma3-270m": dict(student="gemma3-270m", lora_r=16, learning_rate=5e-4),
    "llama": dict(student="llama", hidden_size=256, layers=4, heads=4, learning_rate=2e-3),
}


class _LogProgress:
    """Prints progress now and then (a benchmark script may print)."""

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


def run_one(args: argparse.Namespace, store: Path, student: str, mode: str, n_records: int) -> dict:
    out = args.work / f"{student}-{mode}-{n_records}"
    fields = {**STUDENTS[student], **({"learning_rate": args.lr} if args.lr else {})}
    cfg = DistillConfig(store=str(store), output_dir=str(out), mode=mode, max_records=n_records,
                        heldout_fraction=HELDOUT, num_train_epochs=args.epochs, per_device_train_batch_size=8,
                        max_length=256, save_steps=100_000, seed=0, logging_steps=10,
                        teacher_tokenizer=args.teacher, **fields)
    res = train(cfg)
    row = {"student": student, "mode": mode, "kd_loss": res.kd_loss, "records": res.train_records,
           "teacher_tokens": res.teacher_tokens, "steps": res.steps, "train_seconds": res.seconds,
           "train_tokens_per_s": res.tokens_per_second, "parameters": res.parameters,
           "trainable_parameters": res.trainable_parameters, "aligned_share": res.aligned_share, "dir": str(out)}
    print(json.dumps(row), flush=True)
    return row


def gap_closed(score: float, base: float, teacher: float) -> float | None:
    """Share of the base-to-teacher gap a student closes (None when there is no gap)."""
    return None if teacher == base else (score - base) / (teacher - base)


def tokens_to_match(kd_rows: list[dict], target_ppl: float) -> float | None:
    """Teacher tokens at which KD's perplexity reaches ``target_ppl`` (log-log interpolation)."""
    pts = sorted((r["teacher_tokens"], r["heldout_ppl"]) for r in kd_rows)
    if not pts:
        return None
    if pts[0][1] <= target_ppl:
        return float(pts[0][0])           # already there at the smallest budget: an upper bound
    for (t0, p0), (t1, p1) in zip(pts, pts[1:]):
        if p1 <= target_ppl < p0:
            w = (math.log(p0) - math.log(target_ppl)) / (math.log(p0) - math.log(p1))
            return math.exp(math.log(t0) + w * (math.log(t1) - math.log(t0)))
    return None


def score(args: argparse.Namespace, store: Path, student: str, rows: list[dict]) -> dict:
    """One evaluate() for a student family: teacher, base (pretrained students), every trained run."""
    base = STUDENTS[student]["student"]
    others = [(f"{r['mode']}-{r['records']}", r["dir"]) for r in rows[:-1]]
    report = evaluate(rows[-1]["dir"], args.teacher, store, baseline=None if base == "llama" else base,
                      others=others, heldout_fraction=HELDOUT, max_records=args.eval_records,
                      tasks=builtin_tasks(args.tasks_per_category), settings=load_settings())
    by_role = {m.role: m for m in report.models}
    teacher = by_role["teacher"]
    base_eval = by_role.get("base")
    roles = [f"{r['mode']}-{r['records']}" for r in rows[:-1]] + ["student"]
    for r, role in zip(rows, roles):
        m = by_role[role]
        r.update(heldout_ppl=round(m.perplexity, 3), top1_agreement=m.top1_agreement,
                 task_accuracy=m.task_accuracy, instruction_following=m.instruction_following,
                 speed_vs_teacher=m.speed_vs_teacher)
        if base_eval is not None:
            r["task_gap_closed"] = gap_closed(m.task_accuracy, base_eval.task_accuracy, teacher.task_accuracy)
    summary = {"teacher": _model(teacher), "base": _model(base_eval) if base_eval else None}
    sft = [r for r in rows if r["mode"] == "sft"]
    if sft:
        best = min(sft, key=lambda r: r["heldout_ppl"])
        need = tokens_to_match([r for r in rows if r["mode"] == "kd"], best["heldout_ppl"])
        summary.update(sft_best={"teacher_tokens": best["teacher_tokens"], "heldout_ppl": best["heldout_ppl"]},
                       kd_tokens_to_match_sft_best=None if need is None else round(need),
                       kd_token_share=None if need is None else round(need / best["teacher_tokens"], 3))
    return summary


def _model(m) -> dict:
    return {"name": m.name, "parameters": m.parameters, "heldout_ppl": round(m.perplexity, 3),
            "task_accuracy": m.task_accuracy, "instruction_following": m.instruction_following,
            "generation_tokens_per_s": m.generation_tokens_per_second}


def markdown(results: dict) -> str:
    """The table pasted into docs/benchmarks.md."""
    lines = ["| student | objective | answers | teacher tokens | held-out ppl | top-1 agree | task acc | gap closed "
             "| follows format | train s | train tok/s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, fam in results["students"].items():
        for ref in ("teacher", "base"):
            m = fam["summary"].get(ref)
            if m:
                lines.append(f"| {name if ref == 'base' else m['name']} | ({ref}) | — | — | {m['heldout_ppl']:.2f} | — "
                             f"| {m['task_accuracy']:.1%} | — | {m['instruction_following']:.1%} | — | — |")
        for r in sorted(fam["runs"], key=lambda r: (r["mode"], r["records"])):
            gap = r.get("task_gap_closed")
            agree = r.get("top1_agreement")
            lines.append(f"| {name} | {r['mode']}{' (' + r['kd_loss'] + ')' if r['mode'] == 'kd' else ''} "
                         f"| {r['records']} | {r['teacher_tokens']:,} | {r['heldout_ppl']:.2f} "
                         f"| {'—' if agree is None else f'{agree:.1%}'} | {r['task_accuracy']:.1%} "
                         f"| {'—' if gap is None else f'{gap:.0%}'} | {r['instruction_following']:.1%} "
                         f"| {r['train_seconds']:.0f} | {r['train_tokens_per_s']:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/distillscope-bench-distill"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/distill.json"))
    ap.add_argument("--teacher", default="smollm2")
    ap.add_argument("--prompts", type=int, default=2400, help="harvested answers (15%% are held out)")
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--logprobs", type=int, default=20)
    ap.add_argument("--students", default="gemma3-270m,llama")
    ap.add_argument("--budgets", default="250,500,1000,2000", help="training answers per run")
    ap.add_argument("--modes", default="sft,kd")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=None, help="override every student's learning rate")
    ap.add_argument("--eval-records", type=int, default=64)
    ap.add_argument("--tasks-per-category", type=int, default=10)
    ap.add_argument("--render", type=Path, default=None, help="print the markdown table of a results file and exit")
    args = ap.parse_args()
    if args.render:
        print(markdown(json.loads(args.render.read_text())))
        return
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    args.work.mkdir(parents=True, exist_ok=True)
    store = args.work / f"store-{args.teacher}-{args.prompts}-{args.new_tokens}-{args.logprobs}"
    harvest_s = harvest(args, store)
    train_recs, held = split_heldout(load_records(store), HELDOUT)
    budgets = [b for b in (int(x) for x in args.budgets.split(",")) if b <= len(train_recs)]
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
                          f"{torch.get_num_threads()} torch thread(s)",
               "torch": torch.__version__, "teacher": args.teacher, "prompts": args.prompts,
               "new_tokens": args.new_tokens, "top_k": args.logprobs, "epochs": args.epochs, "seed": 0,
               "harvest_seconds": round(harvest_s, 1), "train_records_available": len(train_recs),
               "heldout_records": len(held), "budgets_run": budgets, "students": {}}
    for student in args.students.split(","):
        rows = [run_one(args, store, student, mode, n) for n in budgets for mode in args.modes.split(",")]
        summary = score(args, store, student, rows)
        results["students"][student] = {"fields": STUDENTS[student], "runs": rows, "summary": summary}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str))
    print(markdown(results))


if __name__ == "__main__":
    main()
