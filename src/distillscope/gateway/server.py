"""Run a gateway (or any ASGI app) with a real uvicorn server in a background thread.

Used by tests (the real ``openai`` client against loopback), the demo and the benchmark::

    with ServerThread(app) as server:
        client = OpenAI(base_url=server.url + "/v1", api_key=key)
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from distillscope.errors import GatewayError

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerThread:
    """A uvicorn server on ``host:port`` (default: a free loopback port) in a daemon thread."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int | None = None,
                 startup_timeout_s: float = 120.0, log_level: str = "warning") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level=log_level, access_log=False,
                                lifespan="on", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "ServerThread":
        self._thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self.server.started:
            if not self._thread.is_alive():
                raise GatewayError(f"the server on {self.url} failed to start", hint="see the log above",
                                   code="server_start_failed")
            if time.monotonic() > deadline:
                self.stop()
                raise GatewayError(f"the server on {self.url} did not start within {self.startup_timeout_s:.0f}s",
                                   code="server_start_failed")
            time.sleep(0.02)
        logger.info("server listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
