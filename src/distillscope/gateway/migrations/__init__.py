"""Alembic migrations of the gateway database (a package so that wheels ship them)."""
