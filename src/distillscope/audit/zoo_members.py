"""The zoo's built-in members: independent models made from text that installs offline.

Nothing here ever sees our teacher's outputs. Members are:

* ``scratch`` — tiny causal LMs of three families (Llama, GPT-2, GPT-NeoX) trained from scratch on
  one text source each, most with their own byte-level BPE, some with our teacher's tokenizer;
* ``reference`` — the reference model itself (Gemma-3-270M by default);
* ``reference-student`` — tiny models trained on the reference model's answers: controls that
  imitate the reference, which the passive statistic scores low by construction;
* ``fine-tune`` — the reference model with its top layer fine-tuned briefly on one text source.

Text sources: Python standard-library docstrings, Debian's licence texts and manual pages, and the
descriptions of installed PyPI packages. Training uses the transformers ``Trainer``.
"""

from __future__ import annotations

import ast
import gzip
import logging
import re
import sysconfig
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

from distillscope.audit.zoo import ZooCandidate
from distillscope.errors import AuditError

logger = logging.getLogger(__name__)

BLOCK = 128


def _stdlib_docstrings(max_chars: int) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    out, total = [], 0
    for path in sorted(root.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    out.append(doc)
                    total += len(doc)
        if total >= max_chars:
            break
    return out


def _licences(max_chars: int) -> list[str]:
    out, total = [], 0
    for path in sorted(Path("/usr/share/common-licenses").glob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            out += [p for p in re.split(r"\n\s*\n", text) if len(p) > 40]
            total += len(text)
        if total >= max_chars:
            break
    return out


_ROFF = re.compile(r"\\f[BIRP]|\\-|\\\(..|\\&|\\e")


def _manpages(max_chars: int) -> list[str]:
    out, total = [], 0
    for path in sorted(Path("/usr/share/man/man1").glob("*.1.gz"))[:4000]:
        try:
            raw = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        except (OSError, EOFError):
            continue
        lines = [_ROFF.sub("", ln) for ln in raw.splitlines() if ln and not ln.startswith((".", "'", '\\"'))]
        text = " ".join(lines)
        if len(text) > 200:
            out.append(text[:4000])
            total += len(out[-1])
        if total >= max_chars:
            break
    return out


def _pypi_descriptions(max_chars: int) -> list[str]:
    out, total = [], 0
    for dist in sorted(metadata.distributions(), key=lambda d: d.metadata.get("Name") or ""):
        body = dist.metadata.get_payload() if hasattr(dist.metadata, "get_payload") else ""
        body = body or dist.metadata.get("Description") or ""
        if isinstance(body, str) and len(body) > 200:
            out.append(body[:6000])
            total += len(out[-1])
        if total >= max_chars:
            break
    return out


SOURCES: dict[str, Callable[[int], list[str]]] = {
    "docstrings": _stdlib_docstrings, "licences": _licences, "manpages": _manpages, "pypi": _pypi_descriptions}


def source_texts(name: str, max_chars: int = 400_000) -> list[str]:
    """The texts of one offline source (``docstrings``, ``licences``, ``manpages``, ``pypi``)."""
    if name not in SOURCES:
        raise AuditError(f"unknown zoo text source {name!r}", hint=f"choose from {', '.join(SOURCES)}")
    texts = SOURCES[name](max_chars)
    if not texts:
        raise AuditError(f"the zoo text source {name!r} is empty on this machine",
                         hint="choose another source (docstrings is always available)")
    return texts


@dataclass(frozen=True)
class MemberRecipe:
    """How to make one built-in member."""

    name: str
    kind: str                 # scratch | reference | reference-student | fine-tune
    family: str = "llama"     # llama | gpt2 | gpt_neox (scratch / reference-student)
    source: str = "docstrings"
    tokenizer: str = "own"    # own (a BPE trained on the source) | teacher (our teacher's tokenizer)
    hidden: int = 64
    layers: int = 2
    steps: int = 200
    seed: int = 0


def default_recipes(*, quick: bool = False) -> list[MemberRecipe]:
    """The built-in zoo: 9 scratch models (3 families × 3 sources), 2 reference students, the reference
    and 2 partial fine-tunes; ``quick`` gives 6 small scratch models for tests and ``demo --quick``."""
    if quick:
        return [MemberRecipe(f"scratch-{fam}-{src}", "scratch", fam, src, tok, hidden=32, layers=1, steps=12, seed=i)
                for i, (fam, src, tok) in enumerate([("llama", "docstrings", "teacher"), ("gpt2", "licences", "own"),
                                                     ("gpt_neox", "docstrings", "own"), ("llama", "pypi", "own"),
                                                     ("gpt2", "docstrings", "teacher"),
                                                     ("gpt_neox", "licences", "teacher")])]
    recipes = []
    for i, (fam, src) in enumerate([(f, s) for s in ("docstrings", "licences", "pypi")
                                    for f in ("llama", "gpt2", "gpt_neox")]):
        own = i % 3 != 0
        recipes.append(MemberRecipe(f"scratch-{fam}-{src}", "scratch", fam, src, "own" if own else "teacher",
                                    hidden=96 if own else 64, layers=2, steps=200 if own else 60, seed=i))
    recipes += [MemberRecipe("reference-student-llama", "reference-student", "llama", "reference answers", "own",
                             hidden=96, layers=2, steps=200, seed=20),
                MemberRecipe("reference-student-gpt2", "reference-student", "gpt2", "reference answers", "teacher",
                             hidden=64, layers=2, steps=60, seed=21),
                MemberRecipe("reference", "reference", "", "", ""),
                MemberRecipe("fine-tune-docstrings", "fine-tune", "", "docstrings", "", steps=12, seed=30),
                MemberRecipe("fine-tune-manpages", "fine-tune", "", "manpages", "", steps=12, seed=31)]
    return recipes


def _own_tokenizer(texts: Sequence[str], vocab_size: int = 2048) -> Any:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def _config(family: str, vocab: int, hidden: int, layers: int, tokenizer: Any) -> Any:
    import transformers as tf

    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    if family == "llama":
        return tf.LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 2,
                              num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                              max_position_embeddings=512, tie_word_embeddings=True, **ids)
    if family == "gpt2":
        return tf.GPT2Config(vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=4, n_positions=512, **ids)
    if family == "gpt_neox":
        return tf.GPTNeoXConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                                intermediate_size=hidden * 4, max_position_embeddings=512, **ids)
    raise AuditError(f"unknown zoo model family {family!r}", hint="choose llama, gpt2 or gpt_neox")


