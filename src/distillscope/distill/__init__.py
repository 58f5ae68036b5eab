"""Distillation: the built-in prompt generator, harvesting a teacher, training and evaluating students.

Public names (other packages import only these):

- prompts: :class:`PromptGenerator`, :class:`PromptItem`, :class:`Template`, ``CATEGORIES``, ``TOPICS``,
  ``COT_SUFFIXES``
"""

from distillscope.distill.prompts import CATEGORIES, COT_SUFFIXES, TOPICS, PromptGenerator, PromptItem, Template

__all__ = [
    "CATEGORIES", "COT_SUFFIXES", "TOPICS", "PromptGenerator", "PromptItem", "Template",
]
