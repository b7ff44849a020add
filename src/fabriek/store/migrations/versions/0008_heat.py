"""heat: hourly district-heat demand per zone, fed to the scheduler

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 12:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "heat_demand",
        sa.Column("zone", sa.String(length=8), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("demand", sa.Double(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("zone", "hour", name=op.f("pk_heat_demand")),
    )


def downgrade() -> None:
    op.drop_table("heat_demand")
