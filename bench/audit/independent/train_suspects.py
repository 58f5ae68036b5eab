"""Train the independent suspect zoo of issue 12's bench/audit: plain transformers, not distillscope.distill.

Every suspect is an HF directory (``save_pretrained`` of model and tokenizer, no chat template, so the audit
prompts it completion-style, the way it was trained: ``prompt\\nanswer``) with ``suspect.json`` beside the
weights; ``manifest.json`` in the zoo folder joins them all.

Labels (with respect to OUR watermark key only):

* ``positive``  — saw our watermarked answers (``wm`` or ``para`` source, or a Gemma fine-tune with rho > 0);
* ``innocent``  — never saw a watermarked token. Kinds: ``text`` (independent text), ``clean-teacher`` (our
  teacher's UNWATERMARKED answers: as teacher-like as a student gets while staying innocent of the key),
  ``reference-imitator`` (a student of Gemma-3-270M's answers: what ``distillscope demo`` uses as a control).

Methods: ``scratch`` (random init of a tiny config of one of five families, own byte-level BPE trained with
``tokenizers`` on the model's own training text, or the SmolLM2 tokenizer = our teacher's), ``lora`` (peft
LoRA on Gemma-3-270M base, merged before saving) and ``top`` (Gemma-3-270M with all but its top layers frozen).

Run: ``python bench/audit/independent/train_suspects.py --out /work/cache/auditbench/zoo [--shard 0/2]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import data

logger = logging.getLogger("auditbench.train")

SEQ_LEN = 128
GEMMA_STEPS = 30  # 15-30 s per step (batch 4) of Gemma-3-270M on one shared CPU thread; rho100 gets 2x
GEMMA_LOW_RHO_BATCH = 2  # what the shared CPU allowed for the rho = 20 % and 5 % fine-tunes
SMOL_BATCH = 8  # the 49k-token SmolLM2 head costs ~4x the body: half the batch
MAX_POSITIONS = 1024  # the audit may read texts longer than the training blocks
FAMILIES = ("llama", "gpt2", "gptneox", "qwen2", "mistral")
POSITIVE_SOURCES = {"wm", "para"}


@dataclass(frozen=True)
class SuspectPlan:
    """One suspect of the zoo.

    name: directory name; label: ``positive`` or ``innocent``; kind: what sort of model it is (see module doc);
    family: config family (``gemma3`` for fine-tunes); tokenizer: ``bpe`` (own, trained here), ``smollm2``
    (our teacher's) or ``gemma3`` (the base's); sources: ``(source, share of characters)``; method: ``scratch``,
    ``lora`` or ``top``; rho: share of watermarked text in the training data; steps/batch/lr: optimisation;
    chars: characters of training text; vocab: own-BPE vocabulary size; width/layers: tiny-config size.
    """

    name: str
    label: str
    kind: str
    family: str
    tokenizer: str
    sources: tuple[tuple[str, float], ...]
    method: str = "scratch"
    seed: int = 0
    steps: int = 100
    batch: int = 16
    lr: float = 2e-3
    chars: int = 700_000
    vocab: int = 4096
    width: int = 128
    layers: int = 4
    base: str = "gemma3-270m"

    @property
    def rho(self) -> float:
        return sum(share for src, share in self.sources if src in POSITIVE_SOURCES)

    def __post_init__(self) -> None:
        expected = "positive" if self.rho > 0 else "innocent"
        if self.label != expected:
            raise ValueError(f"{self.name}: label {self.label!r} but rho = {self.rho} (want {expected!r})")
        if self.method == "scratch" and self.family not in FAMILIES:
            raise ValueError(f"{self.name}: unknown family {self.family!r}")
        if abs(sum(s for _, s in self.sources) - 1.0) > 1e-6:
            raise ValueError(f"{self.name}: source shares must sum to 1")


def _s(name, kind, family, tok, sources, **kw) -> SuspectPlan:
    label = "positive" if any(src in POSITIVE_SOURCES for src, _ in sources) else "innocent"
    return SuspectPlan(name, label, kind, family, tok, tuple(sources), **kw)


def full_plan() -> list[SuspectPlan]:
    """The zoo of the benchmark: 22 innocents (5 families, 7 sources) and 9 positives."""
    mix = (("doc", 0.4), ("man", 0.3), ("pypi", 0.3))
    innocents = [
        _s("inn-llama-doc-bpe", "text", "llama", "bpe", [("doc", 1.0)]),
        _s("inn-llama-doc-bpe-s1", "text", "llama", "bpe", [("doc", 1.0)], seed=1),
        _s("inn-llama-man-bpe", "text", "llama", "bpe", [("man", 1.0)]),
        _s("inn-llama-deb-bpe", "text", "llama", "bpe", [("deb", 1.0)]),
        _s("inn-gpt2-doc-bpe", "text", "gpt2", "bpe", [("doc", 1.0)], seed=2),
        _s("inn-gpt2-man-bpe", "text", "gpt2", "bpe", [("man", 1.0)], seed=2),
        _s("inn-gpt2-pypi-bpe", "text", "gpt2", "bpe", [("pypi", 1.0)], seed=2),
        _s("inn-neox-deb-bpe", "text", "gptneox", "bpe", [("deb", 1.0)], seed=3),
        _s("inn-neox-mix-bpe", "text", "gptneox", "bpe", mix, seed=3),
        _s("inn-qwen2-pypi-bpe", "text", "qwen2", "bpe", [("pypi", 1.0)], seed=4),
        _s("inn-qwen2-man-bpe", "text", "qwen2", "bpe", [("man", 1.0)], seed=4),
        _s("inn-mistral-mix-bpe", "text", "mistral", "bpe", mix, seed=5),
        _s("inn-llama-doc-smol", "text", "llama", "smollm2", [("doc", 1.0)], seed=6),
        _s("inn-gpt2-mix-smol", "text", "gpt2", "smollm2", mix, seed=6),
        # students of the reference model (what a demo-style control is)
        _s("ref-llama-gemma-bpe", "reference-imitator", "llama", "bpe", [("gemma", 1.0)], seed=7),
        _s("ref-gpt2-gemma-bpe", "reference-imitator", "gpt2", "bpe", [("gemma", 1.0)], seed=7),
        _s("ref-qwen2-gemma-smol", "reference-imitator", "qwen2", "smollm2", [("gemma", 1.0)], seed=7,
           batch=SMOL_BATCH),
        # students of our teacher's UNWATERMARKED answers: innocent w.r.t. the key, very teacher-like
        _s("clean-llama-bpe", "clean-teacher", "llama", "bpe", [("clean", 1.0)], seed=8),
        _s("clean-neox-bpe", "clean-teacher", "gptneox", "bpe", [("clean", 1.0)], seed=9),
        _s("clean-llama-smol", "clean-teacher", "llama", "smollm2", [("clean", 1.0)], seed=8, batch=SMOL_BATCH),
        _s("clean-mistral-mix-smol", "clean-teacher", "mistral", "smollm2", [("clean", 0.6), ("doc", 0.4)], seed=9,
           batch=SMOL_BATCH),
        # an innocent partial fine-tune of the reference model (same recipe as the positives, rho = 0)
        _s("gemma-lora-clean", "clean-teacher", "gemma3", "gemma3", [("clean", 0.5), ("doc", 0.5)],
           method="lora", steps=GEMMA_STEPS, batch=4, lr=5e-4, chars=200_000),
    ]
    positives = [
        _s("pos-gemma-lora-rho100", "gemma-finetune", "gemma3", "gemma3", [("wm", 1.0)],
           method="lora", steps=2 * GEMMA_STEPS, batch=4, lr=5e-4, chars=200_000),
        _s("pos-gemma-lora-rho20", "gemma-finetune", "gemma3", "gemma3", [("wm", 0.2), ("doc", 0.8)],
           method="lora", steps=GEMMA_STEPS, batch=GEMMA_LOW_RHO_BATCH, lr=5e-4, chars=200_000),
        _s("pos-gemma-lora-rho5", "gemma-finetune", "gemma3", "gemma3", [("wm", 0.05), ("doc", 0.95)],
           method="lora", steps=GEMMA_STEPS, batch=GEMMA_LOW_RHO_BATCH, lr=5e-4, chars=200_000),
        _s("pos-gemma-top-rho100", "gemma-finetune", "gemma3", "gemma3", [("wm", 1.0)],
           method="top", steps=GEMMA_STEPS, batch=4, lr=2e-4, chars=200_000),
        _s("pos-llama-wm-bpe", "scratch-student", "llama", "bpe", [("wm", 1.0)], seed=10),
        _s("pos-gpt2-wm-bpe", "scratch-student", "gpt2", "bpe", [("wm", 1.0)], seed=11),
        _s("pos-llama-wm-smol", "scratch-student", "llama", "smollm2", [("wm", 1.0)], seed=12, batch=SMOL_BATCH),
        _s("pos-qwen2-wm20-bpe", "scratch-student", "qwen2", "bpe", [("wm", 0.2), ("man", 0.8)], seed=13),
        _s("pos-llama-para-bpe", "paraphrase-student", "llama", "bpe", [("para", 1.0)], seed=14),
    ]
    return innocents + positives


def smoke_plan() -> list[SuspectPlan]:
    """A tiny configuration for tests: three families, a LoRA on one of them as its base."""
    tiny = dict(steps=4, batch=4, chars=20_000, vocab=300, width=32, layers=1)
    return [
        _s("inn-llama-doc", "text", "llama", "bpe", [("doc", 1.0)], **tiny),
        _s("inn-gpt2-pypi", "text", "gpt2", "bpe", [("pypi", 1.0)], **tiny),
        _s("pos-neox-wm", "scratch-student", "gptneox", "bpe", [("wm", 0.5), ("doc", 0.5)], **tiny),
        _s("pos-lora-wm", "gemma-finetune", "llama", "bpe", [("wm", 1.0)], method="lora",
           base="zoo:inn-llama-doc", **tiny),
    ]


PLANS = {"full": full_plan, "smoke": smoke_plan}


# ---- tokenizers ---------------------------------------------------------------------------------------

def train_bpe(texts: list[str], vocab: int):
    """A byte-level BPE trained with ``tokenizers`` on ``texts``, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|bos|>", "<|eos|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>",
                                   pad_token="<|pad|>")


