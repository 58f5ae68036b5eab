"""The teacher runtime: load the bundled teacher, the reference model, any HF causal LM or GGUF
file, or a tiny test model, and generate (optionally watermarked) answers.

See ``docs/teacher.md`` and the ``teacher`` contract in ``ARCHITECTURE.md``.
"""

from distillscope.teacher.generation import Generation, SamplingParams, TokenStep
from distillscope.teacher.loading import load_model, load_tokenizer, model_directory
from distillscope.teacher.model import LoadedModel, TokenTopK
from distillscope.teacher.prompting import fallback_chat_text
from distillscope.teacher.runtime import Teacher
from distillscope.teacher.sources import BUNDLED_MODELS

__all__ = ["BUNDLED_MODELS", "Generation", "LoadedModel", "SamplingParams", "Teacher", "TokenStep", "TokenTopK",
           "fallback_chat_text", "load_model", "load_tokenizer", "model_directory"]
