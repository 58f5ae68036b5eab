"""The audit: test a suspect model (or corpus) for training on our watermarked outputs.

Only the radioactivity tests (open-weights reading mode, also across tokenizers, and black-box)
decide an accusation: their null is "the suspect is independent of our watermark key". Passive
attribution is ranked against a zoo of independent models and reported as corroboration. Every
test runs on the suspect and on a control; the verdict and an evidence report (HTML + JSON)
follow. See ``docs/audit.md``.
"""

from distillscope.audit.access import open_suspect, parse_spec
from distillscope.audit.auditor import AuditConfig, default_zoo_paths, run_audit
from distillscope.audit.combine import ACCUSATION_H0, P_FLOOR, combine_audit, holm
from distillscope.audit.crossread import cross_tokenizer_predictions, prepare_texts
from distillscope.audit.radioactivity import TokenText, select_blackbox_pairs, select_reading_pairs
from distillscope.audit.report import write_report
from distillscope.audit.results import AuditResult, ModelAudit, TestResult, Verdict
from distillscope.audit.zoo import H0_ZOO, Zoo, ZooCandidate, ZooMember, build_zoo
from distillscope.audit.zoo_members import MemberRecipe, build_default_zoo, default_recipes, source_texts

__all__ = ["ACCUSATION_H0", "AuditConfig", "AuditResult", "H0_ZOO", "MemberRecipe", "ModelAudit", "P_FLOOR",
           "TestResult", "TokenText", "Verdict", "Zoo", "ZooCandidate", "ZooMember", "build_default_zoo", "build_zoo",
           "combine_audit", "cross_tokenizer_predictions", "default_recipes", "default_zoo_paths", "holm",
           "open_suspect", "parse_spec", "prepare_texts", "run_audit", "select_blackbox_pairs",
           "select_reading_pairs", "source_texts", "write_report"]
