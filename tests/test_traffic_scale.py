"""Scale path: the streamed simulator writes exactly the in-memory simulation."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from distillscope.errors import TrafficError
from distillscope.traffic import SimulationConfig, simulate
from distillscope.traffic.simulate import simulate_to_file

CONFIG = SimulationConfig(n_benign=60, n_batch=1, n_eval=1, n_student_groups=1, student_group_size=5, days=2,
                          campaigns=(("single", 1), ("hydra", 1)), seed=5)


@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_simulation_equals_in_memory(tmp_path, workers):
    sim = simulate(CONFIG)
    log, labels, n = simulate_to_file(CONFIG, tmp_path / "log.parquet", workers=workers, chunk_rows=997)
    assert n == sim.log.num_rows > 2_000
    assert pq.read_table(log).equals(sim.log)
    assert pq.read_table(labels).equals(sim.labels)
    assert not any(p.name.endswith(".parts") for p in tmp_path.iterdir())     # temporary parts removed


def test_streamed_simulation_refuses_other_formats(tmp_path):
    with pytest.raises(TrafficError, match="parquet"):
        simulate_to_file(CONFIG, tmp_path / "log.jsonl")
