"""Shared fixtures: isolated home directory, offline hub, real-service gates."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """Converted model weights and tokenizers are cached once per test session."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch, model_cache):
    """Every test gets its own distillscope home; no test touches the user's cache."""
    home = tmp_path / "distillscope-home"
    home.mkdir()
    monkeypatch.setenv("DISTILLSCOPE_HOME", str(home))
    monkeypatch.setenv("DISTILLSCOPE_MODEL_CACHE", str(model_cache))
    for var in ("DISTILLSCOPE_CONFIG", "DISTILLSCOPE_WATERMARK_KEY", "DISTILLSCOPE_WATERMARK_KEY_FILE",
                "DISTILLSCOPE_DATABASE_URL", "DISTILLSCOPE_REDIS_URL", "DISTILLSCOPE_ADMIN_TOKEN",
                "DISTILLSCOPE_UPSTREAM_URL"):
        monkeypatch.delenv(var, raising=False)
    return home


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, port: int) -> None:
    """Skip (on a user's machine) or fail (in CI) when a real service is missing."""
    if _port_open(port):
        return
    msg = f"{name} is not running on 127.0.0.1:{port}"
    if IN_CI:
        pytest.fail(f"{msg}; CI must provide it (.ci/run starts it)")
    pytest.skip(f"{msg}; start it to run this test")


@pytest.fixture
def postgres_url():
    """A clean schema in the real PostgreSQL 'test' database."""
    require_service("PostgreSQL", 5432)
    import uuid

    import sqlalchemy as sa

    base = os.environ.get("DISTILLSCOPE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = f"{base}?options=-csearch_path%3D{schema}"
    yield url
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    engine.dispose()


@pytest.fixture
def redis_url():
    """The real Redis server, with a private key prefix per test."""
    require_service("Redis", 6379)
    return "redis://127.0.0.1:6379/0"


# --- tiny and bundled models (owned by the teacher runtime; see docs/teacher.md) -------------------------

@pytest.fixture(scope="session")
def model_settings(model_cache, tmp_path_factory):
    """Settings pointing at the session's model cache, for session-scoped model fixtures."""
    from distillscope.settings import load_settings

    return load_settings(home=tmp_path_factory.mktemp("model-home"), model_cache=model_cache)


@pytest.fixture(scope="session")
def tiny_loaded(model_settings):
    """``load_model("tiny")``: random-init 2-layer Llama with the smollm2 tokenizer, float32, CPU.

    Shared by the whole session: do not modify its weights (copy.deepcopy(tiny_loaded.model) first).
    """
    from distillscope.teacher import load_model

    return load_model("tiny", settings=model_settings, dtype="float32")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_loaded):
    """The smollm2 tokenizer (with its chat template), as used by the tiny models."""
    return tiny_loaded.tokenizer


@pytest.fixture(scope="session")
def teacher_loaded(model_settings):
    """The real bundled teacher (SmolLM2-135M-Instruct, bfloat16); converted once per session (~20 s).

    Tests using it should be marked ``@pytest.mark.slow`` and ``@pytest.mark.teacher``.
    """
    from distillscope.teacher import load_model

    return load_model("smollm2", settings=model_settings, dtype="bfloat16")


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's tiny-model tests on one torch thread: far faster on a shared, busy CPU
    (oversubscribed OpenMP threads spin). Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def traffic_calibration():
    """A traffic-forensics calibration on a small simulated benign reference (built once)."""
    from distillscope.traffic import calibrate
    from distillscope.traffic.reference import benign_reference_config
    from distillscope.traffic.simulate import simulate

    return calibrate(simulate(benign_reference_config(n_benign=400, seed=11)).log)


@pytest.fixture(scope="session")
def spark_engine():
    """One local Spark session (local[1], one shuffle partition) for the whole test session."""
    pytest.importorskip("pyspark")
    from distillscope.traffic.engines import make_engine

    engine = make_engine("spark", master="local[1]", shuffle_partitions=1)
    yield engine
    engine.close()
