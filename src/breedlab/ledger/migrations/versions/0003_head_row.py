"""The chain's head row exists from creation (seq 0, the genesis hash).

Before, the first append inserted it; on PostgreSQL, writers racing for the very first
event then found no row to lock and both inserted one (a unique violation instead of a
queue). With the row always there, ``SELECT ... FOR UPDATE`` serialises every append.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

GENESIS = "0" * 64  # breedlab.ledger.chain.GENESIS, frozen here as this revision wrote it


def upgrade() -> None:
    op.execute(
        sa.text(
            "INSERT INTO head (id, seq, hash) SELECT 1, 0, :genesis "
            "WHERE NOT EXISTS (SELECT 1 FROM head WHERE id = 1)"
        ).bindparams(genesis=GENESIS)
    )


def downgrade() -> None:
    op.execute("DELETE FROM head WHERE seq = 0")
