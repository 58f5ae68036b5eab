"""The feature SQL is written once and gives the same results on DuckDB and on Spark (local mode)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from distillscope.errors import TrafficError
from distillscope.traffic import SimulationConfig, analyse, simulate
from distillscope.traffic.engines import make_engine
from distillscope.traffic.features import SQL_COLUMNS, coordination_keys_sql, coordination_pairs_sql
from distillscope.traffic.prepare import prepare
from distillscope.traffic.schema import load_log


@pytest.fixture(scope="module")
def small_log():
    return simulate(SimulationConfig(n_benign=40, n_batch=1, n_eval=1, n_student_groups=1, student_group_size=8,
                                     campaigns=(("hydra", 1),), days=2, seed=3)).log


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if a[col].dtype.kind in "fiu" or b[col].dtype.kind in "fiu":
            assert np.allclose(x.astype(float), y.astype(float), rtol=1e-9, atol=1e-12, equal_nan=True), col
        else:
            assert list(x) == list(y), col


@pytest.mark.spark
@pytest.mark.slow
def test_duckdb_and_spark_agree(small_log, spark_engine):
    duck = analyse(small_log, "duckdb")
    spark = analyse(small_log, spark_engine)
    _same(duck.account_features, spark.account_features)
    assert duck.clusters.membership.equals(spark.clusters.membership) and len(duck.clusters.membership) >= 5
    _same(duck.campaign_features, spark.campaign_features)
    # the distribution test's aggregates (random Fourier features of the per-request inputs)
    _same(duck.distribution.accounts, spark.distribution.accounts)
    _same(duck.distribution.campaigns, spark.distribution.campaigns)
    assert len(duck.distribution.accounts) >= 40 and duck.distribution.accounts.n_mmd.max() > 10
    prepared = prepare(load_log(small_log)).select(list(SQL_COLUMNS))
    key = ["a", "b", "kind"]
    rare = make_engine("duckdb").run(coordination_keys_sql(), {"requests": prepared})
    rare_s = spark_engine.run(coordination_keys_sql(), {"requests": prepared})
    _same(rare.to_pandas().sort_values(["account_id", "kind", "k"]).reset_index(drop=True),
          rare_s.to_pandas().sort_values(["account_id", "kind", "k"]).reset_index(drop=True))
    pairs_d = make_engine("duckdb").run(coordination_pairs_sql(), {"rare_keys": rare}).to_pandas()
    pairs_s = spark_engine.run(coordination_pairs_sql(), {"rare_keys": rare}).to_pandas()
    _same(pairs_d.sort_values(key).reset_index(drop=True), pairs_s.sort_values(key).reset_index(drop=True))


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(TrafficError, match="unknown engine 'polars'.*duckdb, spark"):
        make_engine("polars")


@pytest.mark.spark
def test_spark_session_collects_results_of_any_size(spark_engine):
    # every query's result goes to Python; Spark's 1 GiB default maxResultSize stopped a 10M-row scan
    assert spark_engine.session.conf.get("spark.driver.maxResultSize") == "0"
    assert spark_engine.max_result_size == "0"


@pytest.mark.spark
def test_spark_results_come_back_through_parquet_in_order_and_empty(spark_engine):
    from distillscope.traffic.features import FeatureQuery

    table = pa.table({"a": list(range(5000, 0, -1)), "b": [f"x{i}" for i in range(5000)]})
    conf = spark_engine.session.conf
    before = conf.get("spark.sql.shuffle.partitions")
    conf.set("spark.sql.shuffle.partitions", "4")     # a sorted result spread over several part files
    try:
        got = spark_engine.run(FeatureQuery("t", "SELECT a, b FROM t ORDER BY a"), {"t": table})
    finally:
        conf.set("spark.sql.shuffle.partitions", before)
    assert got.column("a").to_pylist() == list(range(1, 5001))
    empty = spark_engine.run(FeatureQuery("t", "SELECT a, b FROM t WHERE a > 100000"), {"t": table})
    assert empty.num_rows == 0 and empty.column_names == ["a", "b"]
    assert not list(spark_engine._staging_dir().glob("r*"))      # result files are removed
