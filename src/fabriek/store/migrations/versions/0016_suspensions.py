"""suspensions: a person, a project or an allocation the factory has suspended

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_TABLES = ("users", "projects", "allocations")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True)))
            batch_op.add_column(sa.Column("suspended_reason", sa.String(length=500)))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("suspended_reason")
            batch_op.drop_column("suspended_at")
