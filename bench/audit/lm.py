"""The small language models of the audit benchmark: real English, a compact vocabulary, fast on CPU.

Text: the docstrings of the Python standard library (read with ``ast``, nothing imported),
tokenised with the SmolLM2 tokenizer. The vocabulary is the ``vocab - 1`` most frequent SmolLM2
tokens of that text (out-of-vocabulary tokens are dropped from the stream) plus a BOS id. Every
model here works on compact ids ``0 .. vocab-1``; ``Vocab.real`` maps them back to SmolLM2 ids,
and the watermark, the detector and the audit's tuple selection only ever see SmolLM2 ids — the
compact ids exist only to make the output layer 48x smaller.

* the **teacher** is a Llama (``teacher_dim``) pretrained on that text;
* every **student** starts from one shared base Llama (``student_dim``, another seed, pretrained
  on the same text for fewer steps) and is fine-tuned on the teacher's answers (SFT: loss on
  answer tokens only);
* watermarked generation adds ``delta`` to the logits of green tokens, green computed by the
  product's own ``scheme.token_bits`` on SmolLM2 ids (KGW left-hash), before temperature
  and top-k: exactly what the gateway's ``WatermarkProcessor`` does, on a smaller candidate set.
"""

from __future__ import annotations

import ast
import logging
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessor, LogitsProcessorList

logger = logging.getLogger(__name__)

BOS = 0  # compact id 0: start of every prompt, mapped to SmolLM2's <|endoftext|> (id 0), never generated


def stdlib_docstrings(limit_chars: int) -> list[str]:
    """Paragraphs (≥ 80 characters) of the standard library's docstrings, in a fixed order."""
    root = Path(ast.__file__).parent
    out: list[str] = []
    total = 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(p.startswith(("test", "idlelib", "site-packages", "lib2to3")) for p in rel):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node) or ""
                for para in doc.split("\n\n"):
                    para = " ".join(para.split())
                    if len(para) >= 80:
                        out.append(para)
                        total += len(para)
        if total >= limit_chars:
            break
    return out


@dataclass(frozen=True)
class Vocab:
    """Compact ids ``0..size-1``; ``real[c]`` is the SmolLM2 id of compact id ``c``."""

    real: torch.Tensor  # (size,) int64

    @property
    def size(self) -> int:
        return int(self.real.numel())

    def to_real(self, ids) -> list[int]:
        return self.real[torch.as_tensor(ids, dtype=torch.long)].tolist()


def build_corpus(tokenizer, size: int, limit_chars: int) -> tuple[Vocab, list[list[int]]]:
    """The vocabulary and each docstring paragraph as compact ids (out-of-vocabulary tokens dropped)."""
    paras = stdlib_docstrings(limit_chars)
    enc = tokenizer(paras, add_special_tokens=False)["input_ids"]
    counts = Counter(t for ids in enc for t in ids)
    counts.pop(0, None)
    real = [0] + [t for t, _ in counts.most_common(size - 1)]
    to_compact = {t: i for i, t in enumerate(real)}
    docs = [[to_compact[t] for t in ids if t in to_compact] for ids in enc]
    return Vocab(torch.tensor(real, dtype=torch.long)), [d for d in docs if len(d) >= 16]


def new_model(vocab: int, dim: int, layers: int, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=dim, intermediate_size=4 * dim, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=BOS, eos_token_id=None, pad_token_id=BOS)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = BOS
    return model


