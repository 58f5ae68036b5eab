"""Initial schema: accounts, API keys, enforcement audit, request log, rate-limiter state

Revision ID: 0001
Revises:
Create Date: 2026-11-22 22:17:33.634609
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('rpm', sa.Integer(), nullable=True),
    sa.Column('tpm', sa.Integer(), nullable=True),
    sa.Column('max_concurrent', sa.Integer(), nullable=True),
    sa.Column('throttle_factor', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('name', name=op.f('uq_accounts_name'))
    )
    op.create_table('enforcement_audit',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('target_kind', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('old_state', sa.String(length=16), nullable=True),
    sa.Column('new_state', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enforcement_audit'))
    )
    op.create_index('ix_enforcement_audit_target', 'enforcement_audit', ['target_id', 'ts'], unique=False)
    op.create_index('ix_enforcement_audit_ts', 'enforcement_audit', ['ts'], unique=False)

    op.create_table('rate_limit_buckets',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('requests', sa.Float(), nullable=False),
    sa.Column('tokens', sa.Float(), nullable=False),
    sa.Column('updated', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_rate_limit_buckets'))
    )
    op.create_table('rate_limit_leases',
    sa.Column('lease_id', sa.String(length=32), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('expires', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('lease_id', name=op.f('pk_rate_limit_leases'))
    )
    op.create_index('ix_rate_limit_leases_key_expires', 'rate_limit_leases', ['key_id', 'expires'], unique=False)

    op.create_table('request_log',
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=True),
    sa.Column('key_id', sa.String(length=32), nullable=True),
    sa.Column('client_ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.Text(), nullable=True),
    sa.Column('endpoint', sa.String(length=128), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=True),
    sa.Column('params', sa.Text(), nullable=True),
    sa.Column('temperature', sa.Float(), nullable=True),
    sa.Column('max_tokens', sa.Integer(), nullable=True),
    sa.Column('logprobs', sa.Integer(), nullable=False),
    sa.Column('logit_bias', sa.Boolean(), nullable=False),
    sa.Column('stream', sa.Boolean(), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=True),
    sa.Column('completion', sa.Text(), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=64), nullable=True),
    sa.Column('watermark_key_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_request_log'))
    )
    op.create_index('ix_request_log_account_ts', 'request_log', ['account_id', 'ts'], unique=False)
    op.create_index('ix_request_log_client_ip_ts', 'request_log', ['client_ip', 'ts'], unique=False)
    op.create_index('ix_request_log_key_ts', 'request_log', ['key_id', 'ts'], unique=False)
    op.create_index('ix_request_log_ts', 'request_log', ['ts'], unique=False)

    op.create_table('api_keys',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('salt', sa.String(length=64), nullable=False),
    sa.Column('key_hash', sa.String(length=128), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.account_id'], name=op.f('fk_api_keys_account_id_accounts')),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_api_keys'))
    )
    op.create_index(op.f('ix_api_keys_account_id'), 'api_keys', ['account_id'], unique=False)



def downgrade() -> None:
    op.drop_index(op.f('ix_api_keys_account_id'))

    op.drop_table('api_keys')
    op.drop_index('ix_request_log_ts')
    op.drop_index('ix_request_log_key_ts')
    op.drop_index('ix_request_log_client_ip_ts')
    op.drop_index('ix_request_log_account_ts')

    op.drop_table('request_log')
    op.drop_index('ix_rate_limit_leases_key_expires')

    op.drop_table('rate_limit_leases')
    op.drop_table('rate_limit_buckets')
    op.drop_index('ix_enforcement_audit_ts')
    op.drop_index('ix_enforcement_audit_target')

    op.drop_table('enforcement_audit')
    op.drop_table('accounts')
