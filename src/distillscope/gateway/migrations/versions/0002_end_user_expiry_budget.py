"""End-user attribution, key expiry, monthly token budgets, key-state changes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 19:20:00

* ``request_log.end_user``: the OpenAI ``user`` field of each request (a reseller's customer),
  indexed with the account for per-end-user analytics;
* ``api_keys.expires_at``: a key stops authenticating after it (NULL: never);
* ``accounts.monthly_token_budget`` and ``account_usage``: tokens per account and UTC month,
  counted in the transaction that writes the request's log row; a spent budget refuses requests;
* ``key_state_changes``: one row per state change of a key or account, so every worker's key
  cache sees a revocation on the next request;
* ``model_limits``: per-model limits of an account's keys (on top of the key's own limits).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_log") as batch:
        batch.add_column(sa.Column("end_user", sa.String(length=256), nullable=True))
    op.create_index("ix_request_log_account_end_user_ts", "request_log", ["account_id", "end_user", "ts"],
                    unique=False)
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("monthly_token_budget", sa.BigInteger(), nullable=True))
    op.create_table(
        "account_usage",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "period", name=op.f("pk_account_usage")),
    )
    op.create_table(
        "key_state_changes",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_key_state_changes")),
    )
    op.create_table(
        "model_limits",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.Integer(), nullable=True),
        sa.Column("max_concurrent", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.account_id"],
                                name=op.f("fk_model_limits_account_id_accounts")),
        sa.PrimaryKeyConstraint("account_id", "model", name=op.f("pk_model_limits")),
    )


def downgrade() -> None:
    op.drop_table("model_limits")
    op.drop_table("key_state_changes")
    op.drop_table("account_usage")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("monthly_token_budget")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
    op.drop_index("ix_request_log_account_end_user_ts", table_name="request_log")
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("end_user")
