"""The model cache: GGUF files converted once to safetensors, written atomically.

Layout under ``settings.resolved_model_cache``::

    smollm2/            config.json, model.safetensors, tokenizer files, distillscope.json
    gemma3-270m/        same
    gguf-<stem>-<hash>/ a user GGUF file, keyed by its path, size and mtime
    tokenizers/<name>/  tokenizer only (used by the tiny test models)

Every entry is built in a temporary sibling directory and renamed into place, so an
interrupted conversion never leaves a broken entry; ``distillscope.json`` (source, versions,
weight fingerprint) marks a complete one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from distillscope.errors import ModelError
from distillscope.progress import Progress, ensure_progress

logger = logging.getLogger(__name__)

METADATA_FILE = "distillscope.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def is_complete(entry: Path) -> bool:
    return (entry / METADATA_FILE).is_file()


def read_metadata(entry: Path) -> dict:
    try:
        return json.loads((entry / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return {}


def fingerprint_dir(directory: Path) -> str:
    """sha256 over the config and weight files of an HF model directory (names and contents)."""
    digest = hashlib.sha256()
    files = sorted(p for p in directory.iterdir()
                   if p.is_file() and (p.name == "config.json" or p.suffix in _WEIGHT_SUFFIXES))
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def gguf_entry_name(path: Path) -> str:
    """Cache entry of a user GGUF file: its stem plus a hash of its resolved path, size and mtime."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()
    return f"gguf-{path.stem}-{hashlib.sha256(key).hexdigest()[:12]}"


def _drop_gguf_quantizer(model) -> None:
    """transformers de-quantizes GGUF to plain floats but keeps a quantizer marker that makes
    ``save_pretrained`` refuse ("quantized with gguf and is not serializable"); drop it."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if getattr(model, "is_quantized", False):
        model.is_quantized = False


def build_entry(entry: Path, build: Callable[[Path], dict], *, what: str) -> Path:
    """Run ``build(tmpdir) -> metadata`` in a temporary sibling of ``entry`` and rename it into place."""
    try:
        return _build_entry(entry, build, what)
    except OSError as exc:
        raise ModelError(f"could not write the model cache entry {entry} ({exc.strerror or exc})",
                         hint="free some disk space, or set DISTILLSCOPE_MODEL_CACHE to a writable directory") from exc


def _build_entry(entry: Path, build: Callable[[Path], dict], what: str) -> Path:
    entry.parent.mkdir(parents=True, exist_ok=True)
    if entry.exists() and not is_complete(entry):
        logger.warning("removing incomplete cache entry %s", entry)
        shutil.rmtree(entry, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.tmp-"))
    try:
        meta = build(tmp)
        meta = {**meta, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "what": what}
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        try:
            os.replace(tmp, entry)
        except OSError:
            if not is_complete(entry):  # not a lost race with another process: a real failure
                raise
            logger.info("another process filled %s first; using it", entry)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return entry


def _versions() -> dict:
    import torch
    import transformers

    return {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0]}


def _load_gguf_tokenizer(gguf: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    except Exception as exc:  # transformers raises many types for unusable GGUF files
        raise ModelError(f"could not read the tokenizer of GGUF file {gguf}: {exc}",
                         hint="pass a GGUF file of a causal LM that transformers supports") from exc


def convert_gguf(entry: Path, locate: Callable[[Path], Path], *, source: str,
                 progress: Progress | None = None) -> Path:
    """Convert a GGUF model (``locate(workdir)`` returns its path) into a safetensors cache entry."""
    import torch
    from transformers import AutoModelForCausalLM

    def build(tmp: Path) -> dict:
        work = tmp / ".source"
        work.mkdir()
        with ensure_progress(progress).task(f"converting {source} to safetensors (once)", total=3) as task:
            gguf = locate(work)
            tokenizer = _load_gguf_tokenizer(gguf)
            task.advance()
            try:
                model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                             dtype=torch.float32, local_files_only=True)
            except Exception as exc:  # unsupported architecture, truncated file, ...
                raise ModelError(f"could not load GGUF file {gguf}: {exc}",
                                 hint="pass a GGUF file of a causal LM that transformers supports") from exc
            task.advance()
            _drop_gguf_quantizer(model)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            shutil.rmtree(work)
            task.advance()
        return {"source": source, "gguf_file": gguf.name, "fingerprint": fingerprint_dir(tmp), **_versions()}

    t0 = time.perf_counter()
    build_entry(entry, build, what="model")
    logger.info("converted %s into %s in %.1fs", source, entry, time.perf_counter() - t0)
    return entry


def convert_gguf_tokenizer(entry: Path, locate: Callable[[Path], Path], *, source: str) -> Path:
    """Cache only the tokenizer of a GGUF model (fast loads of tokenizers for tiny models)."""

    def build(tmp: Path) -> dict:
        work = tmp / ".source"
        work.mkdir()
        _load_gguf_tokenizer(locate(work)).save_pretrained(tmp)
        shutil.rmtree(work)
        return {"source": source, **_versions()}

    return build_entry(entry, build, what="tokenizer")
