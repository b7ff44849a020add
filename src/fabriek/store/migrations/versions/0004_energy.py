"""energy: hourly job energy, grid intensity, heat reuse

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:06:13.277022
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("energy_readings", sa.JSON(), nullable=True))
    op.create_table(
        "grid_intensity",
        sa.Column("zone", sa.String(length=8), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("g_per_kwh", sa.Double(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("zone", "hour", name=op.f("pk_grid_intensity")),
    )
    op.create_table(
        "job_energy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gpu_seconds", sa.Double(), nullable=False),
        sa.Column("gpu_kwh", sa.Double(), nullable=False),
        sa.Column("cpu_kwh", sa.Double(), nullable=False),
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_energy_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_job_energy_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_energy")),
    )
    with op.batch_alter_table("job_energy", schema=None) as batch_op:
        batch_op.create_index("ix_job_energy_hour_site", ["hour", "site_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_energy_job_id"), ["job_id"], unique=False)

    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heat_reuse_share", sa.Double(), nullable=True))
        batch_op.add_column(
            sa.Column("grid_zone", sa.String(length=8), server_default="NL", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("energy_readings")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("grid_zone")
        batch_op.drop_column("heat_reuse_share")

    with op.batch_alter_table("job_energy", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_energy_job_id"))
        batch_op.drop_index("ix_job_energy_hour_site")

    op.drop_table("job_energy")
    op.drop_table("grid_intensity")
