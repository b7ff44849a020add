"""federation resources: the platform's decision on the order, for the turnaround clock

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 04:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("federation_resources") as batch:
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("federation_resources") as batch:
        batch.drop_column("decided_at")
