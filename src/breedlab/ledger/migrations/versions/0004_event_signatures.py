"""Events carry their actor's signature (``events.sig``; DESIGN §13).

Existing rows keep ``NULL``: their hashes were computed without a signature and stay
valid. ``breedlab ledger sign-history`` has the lab key vouch for them once.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A ledger made by metadata.create_all (before migrations) may have the column already.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("events")}
    if "sig" not in columns:
        op.add_column("events", sa.Column("sig", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("sig")
