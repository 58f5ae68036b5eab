"""Engines that run the feature SQL of :mod:`distillscope.traffic.features`.

``duckdb`` (embedded, the default) and ``spark`` (PySpark, the scale-out engine; local mode in
tests). Both take Arrow tables and return Arrow tables; the same query gives the same result.
"""

from __future__ import annotations

from typing import Mapping, Protocol

import pyarrow as pa

from distillscope.errors import TrafficError
from distillscope.traffic.features import FeatureQuery

ENGINES = ("duckdb", "spark")


class Engine(Protocol):
    """Runs one feature query over named Arrow tables."""

    name: str

    def run(self, query: FeatureQuery, tables: Mapping[str, pa.Table]) -> pa.Table: ...

    def close(self) -> None: ...


def make_engine(name: str, **options: object) -> Engine:
    """``duckdb`` or ``spark`` (options go to the engine's constructor)."""
    if name == "duckdb":
        from distillscope.traffic.engines.duckdb_engine import DuckDBEngine

        return DuckDBEngine(**options)  # type: ignore[arg-type]
    if name == "spark":
        from distillscope.traffic.engines.spark_engine import SparkEngine

        return SparkEngine(**options)  # type: ignore[arg-type]
    raise TrafficError(f"unknown engine {name!r}", hint=f"choose one of {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Engine", "make_engine"]
