"""Ledger migration revisions, applied in order by Alembic (``0001``, ``0002``, ...)."""
