"""The gateway's database tables (SQLAlchemy Core), shared by the stores and the migrations.

Schema changes go through Alembic migrations in ``gateway/migrations/versions``; a test compares
these definitions with the migrated schema on SQLite and PostgreSQL so the two cannot drift.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

accounts = sa.Table(
    "accounts", metadata,
    sa.Column("account_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("tpm", sa.Integer, nullable=True),
    sa.Column("max_concurrent", sa.Integer, nullable=True),
    sa.Column("throttle_factor", sa.Float, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # Tokens (prompt + completion) the account may use per UTC month; NULL: no budget.
    sa.Column("monthly_token_budget", sa.BigInteger, nullable=True),
)

api_keys = sa.Table(
    "api_keys", metadata,
    # The public prefix of the key ("ds-<key_id>-<secret>"); safe to print and log.
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.account_id"), nullable=False, index=True),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("key_hash", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),   # NULL: never expires
)

enforcement_audit = sa.Table(
    "enforcement_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("target_kind", sa.String(16), nullable=False),
    sa.Column("target_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("old_state", sa.String(16), nullable=True),
    sa.Column("new_state", sa.String(16), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("evidence", sa.Text, nullable=True),
    sa.Index("ix_enforcement_audit_target", "target_id", "ts"),
    sa.Index("ix_enforcement_audit_ts", "ts"),
)

request_log = sa.Table(
    "request_log", metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("account_id", sa.String(32), nullable=True),
    sa.Column("key_id", sa.String(32), nullable=True),
    sa.Column("client_ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.Text, nullable=True),
    sa.Column("endpoint", sa.String(128), nullable=False),
    sa.Column("model", sa.String(256), nullable=True),
    sa.Column("params", sa.Text, nullable=True),
    sa.Column("temperature", sa.Float, nullable=True),
    sa.Column("max_tokens", sa.Integer, nullable=True),
    sa.Column("logprobs", sa.Integer, nullable=False),
    sa.Column("logit_bias", sa.Boolean, nullable=False),
    sa.Column("stream", sa.Boolean, nullable=False),
    sa.Column("prompt", sa.Text, nullable=True),
    sa.Column("completion", sa.Text, nullable=True),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error", sa.String(64), nullable=True),
    sa.Column("watermark_key_id", sa.String(64), nullable=True),
    # The OpenAI `user` field: the end user of a reseller (the account), as the client sent it.
    sa.Column("end_user", sa.String(256), nullable=True),
    # The queries the product runs: per key / per account over a time range, and by time.
    sa.Index("ix_request_log_key_ts", "key_id", "ts"),
    sa.Index("ix_request_log_account_ts", "account_id", "ts"),
    sa.Index("ix_request_log_ts", "ts"),
    sa.Index("ix_request_log_client_ip_ts", "client_ip", "ts"),
    sa.Index("ix_request_log_account_end_user_ts", "account_id", "end_user", "ts"),
)

# Requests and tokens per account and UTC month ("2026-12"), counted with each log row.
account_usage = sa.Table(
    "account_usage", metadata,
    sa.Column("account_id", sa.String(32), primary_key=True),
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False),
)

# A growing sequence of key/account state changes: workers poll its maximum to drop cached keys.
key_state_changes = sa.Table(
    "key_state_changes", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target_id", sa.String(64), nullable=False),
)

# Shared state of the database rate limiter (token buckets and concurrency leases).
rate_limit_buckets = sa.Table(
    "rate_limit_buckets", metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("requests", sa.Float, nullable=False),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
)

rate_limit_leases = sa.Table(
    "rate_limit_leases", metadata,
    sa.Column("lease_id", sa.String(32), primary_key=True),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Index("ix_rate_limit_leases_key_expires", "key_id", "expires"),
)


# Per-model limits of an account's keys, applied on top of the key's own limits (NULL: unlimited).
model_limits = sa.Table(
    "model_limits", metadata,
    sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.account_id"), primary_key=True),
    sa.Column("model", sa.String(256), primary_key=True),
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("tpm", sa.Integer, nullable=True),
    sa.Column("max_concurrent", sa.Integer, nullable=True),
)
