"""Instance heartbeats (``instances.seen``, the database's clock), for liveness
across hosts; ``meta.schema_version`` 2, so an older ``SQLiteStore`` refuses the
upgraded file.  Also finishes schema 1's index change on files stamped ``0001``
that still had the first indexes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_FLOAT: sa.types.TypeEngine[float] = sa.REAL().with_variant(
    postgresql.DOUBLE_PRECISION(), "postgresql"
)


def upgrade() -> None:
    op.add_column("instances", sa.Column("seen", _FLOAT))
    op.execute("DROP INDEX IF EXISTS tasks_by_instance_status")
    op.execute("DROP INDEX IF EXISTS tasks_by_retrieved")
    op.execute(
        "CREATE INDEX IF NOT EXISTS tasks_unfinished_by_instance ON tasks"
        " (instance_id) WHERE status NOT IN ('success', 'failed')"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS tasks_retrieved ON tasks (retrieved)"
        " WHERE retrieved IS NOT NULL"
    )
    op.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def downgrade() -> None:
    op.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    op.drop_column("instances", "seen")
