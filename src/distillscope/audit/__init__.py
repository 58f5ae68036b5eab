"""The audit: test a suspect model (or corpus) for training on our watermarked outputs.

Three tests, each with an exact or conservative p-value: open-weights radioactivity (reading
mode), black-box radioactivity, and passive attribution; run on the suspect and, always, on a
control; combined into a verdict and an evidence report (HTML + JSON). See ``docs/audit.md``.
"""

from distillscope.audit.access import open_suspect, parse_spec
from distillscope.audit.auditor import AuditConfig, run_audit
from distillscope.audit.combine import P_FLOOR, combine_audit, fisher, holm
from distillscope.audit.radioactivity import TokenText, select_blackbox_pairs, select_reading_pairs
from distillscope.audit.report import write_report
from distillscope.audit.results import AuditResult, ModelAudit, TestResult, Verdict

__all__ = ["AuditConfig", "AuditResult", "ModelAudit", "P_FLOOR", "TestResult", "TokenText", "Verdict",
           "combine_audit", "fisher", "holm", "open_suspect", "parse_spec", "run_audit", "select_blackbox_pairs",
           "select_reading_pairs", "write_report"]
