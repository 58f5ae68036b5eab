"""Teacher runtime benchmark: first (converting) vs cached load, and generation throughput.

    python bench/teacher/run.py [--cache DIR] [--out bench/results/teacher.json]

Uses a fresh model cache (a temporary directory unless --cache is given), so the first load
includes the GGUF conversion. Throughput: 32 distinct prompts, 64 new tokens, sampling on
(temperature 0.7, top-k 50, top-p 0.95), no watermark; tokens/s counts generated tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from distillscope.settings import load_settings
from distillscope.teacher import SamplingParams, Teacher, load_model

PROMPTS = [f"Explain in two sentences why {topic} matters." for topic in (
    "sleep", "recycling", "photosynthesis", "inflation", "vaccination", "encryption", "friction", "voting",
    "exercise", "irrigation", "compound interest", "bees", "version control", "unit tests", "the moon",
    "tides", "rust", "bridges", "libraries", "soil", "oxygen", "music", "maps", "clocks", "bread", "rain",
    "wind", "glass", "paper", "salt", "iron", "ice")]


def timed_load(spec: str, settings, dtype: str) -> tuple[float, object]:
    t0 = time.perf_counter()
    loaded = load_model(spec, settings=settings, dtype=dtype)
    return time.perf_counter() - t0, loaded


def throughput(loaded, batch: int, new_tokens: int) -> float:
    teacher = Teacher(loaded)
    params = SamplingParams(max_new_tokens=new_tokens, seed=0)
    teacher.generate(PROMPTS[:batch], SamplingParams(max_new_tokens=4), batch_size=batch)  # warm-up
    t0 = time.perf_counter()
    gens = teacher.generate(PROMPTS[:batch], params, batch_size=batch)
    return sum(g.n_tokens for g in gens) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/results/teacher.json"))
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="distillscope-bench-"))
    settings = load_settings(model_cache=cache, home=cache)
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
                     "torch": torch.__version__, "load_average_at_start": os.getloadavg()[0], "loads": {}, "tokens_per_s": {}}
    for spec in ("smollm2", "gemma3-270m"):
        first, _ = timed_load(spec, settings, "bfloat16")
        cached, _ = timed_load(spec, settings, "bfloat16")
        results["loads"][spec] = {"first_s": round(first, 1), "cached_s": round(cached, 1)}
        print(spec, results["loads"][spec], flush=True)
    for dtype in ("bfloat16", "float32"):
        _, loaded = timed_load("smollm2", settings, dtype)
        for batch in (1, 8, 32):
            rate = throughput(loaded, batch, args.new_tokens)
            results["tokens_per_s"][f"{dtype}/batch{batch}"] = round(rate, 1)
            print(dtype, batch, round(rate, 1), flush=True)
    results["load_average_at_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
