"""Parent approvals may be scoped to failure clusters (``approvals.clusters``).

Existing rows keep ``NULL``: approvals from before scopes are unscoped, and their
events carry no ``clusters`` field, so a replay of the chain projects the same ``NULL``.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A ledger made by metadata.create_all (before migrations) may have the column already.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("approvals")}
    if "clusters" not in columns:
        op.add_column("approvals", sa.Column("clusters", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("clusters")
