"""federation: the platform's orders, its resources' projects, the usage reported back

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 03:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "federation_orders",
        sa.Column("order_uuid", sa.String(length=36), nullable=False),
        sa.Column("resource_uuid", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _when("received_at"),
        _when("decided_at"),
        _when("reported_at", nullable=True),
        sa.PrimaryKeyConstraint("order_uuid", name=op.f("pk_federation_orders")),
    )
    with op.batch_alter_table("federation_orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_federation_orders_resource_uuid"), ["resource_uuid"], unique=False
        )
    op.create_table(
        "federation_resources",
        sa.Column("resource_uuid", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("allocation_id", sa.Integer(), nullable=False),
        sa.Column("access_mode", sa.String(length=60), nullable=True),
        _when("created_at"),
        _when("terminated_at", nullable=True),
        _when("members_synced_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_federation_resources_allocation_id_allocations"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_federation_resources_project_id_projects"),
        ),
        sa.PrimaryKeyConstraint("resource_uuid", name=op.f("pk_federation_resources")),
        sa.UniqueConstraint("allocation_id", name=op.f("uq_federation_resources_allocation_id")),
        sa.UniqueConstraint("project_id", name=op.f("uq_federation_resources_project_id")),
    )
    op.create_table(
        "federation_usage",
        sa.Column("resource_uuid", sa.String(length=36), nullable=False),
        sa.Column("component", sa.String(length=60), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        _when("reported_at"),
        sa.PrimaryKeyConstraint(
            "resource_uuid", "component", "period", name=op.f("pk_federation_usage")
        ),
    )


def downgrade() -> None:
    op.drop_table("federation_usage")
    op.drop_table("federation_resources")
    with op.batch_alter_table("federation_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_federation_orders_resource_uuid"))
    op.drop_table("federation_orders")
