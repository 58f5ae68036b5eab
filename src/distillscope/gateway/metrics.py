"""Prometheus metrics of the gateway.

One process: each app has its own registry (several apps can share a process, as in tests).
Several workers (``distillscope serve --workers N``): the CLI points ``PROMETHEUS_MULTIPROC_DIR`` at
an empty directory before the workers start; each worker writes its values there and ``/metrics``,
whichever worker answers, sums all of them (prometheus_client's multiprocess collector), so
counters count every worker's requests and the in-flight gauge is the sum of live workers.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    """Requests, tokens, latency, rejections by reason, in-flight requests and batch sizes."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("distillscope_requests", "Requests served, by endpoint and HTTP status.",
                                ["endpoint", "status"], registry=self.registry)
        self.tokens = Counter("distillscope_tokens", "Tokens processed, by kind (prompt or completion).",
                              ["kind"], registry=self.registry)
        self.latency = Histogram("distillscope_request_latency_seconds", "Time to last byte, by endpoint.",
                                 ["endpoint"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.rejections = Counter("distillscope_rejections", "Rejected requests, by reason.",
                                  ["reason"], registry=self.registry)
        self.in_flight = Gauge("distillscope_requests_in_flight", "Requests being served.",
                               registry=self.registry, multiprocess_mode="livesum")
        self.batch_size = Histogram("distillscope_batch_size", "Prompts per batched generate call.",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.guard_failures = Counter("distillscope_guard_failures", "Request guards that raised.",
                                      registry=self.registry)

    def observe(self, endpoint: str, status: int, latency_s: float, *, prompt_tokens: int = 0,
                completion_tokens: int = 0, reason: str | None = None) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(latency_s)
        if prompt_tokens:
            self.tokens.labels(kind="prompt").inc(prompt_tokens)
        if completion_tokens:
            self.tokens.labels(kind="completion").inc(completion_tokens)
        if reason:
            self.rejections.labels(reason=reason).inc()

    @staticmethod
    def multiprocess_dir() -> str | None:
        return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")

    def render(self) -> bytes:
        """The exposition text: this app's registry, or with a multiprocess directory every worker's sum."""
        if self.multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def close(self) -> None:
        """A worker that stops takes its live gauges out of the sum."""
        if self.multiprocess_dir():
            multiprocess.mark_process_dead(os.getpid())