def _blocks(texts: Sequence[str], tokenizer: Any, limit: int) -> list[dict[str, list[int]]]:
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for text in texts:
        ids += list(tokenizer.encode(text, add_special_tokens=False)) + ([eos] if eos is not None else [])
        if len(ids) >= limit * BLOCK:
            break
    return [{"input_ids": ids[i:i + BLOCK]} for i in range(0, len(ids) - BLOCK + 1, BLOCK)][:limit]


def _train(model: Any, tokenizer: Any, blocks: list[dict[str, list[int]]], steps: int, out: Path, seed: int,
           lr: float, batch: int = 8) -> None:
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    if not blocks:
        raise AuditError("no training text for a zoo member", hint="choose a larger text source")
    args = TrainingArguments(output_dir=str(out / "_trainer"), max_steps=steps, per_device_train_batch_size=batch,
                             learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=max(1, steps // 10),
                             logging_steps=max(1, steps), save_strategy="no", report_to=[], seed=seed,
                             use_cpu=True, disable_tqdm=True, dataloader_num_workers=0)
    Trainer(model=model, args=args, train_dataset=blocks,
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False)).train()


def _save(model: Any, tokenizer: Any, out: Path) -> None:
    import shutil

    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    shutil.rmtree(out / "_trainer", ignore_errors=True)


