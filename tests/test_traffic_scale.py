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


def test_load_log_reads_only_the_scan_columns(tmp_path):
    from distillscope.traffic.schema import SCAN_COLUMNS, load_log

    log, _, _ = simulate_to_file(CONFIG, tmp_path / "log.parquet")
    full, part = load_log(log), load_log(log, columns=SCAN_COLUMNS)
    assert part.table.select(list(SCAN_COLUMNS)).equals(full.table.select(list(SCAN_COLUMNS)))
    assert part.table.column("completion").null_count == part.num_rows      # not read
    assert part.report.missing_columns == () and part.table.nbytes < 0.7 * full.table.nbytes
