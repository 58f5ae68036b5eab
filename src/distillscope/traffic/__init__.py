"""Traffic forensics: simulate distillation traffic, score accounts and campaigns, stop them live.

Public names (other packages import only these):

- log schema: :data:`LOG_COLUMNS`, :func:`load_log`, :class:`RequestLogTable`, :class:`LogReport`
- simulator: :class:`SimulationConfig`, :func:`simulate`, :func:`write_simulation`, :func:`replay`
- batch: :func:`calibrate`, :func:`scan`, :func:`analyse`, :class:`ScanConfig`, :class:`ScanResult`,
  :class:`Calibration`, :class:`DistributionConfig` (the kernel-MMD distribution test),
  :func:`default_calibration`, :func:`result_to_dict`
- real time: :class:`TrafficGuard`, :class:`GuardPolicy`, :func:`make_guard_state`

See ``docs/traffic.md``.
"""

from distillscope.traffic.distribution import DistributionConfig
from distillscope.traffic.guard import GuardPolicy, TrafficGuard, make_guard_state
from distillscope.traffic.reference import default_calibration
from distillscope.traffic.replay import ReplaySummary, replay
from distillscope.traffic.scan import (AccountFinding, CampaignFinding, ScanConfig, ScanResult, analyse, calibrate,
                                       result_to_dict, scan)
from distillscope.traffic.schema import LOG_COLUMNS, LogReport, RequestLogTable, load_log, parse_mapping
from distillscope.traffic.scoring import Calibration, ScoringConfig
from distillscope.traffic.simulate import SimulatedTraffic, SimulationConfig, labels_path, simulate, write_simulation

__all__ = [
    "AccountFinding", "Calibration", "CampaignFinding", "DistributionConfig", "GuardPolicy", "LOG_COLUMNS", "LogReport",
    "ReplaySummary", "RequestLogTable", "ScanConfig", "ScanResult", "ScoringConfig", "SimulatedTraffic",
    "SimulationConfig", "TrafficGuard", "analyse", "calibrate", "default_calibration", "labels_path", "load_log",
    "make_guard_state", "parse_mapping", "replay", "result_to_dict", "scan", "simulate", "write_simulation",
]
