"""The embedded engine: DuckDB over Arrow tables (zero-copy registration)."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Mapping

import duckdb
import pyarrow as pa

from distillscope.errors import TrafficError
from distillscope.traffic.features import FeatureQuery

logger = logging.getLogger(__name__)


def default_memory_limit() -> str:
    """A quarter of physical memory (at least 1 GiB): DuckDB's own default (80 % of RAM) ignores the
    Arrow tables the scan already holds in this process, and a 10M-row scan was OOM-killed with it.
    Beyond the limit DuckDB spills to a private temporary directory instead of failing."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return "4GB"
    return f"{max(1 << 30, total // 4) >> 20}MB"


class DuckDBEngine:
    """Runs feature SQL in an in-memory DuckDB connection. threads: DuckDB threads (None = all cores).
    memory_limit: DuckDB's memory cap, e.g. "5GB" (default :func:`default_memory_limit`); larger
    intermediate results spill to a temporary directory that is removed on :meth:`close`."""

    name = "duckdb"

    def __init__(self, threads: int | None = None, memory_limit: str | None = None) -> None:
        self.threads = threads
        self.memory_limit = memory_limit or default_memory_limit()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._spill: tempfile.TemporaryDirectory | None = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = duckdb.connect(":memory:")
            if self.threads:
                self._con.execute(f"SET threads = {int(self.threads)}")
            try:
                self._con.execute("SET memory_limit = ?", [self.memory_limit])
            except duckdb.Error as exc:
                self._con.close()
                self._con = None
                raise TrafficError(f"invalid DuckDB memory limit {self.memory_limit!r}: {exc}",
                                   hint="e.g. 4GB or 512MB") from exc
            # in-memory databases spill to ./.tmp by default: keep the user's working directory clean
            self._spill = tempfile.TemporaryDirectory(prefix="distillscope-duckdb-")
            self._con.execute("SET temp_directory = ?", [self._spill.name])
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
        if self._spill is not None:
            self._spill.cleanup()
            self._spill = None
