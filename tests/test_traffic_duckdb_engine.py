"""The embedded DuckDB engine's resource settings: a memory cap by default, a private spill directory."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa
import pytest

from distillscope.errors import TrafficError
from distillscope.traffic.engines.duckdb_engine import DuckDBEngine, default_memory_limit
from distillscope.traffic.features import FeatureQuery


def test_default_memory_limit_is_a_quarter_of_ram_and_applied(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = default_memory_limit()
    assert limit.endswith("MB") and int(limit[:-2]) == max(1 << 30, total // 4) >> 20
    engine = DuckDBEngine(threads=1)
    out = engine.run(FeatureQuery("n", "SELECT count(*) AS n FROM t"), {"t": pa.table({"x": [1, 2, 3]})})
    assert out.column("n").to_pylist() == [3]
    con = engine._connection()
    set_limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    spill = con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
    # DuckDB reports the limit in its own units (e.g. 5.8 GiB); it must not be its 80 % default
    with duckdb.connect(":memory:") as fresh:
        duckdb_default = fresh.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert set_limit != duckdb_default and spill.startswith(os.path.join(os.path.dirname(spill), "distillscope-duckdb-"))
    engine.close()
    assert not os.path.exists(spill)
    assert not (tmp_path / ".tmp").exists()


def test_explicit_and_invalid_memory_limit():
    engine = DuckDBEngine(memory_limit="512MB")
    con = engine._connection()
    assert "488" in con.execute("SELECT current_setting('memory_limit')").fetchone()[0] or \
        "512" in con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    engine.close()
    with pytest.raises(TrafficError, match="memory limit"):
        DuckDBEngine(memory_limit="lots").run(FeatureQuery("n", "SELECT 1 AS n"), {})
