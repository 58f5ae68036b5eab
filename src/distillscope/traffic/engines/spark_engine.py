"""The scale-out engine: PySpark SQL (local mode by default; pass a session for a cluster)."""

from __future__ import annotations

import logging
from typing import Any, Mapping

import pyarrow as pa

from distillscope.errors import TrafficError
from distillscope.traffic.features import FeatureQuery

logger = logging.getLogger(__name__)


class SparkEngine:
    """Runs feature SQL on Spark.

    session: an existing SparkSession (a cluster's), else one is built with ``master``
    (``local[*]``) and ``shuffle_partitions`` (8, also the default parallelism); a session built
    here is stopped by :meth:`close`.
    """

    name = "spark"

    def __init__(self, session: Any = None, master: str = "local[*]", shuffle_partitions: int = 8) -> None:
        self.master = master
        self.shuffle_partitions = shuffle_partitions
        self._session = session
        self._owned = session is None

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
                             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                             .config("spark.sql.session.timeZone", "UTC")
                             .config("spark.ui.enabled", "false")
                             .getOrCreate())
        return self._session

    def run(self, query: FeatureQuery, tables: Mapping[str, pa.Table]) -> pa.Table:
        spark = self.session
        try:
            for name, table in tables.items():
                spark.createDataFrame(table).createOrReplaceTempView(name)
            result = spark.sql(query.sql).toArrow()
        except Exception as exc:  # py4j / analysis errors have no common base worth naming
            raise TrafficError(f"Spark failed on query {query.name}: {str(exc).splitlines()[0]}") from exc
        finally:
            for name in tables:
                spark.catalog.dropTempView(name)
        logger.info("spark %s: %d rows", query.name, result.num_rows)
        return result

    def close(self) -> None:
        if self._owned and self._session is not None:
            self._session.stop()
            self._session = None
