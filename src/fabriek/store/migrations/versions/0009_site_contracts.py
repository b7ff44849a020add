"""sites: renewable contracts (market-based carbon) and GDPR readiness

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("renewable_share", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("residual_mix_g_per_kwh", sa.Double(), nullable=True))
        batch_op.add_column(
            sa.Column("gdpr_ready", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("gdpr_ready")
        batch_op.drop_column("residual_mix_g_per_kwh")
        batch_op.drop_column("renewable_share")
