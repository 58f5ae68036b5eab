"""The embedded engine: DuckDB over Arrow tables (zero-copy registration)."""

from __future__ import annotations

import logging
from typing import Mapping

import duckdb
import pyarrow as pa

from distillscope.errors import TrafficError
from distillscope.traffic.features import FeatureQuery

logger = logging.getLogger(__name__)


class DuckDBEngine:
    """Runs feature SQL in an in-memory DuckDB connection. threads: DuckDB threads (None = all cores)."""

    name = "duckdb"

    def __init__(self, threads: int | None = None, memory_limit: str | None = None) -> None:
        self.threads = threads
        self.memory_limit = memory_limit
        self._con: duckdb.DuckDBPyConnection | None = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = duckdb.connect(":memory:")
            if self.threads:
                self._con.execute(f"SET threads = {int(self.threads)}")
            if self.memory_limit:
                self._con.execute("SET memory_limit = ?", [self.memory_limit])
        return self._con

    def run(self, query: FeatureQuery, tables: Mapping[str, pa.Table]) -> pa.Table:
        con = self._connection()
        try:
            for name, table in tables.items():
                con.register(name, table)
            result = con.sql(query.sql).to_arrow_table()
        except duckdb.Error as exc:
            raise TrafficError(f"DuckDB failed on query {query.name}: {exc}") from exc
        finally:
            for name in tables:
                try:
                    con.unregister(name)
                except duckdb.Error:  # pragma: no cover - best effort
                    pass
        logger.info("duckdb %s: %d rows", query.name, result.num_rows)
        return result

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
