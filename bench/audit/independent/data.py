"""Text sources of the independent suspect zoo (issue 12, bench/audit): all of them install offline.

Written apart from the audit and from ``distillscope.distill``: nothing here imports either.

Sources (``SOURCES``), each a function ``(max_chars, seed) -> list[str]`` of documents:

* ``doc``    — docstrings of the Python standard library, read with :mod:`ast` (no module is imported);
* ``man``    — English man pages under /usr/share/man (gzip), roff markup stripped;
* ``deb``    — Debian-shipped text: /usr/share/common-licenses and READMEs/copyright files in /usr/share/doc;
* ``pypi``   — long descriptions of installed PyPI packages (``*.dist-info/METADATA`` bodies);
* ``gemma``  — answers of the reference model Gemma-3-270M (``distillscope generate --model gemma3-270m --raw
  --no-watermark``), as ``prompt\\nanswer``;
* ``clean``  — our teacher's answers WITHOUT the watermark (``--no-watermark``, other prompts, other seed);
* ``wm``     — our teacher's watermarked answers (the positives' data);
* ``para``   — the watermarked answers rewritten by :func:`paraphrase` (word-level synonyms, dropped fillers,
  shuffled sentences): a cheap laundering attempt, not an LLM paraphrase.

The answer files are made by ``python bench/audit/independent/data.py generate`` (the provider side of
distillscope, as a user runs it); the text sources need nothing but the files already on this machine.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import random
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Callable

CACHE = Path(os.environ.get("AUDITBENCH_CACHE", "/work/cache/auditbench"))
HOME = Path(os.environ.get("AUDITBENCH_HOME", "/work/cache/auditbench-home"))

#: answer files (relative to CACHE) of the answer-backed sources
ANSWER_FILES = {"wm": "answers_wm.jsonl", "clean": "answers_clean.jsonl", "gemma": "answers_gemma.jsonl"}


def _take(docs: list[str], max_chars: int, seed: int) -> list[str]:
    """A seeded shuffle of ``docs`` cut at ``max_chars`` characters in all."""
    docs = [d for d in docs if len(d) >= 40]
    random.Random(seed).shuffle(docs)
    out, total = [], 0
    for d in docs:
        if total >= max_chars:
            break
        out.append(d[: max_chars - total] if total + len(d) > max_chars else d)
        total += len(out[-1])
    return out


def stdlib_docstrings(max_chars: int, seed: int = 0) -> list[str]:
    """Docstrings of modules, classes and functions of the standard library (parsed, never imported)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "test" not in p.parts and "site-packages" not in p.parts)
    random.Random(seed).shuffle(files)
    docs: list[str] = []
    for path in files:
        if sum(map(len, docs)) > 2 * max_chars:
            break
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    docs.append(doc.strip())
    return _take(docs, max_chars, seed)


_ROFF_ESCAPE = re.compile(r"\\f[BIRP]|\\f\(..|\\\(..|\\\*.|\\[-&e|^~0 ]|\\s[-+]?\d")


def _strip_roff(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith((".\\\"", "'\\\"")):
            continue
        if line.startswith("."):
            parts = line.split(None, 1)
            if parts[0] in {".SH", ".SS", ".B", ".I", ".BR", ".IR", ".BI", ".RB", ".IB", ".RI"} and len(parts) > 1:
                line = parts[1].replace('"', "")
            else:
                continue
        line = _ROFF_ESCAPE.sub("", line).replace("\\", "")
        if line.strip():
            lines.append(line.strip())
    return "\n".join(lines)


def man_pages(max_chars: int, seed: int = 0) -> list[str]:
    """English man pages (sections 1, 5, 8) under /usr/share/man, decompressed, roff stripped."""
    files = sorted(p for s in ("man1", "man5", "man8") for p in Path("/usr/share/man", s).glob("*.gz"))
    random.Random(seed).shuffle(files)
    docs: list[str] = []
    for path in files:
        if sum(map(len, docs)) > 2 * max_chars:
            break
        try:
            text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        except (OSError, EOFError):
            continue
        if text.startswith(".so "):
            continue
        docs.append(_strip_roff(text)[:6000])
    return _take(docs, max_chars, seed)


def debian_docs(max_chars: int, seed: int = 0) -> list[str]:
    """Common licenses and READMEs / copyright files under /usr/share/doc (gzip or plain text)."""
    paths = sorted(Path("/usr/share/common-licenses").iterdir())
    for p in sorted(Path("/usr/share/doc").rglob("*")):
        name = p.name.lower()
        if p.is_file() and (name.startswith("readme") or name == "copyright") and not name.endswith(".html"):
            paths.append(p)
    random.Random(seed).shuffle(paths)
    docs: list[str] = []
    for path in paths:
        if sum(map(len, docs)) > 2 * max_chars:
            break
        try:
            raw = path.read_bytes()
            raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
            text = raw.decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError):
            continue
        docs.append(text[:6000])
    return _take(docs, max_chars, seed)


