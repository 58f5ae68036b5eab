"""The scale-out engine: PySpark SQL (local mode by default; pass a session for a cluster).

Tables reach Spark as Parquet files, which Spark reads with its vectorised reader in parallel;
``createDataFrame`` on an Arrow table serialises it through the Python driver instead and was
the slowest part of a scan on Spark (about 2k rows/s). A table passed to several queries of one
engine is written once. Results come back the same way: Spark writes them as Parquet and Python
reads the files, so no result passes through the driver's heap (collecting the coordination pairs
of a 10M-row log, 1.7 GiB serialised, ran a 6 GiB driver out of memory).
"""

from __future__ import annotations

import itertools
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from distillscope.errors import TrafficError
from distillscope.traffic.features import FeatureQuery

logger = logging.getLogger(__name__)


class SparkEngine:
    """Runs feature SQL on Spark.

    session: an existing SparkSession (a cluster's), else one is built with ``master``
    (``local[*]``), ``shuffle_partitions`` (8, also the default parallelism) and
    ``driver_memory`` (``4g``; local mode runs every task in the driver) and ``max_result_size``
    (``spark.driver.maxResultSize``, ``"0"``: unlimited; results come back as Parquet files, so only
    what Spark itself gathers in the driver counts, and its 1 GiB default stopped the coordination
    pairs of a 10M-row log); a session built here is stopped by :meth:`close`. staging_dir: where
    tables and results are written as Parquet (a temporary directory by default; on a cluster, pass
    a path every executor and this process can read).
    """

    name = "spark"

    def __init__(self, session: Any = None, master: str = "local[*]", shuffle_partitions: int = 8,
                 driver_memory: str = "4g", staging_dir: str | Path | None = None,
                 max_result_size: str = "0") -> None:
        self.master = master
        self.max_result_size = max_result_size
        self.shuffle_partitions = shuffle_partitions
        self.driver_memory = driver_memory
        self.staging_dir = staging_dir
        self._session = session
        self._owned = session is None
        self._staging: Path | None = None
        self._staged: dict[int, tuple[pa.Table, str]] = {}
        self._results = itertools.count()

    @property
    def session(self) -> Any:
        if self._session is None:
            try:
                from pyspark.sql import SparkSession
            except ImportError as exc:
                raise TrafficError("the spark engine needs PySpark",
                                   hint="pip install 'distillscope[spark]' (and a Java 17+ runtime)") from exc
            self._session = (SparkSession.builder.master(self.master).appName("distillscope-traffic")
                             .config("spark.sql.shuffle.partitions", str(self.shuffle_partitions))
                             .config("spark.default.parallelism", str(self.shuffle_partitions))
                             .config("spark.driver.memory", self.driver_memory)
                             .config("spark.driver.maxResultSize", self.max_result_size)
                             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                             .config("spark.sql.session.timeZone", "UTC")
                             .config("spark.ui.enabled", "false")
                             .config("spark.ui.showConsoleProgress", "false")
                             .getOrCreate())
        return self._session

    def _stage(self, table: pa.Table) -> str:
        """The Parquet file holding ``table`` (written on first use)."""
        hit = self._staged.get(id(table))
        if hit is not None and hit[0] is table:
            return hit[1]
        path = str(self._staging_dir() / f"t{len(self._staged)}.parquet")
        pq.write_table(table, path, row_group_size=1 << 20)
        self._staged[id(table)] = (table, path)
        return path

    def run(self, query: FeatureQuery, tables: Mapping[str, pa.Table]) -> pa.Table:
        spark = self.session
        try:
            for name, table in tables.items():
                spark.read.parquet(self._stage(table)).createOrReplaceTempView(name)
            result = self._collect(spark.sql(query.sql))
        except Exception as exc:  # py4j / analysis errors have no common base worth naming
            raise TrafficError(f"Spark failed on query {query.name}: {str(exc).splitlines()[0]}") from exc
        finally:
            for name in tables:
                spark.catalog.dropTempView(name)
        logger.info("spark %s: %d rows", query.name, result.num_rows)
        return result

    def _collect(self, frame: Any) -> pa.Table:
        """``frame`` as an Arrow table, written by Spark as Parquet and read here (row order kept:
        Spark numbers its part files in partition order and a sorted query's partitions are ranges)."""
        out = self._staging_dir() / f"r{next(self._results)}"
        frame.write.parquet(str(out))
        try:
            parts = sorted(out.glob("part-*.parquet"))
            if not parts:   # no rows and no file: the schema from Spark itself
                return frame.limit(0).toArrow()
            return pa.concat_tables([pq.read_table(part) for part in parts])
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def _staging_dir(self) -> Path:
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="distillscope-spark-", dir=self.staging_dir))
        return self._staging

    def clear(self) -> None:
        """Delete the staged Parquet files (done by :meth:`close` too)."""
        self._staged.clear()
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def close(self) -> None:
        self.clear()
        if self._owned and self._session is not None:
            self._session.stop()
            self._session = None
