"""Append-only ``events``, enforced by the database too (triggers per dialect).

The hash chain makes an edit *evident*; these triggers make it *refused* for anyone who
goes through the database rather than around it. An attacker with the SQLite file can
drop them -- ``ledger verify`` still catches what they then change.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

_MESSAGE = "ledger events are append-only"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION breedlab_events_append_only() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION breedlab_events_append_only()"
        )
    else:
        for action in ("update", "delete"):
            op.execute(
                f"CREATE TRIGGER events_no_{action} BEFORE {action.upper()} ON events "
                f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_append_only ON events")
        op.execute("DROP FUNCTION breedlab_events_append_only()")
    else:
        op.execute("DROP TRIGGER events_no_update")
        op.execute("DROP TRIGGER events_no_delete")
