"""workloads: the image digest a job ran, and the web app (notebook) it serves

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 14:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image_digest", sa.String(length=100)))
        batch_op.add_column(sa.Column("web_port", sa.Integer()))
        batch_op.add_column(sa.Column("web_app", sa.String(length=40)))
        batch_op.add_column(sa.Column("last_active_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for column in ("last_active_at", "web_app", "web_port", "image_digest"):
            batch_op.drop_column(column)
