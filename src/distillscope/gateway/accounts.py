"""Accounts, API keys and their enforcement states, with every change audited.

An API key looks like ``ds-<key_id>-<secret>``. Only ``key_id`` (the public prefix, safe to log)
and an HMAC-SHA256 of the secret under a per-key random salt are stored; the plaintext is returned
once, by :meth:`AccountStore.create_key` / :meth:`AccountStore.rotate_key`. The secret carries
256 bits of randomness, so a fast salted hash is as strong as a slow KDF here, and cheap enough
to run on every request. :meth:`AccountStore.authenticate` caches key rows in process but checks a
change sequence in the database on every call, so a suspension or revocation applies on the very
next request, on every worker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import string
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from distillscope.errors import AuthError, ConfigError, GatewayError
from distillscope.gateway.db import as_utc, utcnow
from distillscope.gateway.tables import accounts as t_accounts
from distillscope.gateway.tables import api_keys as t_keys
from distillscope.gateway.tables import enforcement_audit as t_audit
from distillscope.gateway.tables import key_state_changes as t_changes
from distillscope.gateway.tables import model_limits as t_model_limits

log = logging.getLogger(__name__)

KEY_PREFIX = "ds"
ACCOUNT_NAME_PATTERN = r"^(?!acct_)[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
_NAME_RE = re.compile(ACCOUNT_NAME_PATTERN)
# A reason needs one character that is not white space, in Python's and in JSON Schema's sense alike.
REASON_PATTERN = "[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
_REASON_RE = re.compile(REASON_PATTERN)
_KEY_ID_RE = re.compile(r"^[0-9a-f]{12}$")
_DUMMY_SALT = bytes(16)
_SECRET_ALPHABET = string.ascii_letters + string.digits
_SECRET_LEN = 43  # 43 base-62 characters ≈ 256 bits
MAX_LIMIT = 2**31 - 1  # limits are INTEGER columns (32-bit on PostgreSQL)
MAX_BUDGET = 2**62     # budgets are BIGINT columns
KEY_CACHE_SIZE = 100_000


class KeyState(str, Enum):
    """Enforcement state of a key or an account, in escalation order."""

    ACTIVE = "active"
    THROTTLED = "throttled"
    SUSPENDED = "suspended"
    REVOKED = "revoked"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @classmethod
    def parse(cls, value: str | KeyState) -> KeyState:
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"unknown enforcement state {value!r}",
                              hint=f"use one of: {', '.join(s.value for s in cls)}",
                              code="invalid_state") from None


_SEVERITY = {KeyState.ACTIVE: 0, KeyState.THROTTLED: 1, KeyState.SUSPENDED: 2, KeyState.REVOKED: 3}


def worst_state(*states: KeyState) -> KeyState:
    """The most severe of ``states`` (a key is as restricted as the stricter of key and account)."""
    return max(states, key=lambda s: s.severity)


@dataclass(frozen=True)
class Limits:
    """Per-key limits; ``None`` means unlimited. Throttled keys get each limit × ``throttle_factor``."""

    rpm: int | None = 60
    tpm: int | None = 100_000
    max_concurrent: int | None = 8
    throttle_factor: float = 0.1

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "max_concurrent"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or not 1 <= value <= MAX_LIMIT):
                raise ConfigError(f"limit {name}={value!r} is invalid",
                                  hint=f"use a whole number from 1 to {MAX_LIMIT}, or leave it unset for no limit",
                                  code="invalid_limits")
        factor = self.throttle_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= 1:
            raise ConfigError(f"throttle_factor={self.throttle_factor!r} is invalid",
                              hint="use a number in (0, 1], e.g. 0.1", code="invalid_limits")

    def effective(self, state: KeyState) -> Limits:
        """The limits that apply in ``state``: scaled by ``throttle_factor`` when throttled (at least 1)."""
        if state is not KeyState.THROTTLED:
            return self

        def scale(v: int | None) -> int | None:
            return None if v is None else max(1, int(v * self.throttle_factor))
        return replace(self, rpm=scale(self.rpm), tpm=scale(self.tpm), max_concurrent=scale(self.max_concurrent))


@dataclass(frozen=True)
class Principal:
    """Who made an authenticated request. ``state`` is the stricter of key and account state."""

    account_id: str
    account_name: str
    key_id: str
    state: KeyState
    limits: Limits
    monthly_token_budget: int | None = None
    expires_at: datetime | None = None
    model_limits: dict[str, Limits] = field(default_factory=dict)  # model id -> limits on top of ``limits``


@dataclass(frozen=True)
class KeyInfo:
    """An API key as stored: its public id, never the secret."""

    key_id: str
    account_id: str
    state: KeyState
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def display(self) -> str:
        """How the key is shown in listings: its prefix with the secret elided."""
        return f"{KEY_PREFIX}-{self.key_id}-…"


@dataclass(frozen=True)
class AccountInfo:
    account_id: str
    name: str
    state: KeyState
    limits: Limits
    created_at: datetime
    updated_at: datetime
    keys: tuple[KeyInfo, ...] = field(default=())
    monthly_token_budget: int | None = None
    model_limits: dict[str, Limits] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEntry:
    """One row of the ``enforcement_audit`` table."""

    id: int
    ts: datetime
    target_kind: str
    target_id: str
    action: str
    old_state: KeyState | None
    new_state: KeyState | None
    reason: str
    actor: str
    evidence: dict[str, Any]


def hash_secret(secret: str, salt: bytes) -> str:
    """HMAC-SHA256 of a key's secret under its salt, hex encoded."""
    return hmac.new(salt, secret.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_api_key(api_key: str) -> tuple[str, str] | None:
    """Split ``ds-<key_id>-<secret>`` into (key_id, secret); None when it does not look like a key."""
    parts = api_key.strip().split("-", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not _KEY_ID_RE.match(parts[1]) or len(parts[2]) < 16:
        return None
    return parts[1], parts[2]


def _state_error(kind: str, state: KeyState, ident: str) -> AuthError:
    code = f"{kind}_{state.value}"
    what = f"API key {ident}" if kind == "key" else f"account {ident}"
    return AuthError(f"{what} is {state.value}", hint="contact the API provider", code=code)


class AccountStore:
    """Accounts, API keys, limits and enforcement states in the gateway database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache: dict[str, Any] = {}
        self._cache_seq: Any = object()  # no sequence number seen yet
        self._cache_lock = threading.Lock()

    @contextmanager
    def _locked(self) -> Iterator[Connection]:
        """A write transaction that holds its locks from the first read (SQLite: BEGIN IMMEDIATE)."""
        with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            yield conn

    # -- accounts ----------------------------------------------------------------------------
    def create_account(self, name: str, *, limits: Limits = Limits(), actor: str = "cli") -> AccountInfo:
        if not isinstance(name, str) or not _NAME_RE.match(name) or name.startswith("acct_"):
            raise ConfigError(f"account name {name!r} is invalid",
                              hint="use 1-64 letters, digits, '_', '.', '@' or '-', not starting with 'acct_'",
                              code="invalid_account_name")
        now = utcnow()
        account_id = f"acct_{secrets.token_hex(6)}"
        try:
            with self._locked() as conn:
                conn.execute(t_accounts.insert().values(
                    account_id=account_id, name=name, state=KeyState.ACTIVE.value, created_at=now, updated_at=now,
                    **_limit_columns(limits)))
                _audit(conn, "account", account_id, "create", None, KeyState.ACTIVE,
                       f"account {name!r} created", actor, {"limits": _limit_columns(limits)})
        except IntegrityError:
            raise GatewayError(f"account {name!r} already exists", hint="choose another name",
                               code="account_exists") from None
        log.info("account %s (%s) created by %s", account_id, name, actor)
        return self.get_account(account_id)

    def get_account(self, id_or_name: str) -> AccountInfo:
        with self.engine.connect() as conn:
            row = _account_row(conn, id_or_name)
            keys = conn.execute(sa.select(t_keys).where(t_keys.c.account_id == row.account_id)
                                .order_by(t_keys.c.created_at, t_keys.c.key_id)).all()
            models = _model_limits(conn, row.account_id, row.throttle_factor)
        return replace(_account_info(row, tuple(_key_info(k) for k in keys)), model_limits=models)

    def list_accounts(self) -> list[AccountInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t_accounts).order_by(t_accounts.c.created_at, t_accounts.c.name)).all()
            keys = conn.execute(sa.select(t_keys).order_by(t_keys.c.created_at, t_keys.c.key_id)).all()
        by_account: dict[str, list[KeyInfo]] = {}
        for k in keys:
            by_account.setdefault(k.account_id, []).append(_key_info(k))
        return [_account_info(r, tuple(by_account.get(r.account_id, ()))) for r in rows]

    def set_limits(self, account: str, limits: Limits, *, actor: str) -> None:
        with self._locked() as conn:
            row = _account_row(conn, account)
            conn.execute(t_accounts.update().where(t_accounts.c.account_id == row.account_id)
                         .values(updated_at=utcnow(), **_limit_columns(limits)))
            _audit(conn, "account", row.account_id, "limits", None, None, "limits changed", actor,
                   {"old": _limit_columns(_row_limits(row)), "new": _limit_columns(limits)})
        log.info("limits of account %s set by %s", row.account_id, actor)

    def set_account_state(self, account: str, state: KeyState | str, *, reason: str, actor: str,
                          evidence: dict | None = None, only_escalate: bool = False) -> bool:
        """Set an account's state; it applies to all its keys. Revoking also revokes every key.

        ``only_escalate``: change nothing unless ``state`` is stricter than the current one (checked
        under a row lock, so concurrent callers cannot lower a state). Returns whether it changed.
        """
        state = KeyState.parse(state)
        _require_reason(reason)
        with self._locked() as conn:
            row = _account_row(conn, account, for_update=True)
            old = KeyState(row.state)
            if not _transition_allowed(old, state, only_escalate, f"account {row.account_id}",
                                       hint="create a new account instead", code="account_revoked"):
                return False
            now = utcnow()
            conn.execute(t_accounts.update().where(t_accounts.c.account_id == row.account_id)
                         .values(state=state.value, updated_at=now))
            if state is KeyState.REVOKED:
                conn.execute(t_keys.update().where(t_keys.c.account_id == row.account_id,
                                                   t_keys.c.state != KeyState.REVOKED.value)
                             .values(state=KeyState.REVOKED.value, revoked_at=now))
            _audit(conn, "account", row.account_id, "state", old, state, reason, actor, evidence)
        log.info("account %s: %s -> %s by %s", row.account_id, old.value, state.value, actor)
        return True

    # -- keys --------------------------------------------------------------------------------
    def create_key(self, account: str, *, actor: str = "cli",
                   expires_at: datetime | None = None) -> tuple[str, KeyInfo]:
        """Create a key for ``account``; returns (plaintext, info). The plaintext is never stored.

        ``expires_at`` (aware, in the future): the key stops authenticating then (401 ``key_expired``).
        """
        expires_at = _check_expiry(expires_at)
        with self._locked() as conn:
            row = _account_row(conn, account)
            if KeyState(row.state) is KeyState.REVOKED:
                raise GatewayError(f"account {row.account_id} is revoked", hint="create a new account",
                                   code="account_revoked")
            plaintext, info = _insert_key(conn, row.account_id, expires_at=expires_at)
            _audit(conn, "key", info.key_id, "create", None, KeyState.ACTIVE,
                   f"key created for account {row.account_id}", actor, None)
        log.info("key %s created for account %s by %s", info.key_id, row.account_id, actor)
        return plaintext, info

    def get_key(self, key_id: str) -> KeyInfo:
        with self.engine.connect() as conn:
            return _key_info(_key_row(conn, key_id))

    def set_key_state(self, key_id: str, state: KeyState | str, *, reason: str, actor: str,
                      evidence: dict | None = None, only_escalate: bool = False) -> bool:
        """Set a key's state (see :meth:`set_account_state` for ``only_escalate``); returns whether it changed."""
        state = KeyState.parse(state)
        _require_reason(reason)
        with self._locked() as conn:
            row = _key_row(conn, key_id, for_update=True)
            old = KeyState(row.state)
            if not _transition_allowed(old, state, only_escalate, f"API key {key_id}",
                                       hint="create or rotate to a new key", code="key_revoked"):
                return False
            now = utcnow()
            conn.execute(t_keys.update().where(t_keys.c.key_id == row.key_id).values(
                state=state.value, revoked_at=now if state is KeyState.REVOKED else None))
            _audit(conn, "key", row.key_id, "state", old, state, reason, actor, evidence)
        log.info("key %s: %s -> %s by %s", key_id, old.value, state.value, actor)
        return True

    def rotate_key(self, key_id: str, *, actor: str) -> tuple[str, KeyInfo]:
        """Issue a new key for the same account and revoke the old one, in one transaction.

        The new key inherits the old key's state, so rotating cannot lift a throttle or suspension.
        """
        with self._locked() as conn:
            row = _key_row(conn, key_id, for_update=True)
            old_state = KeyState(row.state)
            if old_state is KeyState.REVOKED:
                raise GatewayError(f"API key {key_id} is already revoked", hint="create a new key instead",
                                   code="key_revoked")
            plaintext, info = _insert_key(conn, row.account_id, old_state, expires_at=as_utc(row.expires_at))
            now = utcnow()
            conn.execute(t_keys.update().where(t_keys.c.key_id == row.key_id)
                         .values(state=KeyState.REVOKED.value, revoked_at=now))
            _audit(conn, "key", row.key_id, "rotate", old_state, KeyState.REVOKED,
                   f"rotated to key {info.key_id}", actor, {"new_key_id": info.key_id})
            _audit(conn, "key", info.key_id, "create", None, old_state,
                   f"rotated from key {row.key_id}", actor, None)
        log.info("key %s rotated to %s by %s", key_id, info.key_id, actor)
        return plaintext, info

    def authenticate(self, api_key: str | None) -> Principal:
        """The principal behind ``api_key``, or :class:`AuthError`.

        Key rows are cached in process, but every call first reads the newest number of
        ``key_state_changes`` (one indexed lookup); any state, limit or budget change made through
        this store (from any worker or the CLI) bumps it and empties the cache, so a suspension or
        revocation still applies on the very next request. Expiry is checked on every call.
        """
        if not api_key or not api_key.strip():
            raise AuthError("no API key was sent", hint="send 'Authorization: Bearer <key>'",
                            code="missing_api_key")
        parsed = parse_api_key(api_key)
        row = self._key_row_cached(parsed[0]) if parsed is not None else None
        # Hash even when the key id is unknown so timing does not reveal which ids exist.
        salt = bytes.fromhex(row.salt) if row is not None else _DUMMY_SALT
        digest = hash_secret(parsed[1] if parsed else api_key, salt)
        if row is None or not hmac.compare_digest(digest, row.key_hash):
            raise AuthError("the API key is invalid", hint="check the key, or ask for a new one",
                            code="invalid_api_key")
        key_state, account_state = KeyState(row.key_state), KeyState(row.state)
        for kind, st, ident in (("key", key_state, row.key_id), ("account", account_state, row.account_id)):
            if st is KeyState.REVOKED:
                raise _state_error(kind, st, ident)
        expires_at = as_utc(row.expires_at)
        if expires_at is not None and expires_at <= utcnow():
            raise AuthError(f"API key {row.key_id} expired at {expires_at.isoformat(timespec='seconds')}",
                            hint="ask the API provider for a new key", code="key_expired")
        for kind, st, ident in (("account", account_state, row.account_id), ("key", key_state, row.key_id)):
            if st is KeyState.SUSPENDED:
                raise _state_error(kind, st, ident)
        return Principal(account_id=row.account_id, account_name=row.name, key_id=row.key_id,
                         state=worst_state(key_state, account_state), limits=_row_limits(row),
                         monthly_token_budget=row.monthly_token_budget, expires_at=expires_at,
                         model_limits=row.model_limits)

    def _key_row_cached(self, key_id: str) -> Any:
        with self.engine.connect() as conn:
            seq = conn.execute(sa.select(sa.func.max(t_changes.c.seq))).scalar()
            with self._cache_lock:
                if seq != self._cache_seq:
                    self._cache.clear()
                    self._cache_seq = seq
                row = self._cache.get(key_id)
            if row is not None:
                return row
            found = conn.execute(
                sa.select(t_keys.c.key_id, t_keys.c.salt, t_keys.c.key_hash, t_keys.c.state.label("key_state"),
                          t_keys.c.expires_at, t_accounts)
                .join(t_accounts, t_accounts.c.account_id == t_keys.c.account_id)
                .where(t_keys.c.key_id == key_id)).first()
            row = None if found is None else _CachedKey(**found._mapping,
                                                        model_limits=_model_limits(conn, found.account_id))
        if row is not None:
            with self._cache_lock:
                if seq == self._cache_seq and len(self._cache) < KEY_CACHE_SIZE:
                    self._cache[key_id] = row
        return row

    # -- per-model limits --------------------------------------------------------------------
    def set_model_limits(self, account: str, model: str, limits: Limits | None, *, actor: str) -> None:
        """Limit an account's keys on one model (on top of their own limits); None removes the entry.

        ``throttle_factor`` of ``limits`` is ignored: a throttled key scales these by the account's.
        """
        if not isinstance(model, str) or not model or len(model) > 256:
            raise ConfigError(f"model {model!r} is invalid", hint="give the model id, at most 256 characters",
                              code="invalid_model")
        with self._locked() as conn:
            row = _account_row(conn, account)
            conn.execute(t_model_limits.delete().where(t_model_limits.c.account_id == row.account_id,
                                                       t_model_limits.c.model == model))
            if limits is not None:
                conn.execute(t_model_limits.insert().values(account_id=row.account_id, model=model,
                                                            rpm=limits.rpm, tpm=limits.tpm,
                                                            max_concurrent=limits.max_concurrent))
            _audit(conn, "account", row.account_id, "model_limits", None, None, f"limits for model {model!r}",
                   actor, {"model": model, "new": None if limits is None else _limit_columns(limits)})
        log.info("model limits of account %s for %s set by %s", row.account_id, model, actor)

    # -- budgets -----------------------------------------------------------------------------
    def set_budget(self, account: str, monthly_tokens: int | None, *, actor: str) -> None:
        """Set (or with None lift) an account's token budget per UTC month."""
        if monthly_tokens is not None and (isinstance(monthly_tokens, bool) or not isinstance(monthly_tokens, int)
                                           or not 1 <= monthly_tokens <= MAX_BUDGET):
            raise ConfigError(f"monthly token budget {monthly_tokens!r} is invalid",
                              hint=f"use a whole number from 1 to {MAX_BUDGET}, or none", code="invalid_budget")
        with self._locked() as conn:
            row = _account_row(conn, account)
            conn.execute(t_accounts.update().where(t_accounts.c.account_id == row.account_id)
                         .values(monthly_token_budget=monthly_tokens, updated_at=utcnow()))
            _audit(conn, "account", row.account_id, "budget", None, None, "monthly token budget changed", actor,
                   {"old": row.monthly_token_budget, "new": monthly_tokens})
        log.info("monthly token budget of account %s set to %s by %s", row.account_id, monthly_tokens, actor)

    # -- audit -------------------------------------------------------------------------------
    def audit_log(self, *, target: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Newest first; ``target`` is an account id or name (includes its keys) or a key id."""
        q = sa.select(t_audit).order_by(t_audit.c.ts.desc(), t_audit.c.id.desc()).limit(max(1, int(limit)))
        with self.engine.connect() as conn:
            if target is not None:
                ids = _target_ids(conn, target)
                q = q.where(t_audit.c.target_id.in_(ids))
            rows = conn.execute(q).all()
        return [AuditEntry(id=r.id, ts=as_utc(r.ts), target_kind=r.target_kind, target_id=r.target_id,
                           action=r.action, old_state=KeyState(r.old_state) if r.old_state else None,
                           new_state=KeyState(r.new_state) if r.new_state else None, reason=r.reason,
                           actor=r.actor, evidence=json.loads(r.evidence) if r.evidence else {}) for r in rows]


# -- row helpers ------------------------------------------------------------------------------

def _transition_allowed(old: KeyState, new: KeyState, only_escalate: bool, what: str, *,
                        hint: str, code: str) -> bool:
    """The one state-transition rule for keys and accounts: revoked is final; with
    ``only_escalate`` a change that is not stricter is skipped (returns False)."""
    if only_escalate and new.severity <= old.severity:
        return False
    if old is KeyState.REVOKED and new is not KeyState.REVOKED:
        raise GatewayError(f"{what} is revoked and cannot become {new.value}", hint=hint, code=code)
    return True

def _require_reason(reason: str) -> None:
    if not isinstance(reason, str) or not _REASON_RE.search(reason):
        raise ConfigError("a reason is required for every enforcement change",
                          hint="pass a short reason, e.g. --reason 'distillation campaign'", code="missing_reason")


def _limit_columns(limits: Limits) -> dict[str, Any]:
    return {"rpm": limits.rpm, "tpm": limits.tpm, "max_concurrent": limits.max_concurrent,
            "throttle_factor": limits.throttle_factor}


def _row_limits(row: Any) -> Limits:
    return Limits(rpm=row.rpm, tpm=row.tpm, max_concurrent=row.max_concurrent, throttle_factor=row.throttle_factor)


def _account_row(conn: Connection, id_or_name: str, *, for_update: bool = False) -> Any:
    q = sa.select(t_accounts).where(sa.or_(t_accounts.c.account_id == id_or_name, t_accounts.c.name == id_or_name))
    row = conn.execute(q.with_for_update() if for_update else q).first()
    if row is None:
        raise GatewayError(f"account {id_or_name!r} does not exist",
                           hint="list accounts with `distillscope accounts list`", code="account_not_found")
    return row


def _key_row(conn: Connection, key_id: str, *, for_update: bool = False) -> Any:
    q = sa.select(t_keys).where(t_keys.c.key_id == key_id)
    row = conn.execute(q.with_for_update() if for_update else q).first()
    if row is None:
        raise GatewayError(f"API key id {key_id!r} does not exist",
                           hint="key ids are the 12 hex characters after 'ds-'; see `distillscope accounts show`",
                           code="key_not_found")
    return row


def _target_ids(conn: Connection, target: str) -> list[str]:
    acct = conn.execute(sa.select(t_accounts.c.account_id).where(
        sa.or_(t_accounts.c.account_id == target, t_accounts.c.name == target))).first()
    if acct is None:
        return [target]
    keys = conn.execute(sa.select(t_keys.c.key_id).where(t_keys.c.account_id == acct.account_id)).scalars().all()
    return [acct.account_id, *keys]


def _insert_key(conn: Connection, account_id: str, state: KeyState = KeyState.ACTIVE, *,
                expires_at: datetime | None = None) -> tuple[str, KeyInfo]:
    key_id, salt = secrets.token_hex(6), secrets.token_bytes(16)
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LEN))
    now = utcnow()
    conn.execute(t_keys.insert().values(key_id=key_id, account_id=account_id, salt=salt.hex(),
                                        key_hash=hash_secret(secret, salt), state=state.value, created_at=now,
                                        expires_at=expires_at))
    return f"{KEY_PREFIX}-{key_id}-{secret}", KeyInfo(key_id=key_id, account_id=account_id, state=state,
                                                      created_at=now, expires_at=expires_at)


@dataclass(frozen=True)
class _CachedKey:
    """What authentication needs of a key, its account and the account's per-model limits."""

    key_id: str
    salt: str
    key_hash: str
    key_state: str
    expires_at: Any
    account_id: str
    name: str
    state: str
    rpm: int | None
    tpm: int | None
    max_concurrent: int | None
    throttle_factor: float
    created_at: Any
    updated_at: Any
    monthly_token_budget: int | None
    model_limits: dict[str, Limits]


def _model_limits(conn: Connection, account_id: str, throttle_factor: float | None = None) -> dict[str, Limits]:
    factor = throttle_factor
    if factor is None:
        factor = conn.execute(sa.select(t_accounts.c.throttle_factor)
                              .where(t_accounts.c.account_id == account_id)).scalar_one()
    rows = conn.execute(sa.select(t_model_limits).where(t_model_limits.c.account_id == account_id)).all()
    return {r.model: Limits(rpm=r.rpm, tpm=r.tpm, max_concurrent=r.max_concurrent, throttle_factor=factor)
            for r in rows}


def _check_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
        raise ConfigError(f"key expiry {expires_at!r} needs a time zone", hint="pass an aware UTC datetime",
                          code="invalid_expiry")
    if expires_at <= utcnow():
        raise ConfigError(f"key expiry {expires_at.isoformat()} is in the past", hint="give a future time",
                          code="invalid_expiry")
    return as_utc(expires_at)


def _audit(conn: Connection, kind: str, target_id: str, action: str, old: KeyState | None,
           new: KeyState | None, reason: str, actor: str, evidence: dict | None) -> None:
    # Every audited change (state, limits, budget, rotation) may change what a cached key may do:
    # the new sequence number tells every worker's KeyCache to forget its entries.
    conn.execute(t_changes.insert().values(target_id=target_id))
    conn.execute(t_audit.insert().values(
        ts=utcnow(), target_kind=kind, target_id=target_id, action=action,
        old_state=old.value if old else None, new_state=new.value if new else None,
        reason=reason, actor=actor[:128],
        evidence=json.dumps(evidence, sort_keys=True, default=str) if evidence else None))


def _key_info(row: Any) -> KeyInfo:
    return KeyInfo(key_id=row.key_id, account_id=row.account_id, state=KeyState(row.state),
                   created_at=as_utc(row.created_at), revoked_at=as_utc(row.revoked_at),
                   expires_at=as_utc(row.expires_at))


def _account_info(row: Any, keys: tuple[KeyInfo, ...]) -> AccountInfo:
    return AccountInfo(account_id=row.account_id, name=row.name, state=KeyState(row.state), limits=_row_limits(row),
                       created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at), keys=keys,
                       monthly_token_budget=row.monthly_token_budget)
