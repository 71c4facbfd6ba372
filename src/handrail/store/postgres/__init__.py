"""The PostgreSQL store: many workers on many machines (``pip install 'handrail[postgres]'``)."""

from handrail.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
