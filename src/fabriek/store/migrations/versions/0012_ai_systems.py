"""ai systems: risk classification under the EU AI Act

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ai_systems", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=200), nullable=True))

    op.create_table(
        "ai_classifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("rules_version", sa.String(length=64), nullable=False),
        sa.Column("started_by", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tiers", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["ai_systems.id"],
            name=op.f("fk_ai_classifications_system_id_ai_systems"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["started_by"], ["users.id"], name=op.f("fk_ai_classifications_started_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_classifications")),
    )
    with op.batch_alter_table("ai_classifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ai_classifications_system_id"), ["system_id"], unique=False
        )

    op.create_table(
        "ai_risk_answers",
        sa.Column("classification_id", sa.Integer(), nullable=False),
        sa.Column("question", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("cites", sa.JSON(), nullable=False),
        sa.Column("answered_by", sa.Integer(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["classification_id"],
            ["ai_classifications.id"],
            name=op.f("fk_ai_risk_answers_classification_id_ai_classifications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["answered_by"],
            ["users.id"],
            name=op.f("fk_ai_risk_answers_answered_by_users"),
        ),
        sa.PrimaryKeyConstraint("classification_id", "question", name=op.f("pk_ai_risk_answers")),
    )


def downgrade() -> None:
    op.drop_table("ai_risk_answers")
    with op.batch_alter_table("ai_classifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ai_classifications_system_id"))
    op.drop_table("ai_classifications")
    with op.batch_alter_table("ai_systems", schema=None) as batch_op:
        batch_op.drop_column("provider")
