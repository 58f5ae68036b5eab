"""Keyed, device-independent output watermarks and their detection with exact p-values.

Two schemes behind one interface: KGW green lists (left-hash or self-hash) and the
distortion-free Gumbel-max scheme. Processor and detector are built from one scheme object::

    key = WatermarkKey.load(settings)            # or WatermarkKey.generate()
    scheme = make_scheme("kgw", key, gamma=0.25, delta=2.0)
    model.generate(..., logits_processor=[scheme.processor(top_k=50)])
    scheme.detector(tokenizer).detect_text(text).p_value
"""

from distillscope.watermark.detector import Detection, WatermarkDetector
from distillscope.watermark.keys import WatermarkKey
from distillscope.watermark.pvalues import P_FLOOR
from distillscope.watermark.processor import SamplingSettings, WatermarkProcessor
from distillscope.watermark.schemes import (SCHEMES, GumbelScheme, KGWScheme, WatermarkScheme, make_scheme,
                                            scheme_from_settings)

__all__ = ["Detection", "GumbelScheme", "KGWScheme", "P_FLOOR", "SCHEMES", "SamplingSettings", "WatermarkDetector",
           "WatermarkKey", "WatermarkProcessor", "WatermarkScheme", "make_scheme", "scheme_from_settings"]
