"""Countermeasures: make what a protected account harvests worth less to a distiller.

Samplers (before the watermark, so it still marks their output): antidistillation sampling and a
product-of-experts sampler with a proxy student. Output protections (after generation): top-k
log-probability truncation, rounding and noise; chain-of-thought withheld or summarised. Stronger
marking for protected accounts is a watermark scheme with a larger bias (``protected_scheme``).
"""

from distillscope.countermeasures.marking import protected_scheme
from distillscope.countermeasures.outputs import (REASONING_MODES, LogprobProtection, protect_logprobs,
                                                  protect_reasoning)
from distillscope.countermeasures.sampling import (AntidistillationProcessor, ProductOfExpertsProcessor,
                                                   holdout_direction)

__all__ = ["AntidistillationProcessor", "LogprobProtection", "ProductOfExpertsProcessor", "REASONING_MODES",
           "holdout_direction", "protect_logprobs", "protect_reasoning", "protected_scheme"]
