"""Distillation: the built-in prompt generator, harvesting a teacher, training and evaluating students.

Public names (other packages import only these):

- prompts: :class:`PromptGenerator`, :class:`PromptItem`, :class:`Template`, ``CATEGORIES``, ``TOPICS``,
  ``COT_SUFFIXES``
- harvest: :func:`harvest` / :func:`aharvest`, :func:`plan_harvest`, :class:`HarvestConfig`, :class:`HarvestPlan`,
  :class:`HarvestSummary`, :class:`HarvestStore`, :class:`HarvestRecord`, :class:`HarvestError`, :class:`StoreStats`,
  :func:`read_prompt_file`, :func:`record_id`, ``ROTATIONS``
- train/eval: :func:`train`, :class:`DistillConfig`, :class:`DistillTrainer`, :class:`TrainResult`,
  :func:`evaluate`, :class:`EvalReport`, :class:`ModelEval`, :func:`builtin_tasks`, :class:`TaskItem`,
  ``KD_LOSSES`` (:func:`topk_forward_kl`, :func:`topk_reverse_kl`, :func:`topk_jsd`)
"""

from typing import Any

# Light modules (no torch): the prompt generator and harvesting are used by the traffic simulator
# and the harvest CLI, which must not pay for importing torch, transformers and TRL.
from distillscope.distill.harvest import HarvestConfig, HarvestPlan, HarvestSummary, aharvest, harvest, plan_harvest
from distillscope.distill.harvest_prompts import read_prompt_file
from distillscope.distill.prompts import CATEGORIES, COT_SUFFIXES, TOPICS, PromptGenerator, PromptItem, Template
from distillscope.distill.rotation import ROTATIONS
from distillscope.distill.store import HarvestError, HarvestRecord, HarvestStore, StoreStats, record_id
from distillscope.distill.tasks import TaskItem, builtin_tasks

# Heavy names (torch / transformers / TRL) load on first use (PEP 562).
_LAZY = {
    "DistillConfig": "config", "DistillTrainer": "training", "TrainResult": "training", "train": "training",
    "EvalReport": "evaluation", "ModelEval": "evaluation", "evaluate": "evaluation",
    "KD_LOSSES": "losses", "topk_forward_kl": "losses", "topk_reverse_kl": "losses", "topk_jsd": "losses",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CATEGORIES", "COT_SUFFIXES", "TOPICS", "PromptGenerator", "PromptItem", "Template",
    "HarvestConfig", "HarvestPlan", "HarvestSummary", "aharvest", "harvest", "plan_harvest", "read_prompt_file",
    "ROTATIONS",
    "HarvestError", "HarvestRecord", "HarvestStore", "StoreStats", "record_id",
    "DistillConfig", "DistillTrainer", "TrainResult", "train", "EvalReport", "ModelEval", "evaluate",
    "TaskItem", "builtin_tasks", "KD_LOSSES", "topk_forward_kl", "topk_reverse_kl", "topk_jsd",
]