def base_tokenizer(name: str):
    """SmolLM2's or Gemma's tokenizer through distillscope's provider-side loader, chat template removed."""
    from distillscope.teacher import load_tokenizer

    tok = load_tokenizer({"smollm2": "smollm2", "gemma3": "gemma3-270m"}[name])
    tok.chat_template = None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


# ---- models ---------------------------------------------------------------------------------------------

def tiny_config(family: str, tokenizer, width: int, layers: int):
    import transformers as tf

    ids = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    heads = max(1, width // 32)
    if family == "gpt2":
        return tf.GPT2Config(n_embd=width, n_layer=layers, n_head=heads, n_positions=MAX_POSITIONS, **ids)
    if family == "gptneox":
        return tf.GPTNeoXConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                                intermediate_size=4 * width, max_position_embeddings=MAX_POSITIONS, **ids)
    common = dict(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=3 * width, max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=True, **ids)
    if family == "llama":
        return tf.LlamaConfig(**common)
    if family == "qwen2":
        return tf.Qwen2Config(num_key_value_heads=max(1, heads // 2), **common)
    return tf.MistralConfig(num_key_value_heads=max(1, heads // 2), sliding_window=None, **common)


def base_model(plan: SuspectPlan, zoo: Path):
    """The pre-trained model a fine-tune starts from: Gemma-3-270M (converted once) or a zoo member."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if plan.base.startswith("zoo:"):
        path = zoo / plan.base.removeprefix("zoo:")
        tok = AutoTokenizer.from_pretrained(path)
    else:
        from distillscope.teacher import model_directory

        path = model_directory(plan.base)
        tok = base_tokenizer("gemma3")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model, tok


def prepare_finetune(plan: SuspectPlan, model):
    """LoRA adapters (peft) on the attention and MLP projections, or freeze all but the top two layers."""
    if plan.method == "lora":
        from peft import LoraConfig, get_peft_model

        names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        targets = sorted(names & {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
        return get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets,
                                                task_type="CAUSAL_LM"))
    layers = model.model.layers
    for p in model.parameters():
        p.requires_grad = False
    for layer in layers[-2:]:
        for p in layer.parameters():
            p.requires_grad = True
    for p in model.model.norm.parameters():
        p.requires_grad = True
    return model


# ---- data --------------------------------------------------------------------------------------------------

def training_texts(plan: SuspectPlan) -> list[str]:
    """Documents of each source, in proportion to its share of ``plan.chars`` (answer sources repeat)."""
    texts: list[str] = []
    for source, share in plan.sources:
        want = int(plan.chars * share)
        docs = data.load_source(source, want, plan.seed)
        got = sum(map(len, docs))
        if got and got < want:  # small answer files: repeat them (epochs) up to the share
            docs = docs * max(1, round(want / got))
        texts.extend(docs)
    import random

    random.Random(plan.seed).shuffle(texts)
    return texts


class Blocks(torch.utils.data.Dataset):
    """Documents joined by EOS and cut into SEQ_LEN-token blocks (labels = inputs)."""

    def __init__(self, texts: list[str], tokenizer) -> None:
        ids: list[int] = []
        for enc in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            ids.extend(enc + [tokenizer.eos_token_id])
        n = len(ids) // SEQ_LEN
        if n == 0:
            raise ValueError(f"only {len(ids)} tokens of training text; need at least {SEQ_LEN}")
        self.blocks = torch.tensor(ids[: n * SEQ_LEN]).view(n, SEQ_LEN)
        self.n_tokens = len(ids)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


# ---- training ------------------------------------------------------------------------------------------------

def train_one(plan: SuspectPlan, zoo: Path) -> dict:
    """Train ``plan`` and save it under ``zoo/plan.name``; return its manifest entry."""
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, set_seed

    t0 = time.perf_counter()
    set_seed(plan.seed)
    texts = training_texts(plan)
    if plan.method == "scratch":
        tokenizer = train_bpe(texts, plan.vocab) if plan.tokenizer == "bpe" else base_tokenizer(plan.tokenizer)
        model = AutoModelForCausalLM.from_config(tiny_config(plan.family, tokenizer, plan.width, plan.layers))
    else:
        model, tokenizer = base_model(plan, zoo)
        model = prepare_finetune(plan, model)
    dataset = Blocks(texts, tokenizer)
    t_data = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, max_steps=plan.steps, per_device_train_batch_size=plan.batch, learning_rate=plan.lr,
            lr_scheduler_type="cosine", warmup_steps=max(1, plan.steps // 10), weight_decay=0.01,
            logging_steps=max(1, plan.steps // 5), save_strategy="no", report_to=[], disable_tqdm=True,
            use_cpu=True, seed=plan.seed, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=args, train_dataset=dataset)
        result = trainer.train()
    if plan.method == "lora":
        model = model.merge_and_unload()
    for p in model.parameters():
        p.requires_grad = True
    out = zoo / plan.name
    if plan.method != "scratch":
        model = model.to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(out)
    entry = {
        **{k: v for k, v in asdict(plan).items() if k not in {"sources"}},
        "sources": {src: share for src, share in plan.sources}, "source": "+".join(s for s, _ in plan.sources),
        "rho": plan.rho, "params": sum(p.numel() for p in model.parameters()),
        "trainable": "lora r=16" if plan.method == "lora" else ("top 2 layers" if plan.method == "top" else "all"),
        "vocab_size": len(tokenizer), "train_tokens": dataset.n_tokens, "train_blocks": len(dataset),
        "final_loss": round(float(result.training_loss), 4), "data_seconds": round(t_data, 1),
        "train_seconds": round(time.perf_counter() - t0 - t_data, 1), "path": str(out),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "suspect.json").write_text(json.dumps(entry, indent=2), encoding="utf-8")
    logger.info("%s: %s params, loss %.3f, %.0f s", plan.name, entry["params"], entry["final_loss"],
                entry["train_seconds"])
    return entry


def extend_positions(path: Path, n_positions: int = MAX_POSITIONS) -> bool:
    """Give a GPT-2 suspect trained with fewer learned positions ``n_positions`` of them, new rows drawn as at
    init (positions past SEQ_LEN are never trained, so this equals training with the larger table)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    wpe = getattr(getattr(model, "transformer", None), "wpe", None)
    if wpe is None or wpe.num_embeddings >= n_positions:
        return False
    old = wpe.num_embeddings
    new = torch.nn.Embedding(n_positions, wpe.embedding_dim)
    torch.nn.init.normal_(new.weight, std=model.config.initializer_range)
    with torch.no_grad():
        new.weight[:old] = wpe.weight
    model.transformer.wpe = new
    model.config.n_positions = n_positions
    model.save_pretrained(path)
    entry_path = path / "suspect.json"
    entry = json.loads(entry_path.read_text())
    entry.update(positions_extended_from=old, params=sum(p.numel() for p in model.parameters()))
    entry_path.write_text(json.dumps(entry, indent=2), encoding="utf-8")
    return True


def write_manifest(zoo: Path) -> Path:
    """Join every ``suspect.json`` under ``zoo`` into ``zoo/manifest.json``."""
    entries = [json.loads(p.read_text()) for p in sorted(zoo.glob("*/suspect.json"))]
    path = zoo / "manifest.json"
    key = data.HOME / "watermark.key"
    path.write_text(json.dumps({
        "watermark_key_home": str(data.HOME), "key_id_note": "labels are relative to the key in watermark_key_home",
        "key_exists": key.is_file(), "suspects": entries}, indent=2), encoding="utf-8")
    return path


def manifest_table(zoo: Path) -> str:
    """The manifest as a markdown table (name, label, kind, family, tokenizer, source, rho, params, time, loss)."""
    entries = json.loads((zoo / "manifest.json").read_text())["suspects"]
    lines = ["| name | label | kind | family | tokenizer | source | rho | params | steps x batch | train s | loss |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in sorted(entries, key=lambda e: (e["label"], e["kind"], e["name"])):
        lines.append(f"| {e['name']} | {e['label']} | {e['kind']} | {e['family']} | {e['tokenizer']} | {e['source']} | "
                     f"{e['rho']:g} | {e['params'] / 1e6:.2f}M | {e['steps']}x{e['batch']} | {e['train_seconds']:.0f} | "
                     f"{e['final_loss']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=data.CACHE / "zoo")
    parser.add_argument("--preset", choices=sorted(PLANS), default="full")
    parser.add_argument("--only", default="", help="comma-separated names (default: all)")
    parser.add_argument("--shard", default="0/1", help="I/N: train every N-th plan starting at I")
    parser.add_argument("--skip-existing", action="store_true")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    parser.add_argument("--manifest-only", action="store_true", help="only (re)write OUT/manifest.json")
    parser.add_argument("--table", action="store_true", help="print OUT/manifest.json as a markdown table")
    parser.add_argument("--extend-positions", action="store_true",
                        help=f"give GPT-2 suspects of the plan {MAX_POSITIONS} positions, then exit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(int(os.environ.get("AUDITBENCH_THREADS", "1")))
    plans = PLANS[args.preset]()
    if args.only:
        by_name = {p.name: p for p in plans}
        wanted = args.only.split(",")
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            parser.error(f"unknown suspect(s): {', '.join(unknown)}")
        plans = [by_name[n] for n in wanted]  # in the order given
    i, n = map(int, args.shard.split("/"))
    plans = plans[i::n]
    if args.table:
        print(manifest_table(args.out))
        return
    if args.list:
        for p in plans:
            print(f"{p.name:24s} {p.label:9s} {p.kind:18s} {p.family:8s} {p.tokenizer:8s} {p.method:7s} rho={p.rho}")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.extend_positions:
        for plan in plans:
            if (args.out / plan.name / "suspect.json").is_file() and extend_positions(args.out / plan.name):
                logger.info("%s: positions extended to %d", plan.name, MAX_POSITIONS)
        args.manifest_only = True
    for plan in [] if args.manifest_only else plans:
        if args.skip_existing and (args.out / plan.name / "suspect.json").is_file():
            continue
        train_one(plan, args.out)
    print(write_manifest(args.out))


if __name__ == "__main__":
    main()