def _scratch(recipe: MemberRecipe, texts: Sequence[str], out: Path, teacher_tokenizer: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(recipe.seed)
    tokenizer = _own_tokenizer(texts) if recipe.tokenizer == "own" else teacher_tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = _config(recipe.family, len(tokenizer), recipe.hidden, recipe.layers, tokenizer)
    model = AutoModelForCausalLM.from_config(config)
    batch = 8 if len(tokenizer) <= 8192 else 2     # a 49k-entry output layer costs 25x a 2k one per token
    _train(model, tokenizer, _blocks(texts, tokenizer, recipe.steps * batch), recipe.steps, out, recipe.seed, lr=3e-3,
           batch=batch)
    _save(model, tokenizer, out)


def _fine_tune(recipe: MemberRecipe, texts: Sequence[str], out: Path, reference: Any) -> None:
    """The reference model with only its last decoder layer trained for a few steps."""
    import copy

    model = copy.deepcopy(reference.model).float().train()
    for p in model.parameters():
        p.requires_grad_(False)
    layers = model.base_model.layers if hasattr(model.base_model, "layers") else None
    if layers is None:
        raise AuditError("the reference model has no decoder layers to fine-tune", hint="use another reference")
    for p in layers[-1].parameters():
        p.requires_grad_(True)
    _train(model, reference.tokenizer, _blocks(texts, reference.tokenizer, recipe.steps * 4), recipe.steps, out,
           recipe.seed, lr=5e-4, batch=4)
    model.eval()
    _save(model.to(dtype=reference.model.dtype), reference.tokenizer, out)


def make_members(recipes: Sequence[MemberRecipe], out_dir: str | Path, *, teacher_tokenizer: Any,
                 reference: Any, reference_texts: Callable[[], list[str]] | None = None,
                 progress: Any = None) -> list[ZooCandidate]:
    """Train (or reuse, when ``out_dir/NAME`` already holds it) every recipe's model; return candidates.

    ``reference`` is the loaded reference model (teacher-runtime ``LoadedModel``);
    ``reference_texts`` returns the reference model's answers for the ``reference-student`` kind.
    """
    from distillscope.progress import ensure_progress

    out_dir = Path(out_dir)
    out: list[ZooCandidate] = []
    answers: list[str] | None = None
    with ensure_progress(progress).task("training zoo members", total=len(recipes)) as task:
        for r in recipes:
            if r.kind == "reference":
                out.append(ZooCandidate(f"local:{reference.spec}", "reference", str(reference.model.config.model_type),
                                        "the reference model itself", r.name))
                task.advance()
                continue
            path = out_dir / r.name
            if not (path / "config.json").is_file():
                logger.info("training zoo member %s", r.name)
                if r.kind == "reference-student":
                    if reference_texts is None:
                        raise AuditError("reference-student members need the reference model's answers",
                                         hint="pass reference_texts, or drop those recipes")
                    answers = answers if answers is not None else reference_texts()
                    _scratch(r, answers, path, teacher_tokenizer)
                elif r.kind == "fine-tune":
                    _fine_tune(r, source_texts(r.source), path, reference)
                else:
                    _scratch(r, source_texts(r.source), path, teacher_tokenizer)
            family = r.family or str(reference.model.config.model_type)
            out.append(ZooCandidate(f"local:{path}", r.kind, family, r.source, r.name))
            task.advance()
    return out


def build_default_zoo(*, prompts: Sequence[str], teacher: Any, references: Sequence[Any], members_dir: str | Path,
                      quick: bool = False, extra: Sequence[ZooCandidate] = (), builtin: bool = True,
                      reference_prompts: Sequence[str] = (), max_new_tokens: int = 48, temperature: float = 0.7,
                      seed: int = 0, key_id: str | None = None, settings: Any = None, progress: Any = None) -> Any:
    """Train the built-in members (:func:`default_recipes`), add ``extra`` and score them all.

    ``teacher`` and ``references`` are loaded models (teacher-runtime ``LoadedModel``); the first
    reference is the one the reference-student and fine-tune members derive from.
    ``reference_prompts`` are answered by that reference to train its students (never the zoo prompts).
    """
    from distillscope.audit.zoo import build_zoo

    candidates: list[ZooCandidate] = []
    if builtin:
        reference = references[0]

        def reference_texts() -> list[str]:
            from distillscope.teacher import SamplingParams, Teacher

            if not reference_prompts:
                raise AuditError("reference-student members need prompts for the reference model to answer",
                                 hint="pass reference_prompts")
            gens = Teacher(reference).generate(list(reference_prompts), SamplingParams(
                max_new_tokens=max_new_tokens * 2, temperature=temperature, seed=seed + 1), watermark=False,
                progress=progress)
            return [f"{q}\n{g.text}" for q, g in zip(reference_prompts, gens) if g.text.strip()]

        candidates = make_members(default_recipes(quick=quick), members_dir, teacher_tokenizer=teacher.tokenizer,
                                  reference=reference, reference_texts=reference_texts, progress=progress)
    candidates += list(extra)
    if not candidates:
        raise AuditError("the zoo would have no members", hint="keep the built-in members or add --member SPEC")
    return build_zoo(candidates, prompts=prompts, teacher_loaded=teacher, reference_loaded=references,
                     max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, key_id=key_id,
                     settings=settings, progress=progress)
