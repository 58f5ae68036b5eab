"""The gateway: OpenAI-compatible server, accounts, keys, limits, enforcement, request log.

Serving: :func:`create_app` (FastAPI), backends (:class:`LocalBackend` watermarked teacher with
dynamic batching, :class:`ProxyBackend` upstream, :class:`StubBackend` canned replies),
:class:`ServerThread` (uvicorn on loopback). Storage: :class:`AccountStore`, :class:`RequestLog`,
rate limiters, enforcement. See ``docs/gateway.md``.
"""

from distillscope.gateway.accounts import AccountStore, KeyState, Limits, Principal
from distillscope.gateway.app import app_from_env, create_app
from distillscope.gateway.backends import LocalBackend, make_backend
from distillscope.gateway.batching import BatchingConfig, DynamicBatcher
from distillscope.gateway.db import make_engine, upgrade_database
from distillscope.gateway.enforcement import EnforcementAction, RequestGuard, apply_actions
from distillscope.gateway.generation import Backend, BackendInfo
from distillscope.gateway.limits import make_rate_limiter
from distillscope.gateway.proxy import ProxyBackend
from distillscope.gateway.requestlog import RequestLog, RequestRecord
from distillscope.gateway.server import ServerThread
from distillscope.gateway.state import GatewayConfig
from distillscope.gateway.stub import StubBackend, stub_upstream_app

__all__ = ["AccountStore", "Backend", "BackendInfo", "BatchingConfig", "DynamicBatcher", "EnforcementAction",
           "GatewayConfig", "KeyState", "Limits", "LocalBackend", "Principal", "ProxyBackend", "RequestGuard",
           "RequestLog", "RequestRecord", "ServerThread", "StubBackend", "app_from_env", "apply_actions",
           "create_app", "make_backend", "make_engine", "make_rate_limiter", "stub_upstream_app",
           "upgrade_database"]
