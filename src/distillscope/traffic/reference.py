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
    """A benign-only population with hard negatives in realistic proportions."""
    return SimulationConfig(n_benign=n_benign, n_batch=max(2, n_benign // 100), n_eval=max(1, n_benign // 200),
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