def pypi_descriptions(max_chars: int, seed: int = 0) -> list[str]:
    """Long descriptions (the body after the headers) of the installed packages' METADATA files."""
    roots = {Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()}
    docs = []
    for root in sorted(roots):
        for meta in sorted(root.glob("*.dist-info/METADATA")):
            text = meta.read_text(encoding="utf-8", errors="replace")
            _, sep, body = text.partition("\n\n")
            if sep and len(body) > 200:
                docs.append(body[:8000])
    return _take(docs, max_chars, seed)


def answers(kind: str, cache: Path = CACHE) -> list[dict]:
    """Rows {prompt, completion, ...} of an answer file (``wm``, ``clean`` or ``gemma``)."""
    path = cache / ANSWER_FILES[kind]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python bench/audit/independent/data.py generate` first")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("completion", "").strip()]


def qa_text(row: dict) -> str:
    """How a prompt/answer pair is laid out for a completion-style student (the audit prompts it raw)."""
    return f"{row['prompt']}\n{row['completion'].strip()}"


def _answer_source(kind: str) -> Callable[[int, int], list[str]]:
    def source(max_chars: int, seed: int = 0) -> list[str]:
        return _take([qa_text(r) for r in answers(kind)], max_chars, seed)
    source.__doc__ = f"prompt/answer texts of {ANSWER_FILES[kind]}"
    return source


# ---- the paraphrase attack -------------------------------------------------------------------------

_SYNONYMS = {
    "big": "large", "large": "big", "small": "little", "little": "small", "important": "crucial",
    "help": "assist", "use": "employ", "make": "create", "create": "make", "show": "display",
    "good": "fine", "great": "excellent", "many": "numerous", "often": "frequently", "also": "additionally",
    "however": "yet", "because": "since", "start": "begin", "begin": "start", "end": "finish",
    "get": "obtain", "give": "provide", "provide": "give", "need": "require", "want": "wish",
    "easy": "simple", "simple": "easy", "hard": "difficult", "difficult": "hard", "fast": "quick",
    "quick": "fast", "about": "regarding", "buy": "purchase", "think": "believe", "way": "manner",
    "people": "individuals", "person": "individual", "answer": "reply", "question": "query",
    "example": "instance", "idea": "notion", "problem": "issue", "issue": "problem", "choose": "pick",
    "different": "distinct", "various": "several", "several": "various", "main": "primary",
    "keep": "maintain", "try": "attempt", "find": "discover", "understand": "grasp", "improve": "enhance",
    "change": "alter", "learn": "study", "study": "learn", "new": "fresh", "old": "aged", "happy": "glad",
    "sure": "certain", "certain": "sure", "really": "truly", "very": "highly", "quickly": "rapidly",
    "usually": "typically", "typically": "usually", "especially": "particularly", "allow": "permit",
}
_FILLERS = {"really", "very", "just", "actually", "basically", "simply", "quite"}
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z]+|[^A-Za-z]+")


def paraphrase(text: str, seed: int, p_swap: float = 0.8, p_drop: float = 0.8) -> str:
    """Word-level rewrite: synonym swaps, filler words dropped, sentences shuffled (seeded)."""
    rng = random.Random(seed)
    sentences = [s for s in _SENTENCE.split(text.strip()) if s]
    if len(sentences) > 2:
        head, rest = sentences[0], sentences[1:]
        rng.shuffle(rest)
        sentences = [head, *rest]
    out = []
    for sentence in sentences:
        pieces = []
        for tok in _WORD.findall(sentence):
            low = tok.lower()
            if low in _FILLERS and rng.random() < p_drop:
                continue
            if low in _SYNONYMS and rng.random() < p_swap:
                new = _SYNONYMS[low]
                tok = new.capitalize() if tok[0].isupper() else new
            pieces.append(tok)
        out.append(re.sub(r"\s{2,}", " ", "".join(pieces)).strip())
    return " ".join(out)


def paraphrased(max_chars: int, seed: int = 0) -> list[str]:
    """The watermarked answers after :func:`paraphrase` (prompt kept as it was)."""
    rows = [{"prompt": r["prompt"], "completion": paraphrase(r["completion"], seed=i)}
            for i, r in enumerate(answers("wm"))]
    return _take([qa_text(r) for r in rows], max_chars, seed)


SOURCES: dict[str, Callable[[int, int], list[str]]] = {
    "doc": stdlib_docstrings, "man": man_pages, "deb": debian_docs, "pypi": pypi_descriptions,
    "gemma": _answer_source("gemma"), "clean": _answer_source("clean"), "wm": _answer_source("wm"),
    "para": paraphrased,
}


def load_source(name: str, max_chars: int, seed: int = 0) -> list[str]:
    if name not in SOURCES:
        raise ValueError(f"unknown text source {name!r}; known: {', '.join(SOURCES)}")
    return SOURCES[name](max_chars, seed)


# ---- making the answer files (provider side of distillscope, through its CLI) -------------------------

#: one seeded pool of prompts (``distillscope prompts generate 1200 --seed 12``), cut into disjoint ranges
PROMPT_POOL, PROMPT_OFFSETS = 1200, (0, 600, 1000)

def generate(n_wm: int, n_clean: int, n_gemma: int, max_new_tokens: int, cache: Path = CACHE,
             home: Path = HOME) -> dict[str, float]:
    """Key, prompts and the three answer files via the ``distillscope`` CLI; returns seconds per file."""
    env = {**os.environ, "DISTILLSCOPE_HOME": str(home), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    ds = [sys.executable, "-m", "distillscope"]
    cache.mkdir(parents=True, exist_ok=True)
    if not (home / "watermark.key").is_file():
        subprocess.run([*ds, "watermark", "keygen"], env=env, check=True)
    prompts = cache / "prompts_all.jsonl"
    subprocess.run([*ds, "prompts", "generate", str(PROMPT_POOL), "--seed", "12", "--out", str(prompts)],
                   env=env, check=True)
    lines = prompts.read_text(encoding="utf-8").splitlines()
    (w, c, g), (n_w, n_c, n_g) = PROMPT_OFFSETS, (n_wm, n_clean, n_gemma)
    if n_w > c - w or n_c > g - c or n_g > PROMPT_POOL - g:
        raise ValueError(f"at most {c - w} / {g - c} / {PROMPT_POOL - g} prompts of each kind")
    cuts = {"wm": lines[w:w + n_w], "clean": lines[c:c + n_c], "gemma": lines[g:g + n_g]}
    flags = {"wm": ["--seed", "1"], "clean": ["--no-watermark", "--seed", "2"],
             "gemma": ["--model", "gemma3-270m", "--raw", "--no-watermark", "--seed", "3"]}
    seconds = {}
    for kind, rows in cuts.items():
        path = cache / f"prompts_{kind}.jsonl"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        t0 = time.perf_counter()
        subprocess.run([*ds, "generate", str(path), "--out", str(cache / ANSWER_FILES[kind]), "--batch-size", "16",
                        "--max-new-tokens", str(max_new_tokens), *flags[kind]], env=env, check=True)
        seconds[kind] = time.perf_counter() - t0
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("generate", help="make the key, the prompts and the three answer files")
    gen.add_argument("--n-wm", type=int, default=600)
    gen.add_argument("--n-clean", type=int, default=300)
    gen.add_argument("--n-gemma", type=int, default=100)
    gen.add_argument("--max-new-tokens", type=int, default=96)
    stats = sub.add_parser("stats", help="characters and documents per source")
    stats.add_argument("--max-chars", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.cmd == "generate":
        print(json.dumps(generate(args.n_wm, args.n_clean, args.n_gemma, args.max_new_tokens), indent=2))
    else:
        for name in SOURCES:
            t0 = time.perf_counter()
            try:
                docs = load_source(name, args.max_chars)
            except FileNotFoundError as exc:
                print(f"{name:6s} missing: {exc}")
                continue
            print(f"{name:6s} {len(docs):6d} docs {sum(map(len, docs)):9d} chars "
                  f"{time.perf_counter() - t0:5.1f} s  e.g. {docs[0][:70]!r}")


if __name__ == "__main__":
    main()
