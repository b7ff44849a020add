"""partner jobs: jobs a partner factory placed here, keyed by its own job id

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 03:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partner_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner", sa.String(length=63), nullable=False),
        sa.Column("foreign_job_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("person", sa.String(length=200), nullable=False),
        sa.Column("person_name", sa.String(length=200), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"],
                                name=op.f("fk_partner_jobs_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_jobs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_partner_jobs_job_id")),
        sa.UniqueConstraint("partner", "foreign_job_id", name=op.f("uq_partner_jobs_partner")),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("partner_jobs")
