"""The default benign reference: a simulated benign population, calibrated once and cached.

A provider should calibrate on its own known-benign traffic (``distillscope traffic calibrate``);
until it has one, scans use this simulated reference (benign users and every hard negative:
batch jobs, evaluation harnesses, students behind campus IPs -- no distillers), cached under
``HOME/traffic/``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from distillscope.progress import Progress
from distillscope.settings import Settings
from distillscope.traffic.scan import ScanConfig, calibrate
from distillscope.traffic.scoring import FORMAT_VERSION, Calibration
from distillscope.traffic.simulate import SimulationConfig, simulate

logger = logging.getLogger(__name__)

REFERENCE_SEED = 20_260_201


def benign_reference_config(n_benign: int = 3000, seed: int = REFERENCE_SEED) -> SimulationConfig:
    """A benign-only population whose hard negatives are over-represented (at least 8 batch jobs and 12 evaluation harnesses,
    2-2.5% of the users): a calibration must see every kind of benign tail, and a rare kind seen
    once or twice leaves its tail unknown (over-representing a benign kind only makes p-values of
    that kind conservative)."""
    return SimulationConfig(n_benign=n_benign, n_batch=max(8, n_benign // 50), n_eval=max(12, n_benign // 40),
                            n_student_groups=max(1, n_benign // 500), campaigns=(), seed=seed)


def default_calibration(settings: Settings, *, n_benign: int = 3000, engine: str = "duckdb",
                        config: ScanConfig = ScanConfig(), progress: Progress | None = None) -> Calibration:
    """The cached calibration on the simulated benign reference (built on first use)."""
    path = Path(settings.home) / "traffic" / f"calibration-sim-{n_benign}-{REFERENCE_SEED}-v{FORMAT_VERSION}.json"
    if path.is_file():
        cal = Calibration.load(path)
        dist = cal.distribution_reference
        if cal.config == config.scoring and dist is not None and dist.config == config.distribution:
            return cal
    logger.info("building the simulated benign reference (%d users); cached at %s", n_benign, path)
    sim = simulate(benign_reference_config(n_benign), progress=progress)
    cal = calibrate(sim.log, engine, config, progress=progress)
    cal.save(path)
    return cal