def train(model, seqs: list[tuple[list[int], list[int]]], *, epochs: float, lr: float, batch: int, seed: int,
          device: str) -> list[float]:
    """Causal-LM training on (context, target) id lists: loss on the target tokens only; AdamW,
    linear warm-up (5 %) and cosine decay, shuffled mini-batches. Returns the loss per epoch."""
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    steps_per_epoch = max(1, len(seqs) // batch)
    total = max(1, round(epochs * steps_per_epoch))
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + torch.cos(torch.tensor(s / total * torch.pi)).item()))
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    step, order, run = 0, [], []
    while step < total:
        if not order:
            order = torch.randperm(len(seqs), generator=gen).tolist()
            if run:
                losses.append(sum(run) / len(run))
                run = []
        chunk = [seqs[i] for i in order[:batch]]
        order = order[batch:]
        width = max(len(c) + len(t) for c, t in chunk)
        ids = torch.full((len(chunk), width), BOS, dtype=torch.long)
        labels = torch.full_like(ids, -100)
        for r, (c, t) in enumerate(chunk):
            ids[r, :len(c) + len(t)] = torch.tensor(c + t)
            labels[r, len(c):len(c) + len(t)] = torch.tensor(t)
        loss = model(input_ids=ids.to(device), labels=labels.to(device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        run.append(loss.item())
        step += 1
    if run:
        losses.append(sum(run) / len(run))
    model.eval()
    return losses


class GreenBias(LogitsProcessor):
    """KGW on compact ids: ``+delta`` on the logits of candidates that are green after the last
    ``h`` tokens, green decided by ``scheme.token_bits`` on the SmolLM2 ids (the product's PRF)."""

    def __init__(self, scheme, vocab: "Vocab", delta: float):
        self.scheme, self.vocab, self.delta = scheme, vocab, float(delta)
        self.h = scheme.context_width
        self.table = green_matrix(scheme, vocab).float() * self.delta if self.h == 1 else None

    def __call__(self, input_ids, scores):
        if self.table is not None:
            return scores + self.table.to(scores.device)[input_ids[:, -1]]
        contexts = self.vocab.real[input_ids[:, -self.h:].cpu()]
        bits, _ = self.scheme.token_bits(contexts, self.vocab.real.unsqueeze(0).expand(len(contexts), -1))
        return scores + (bits < self.scheme.threshold).to(scores.device, scores.dtype) * self.delta


def green_matrix(scheme, vocab: Vocab) -> torch.Tensor:
    """``green[w, y]``: is SmolLM2 token ``real[y]`` green after the window ``real[w]`` (h = 1 only)."""
    if scheme.context_width != 1:
        raise ValueError("green_matrix is for context_width 1")
    contexts = vocab.real.unsqueeze(1)
    tokens = vocab.real.unsqueeze(0).expand(vocab.size, -1)
    bits, _ = scheme.token_bits(contexts, tokens)
    return bits < scheme.threshold


@torch.no_grad()
def generate(model, prompts: list[list[int]], *, new_tokens: int, top_k: int, temperature: float, seed: int,
             batch: int, device: str, scheme=None, vocab: Vocab | None = None, delta: float = 0.0) -> list[list[int]]:
    """Sampled answers of exactly ``new_tokens`` compact ids per prompt (all prompts the same length);
    watermarked with ``scheme`` (and ``delta``) when one is given."""
    model.to(device).eval()
    procs = LogitsProcessorList([GreenBias(scheme, vocab, delta)]) if scheme is not None else None
    out: list[list[int]] = []
    torch.manual_seed(seed)
    for i in range(0, len(prompts), batch):
        ids = torch.tensor(prompts[i:i + batch], dtype=torch.long, device=device)
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=top_k,
                             temperature=temperature, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             suppress_tokens=[BOS], logits_processor=procs, pad_token_id=BOS)
        out.extend(gen[:, ids.shape[1]:].tolist())
    return out


@torch.no_grad()
def topk(model, streams: list[list[int]], k: int, *, batch: int, device: str) -> list[list[list[int]]]:
    """The model's top-k next tokens after every prefix of each stream (``[t]`` predicts ``stream[t+1]``)."""
    model.to(device).eval()
    out: list[list[list[int]]] = []
    for i in range(0, len(streams), batch):
        chunk = streams[i:i + batch]
        width = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), width), BOS, dtype=torch.long)
        for r, s in enumerate(chunk):
            ids[r, :len(s)] = torch.tensor(s)
        top = model(input_ids=ids.to(device)).logits.topk(k, dim=-1).indices.cpu()
        out.extend(top[r, :len(s)].tolist() for r, s in enumerate(chunk))
    return out


@torch.no_grad()
def mean_entropy(model, prompts: list[list[int]], *, top_k: int, temperature: float, device: str) -> float:
    """Mean entropy (nats) of the top-k sampling distribution at the first answer position."""
    logits = model(input_ids=torch.tensor(prompts, device=device)).logits[:, -1] / temperature
    vals = logits.topk(top_k, dim=-1).values
    p = vals.softmax(-1)
    return float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())


if __name__ == "__main__":  # pragma: no cover - a quick look at the corpus
    paras = stdlib_docstrings(200_000)
    print(len(paras), sum(map(len, paras)), paras[:3], file=sys.stderr)
