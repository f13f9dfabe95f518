"""The initial schema: ``SQLiteStore``'s schema 1 (on PostgreSQL, ``tasks`` and
``functions`` also get an identity column ``seq``: their insertion order, which
SQLite keeps in ``rowid``).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_FLOAT: sa.types.TypeEngine[float] = sa.REAL().with_variant(
    postgresql.DOUBLE_PRECISION(), "postgresql"
)
_UNFINISHED = sa.text("status NOT IN ('success', 'failed')")
_RETRIEVED = sa.text("retrieved IS NOT NULL")


def _seq() -> list[sa.Column[int]]:
    if op.get_bind().dialect.name == "sqlite":
        return []
    return [sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False)]


def upgrade() -> None:
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "functions",
        sa.Column("function_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("metadata", sa.Text),
        sa.Column("public", sa.Integer, nullable=False, server_default="0"),
        sa.Column("group_id", sa.Text),
        sa.Column("container_id", sa.Text),
        sa.Column("created", _FLOAT, nullable=False),
        *_seq(),
    )
    op.create_table(
        "containers",
        sa.Column("container_id", sa.Text, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("created", _FLOAT, nullable=False),
    )
    op.create_table(
        "task_groups",
        sa.Column("task_group_id", sa.Text, primary_key=True),
        sa.Column("created", _FLOAT, nullable=False),
    )
    op.create_table(
        "instances",
        sa.Column("instance_id", sa.Text, primary_key=True),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started", _FLOAT, nullable=False),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.Text, primary_key=True),
        sa.Column("task_group_id", sa.Text, nullable=False),
        sa.Column("function_id", sa.Text, nullable=False),
        sa.Column("endpoint_id", sa.Text, nullable=False),
        sa.Column("instance_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created", _FLOAT, nullable=False),
        sa.Column("completed", _FLOAT),
        sa.Column("result", sa.LargeBinary),
        sa.Column("exception", sa.Text),
        sa.Column("exception_text", sa.Text),
        sa.Column("details", sa.Text),
        sa.Column("retrieved", _FLOAT),
        *_seq(),
    )
    op.create_index("tasks_by_group", "tasks", ["task_group_id"])
    op.create_index(
        "tasks_unfinished_by_instance",
        "tasks",
        ["instance_id"],
        sqlite_where=_UNFINISHED,
        postgresql_where=_UNFINISHED,
    )
    op.create_index(
        "tasks_retrieved",
        "tasks",
        ["retrieved"],
        sqlite_where=_RETRIEVED,
        postgresql_where=_RETRIEVED,
    )
    op.bulk_insert(meta, [{"key": "schema_version", "value": "1"}])


def downgrade() -> None:
    for table in ("tasks", "instances", "task_groups", "containers", "functions"):
        op.drop_table(table)
    op.drop_table("meta")
