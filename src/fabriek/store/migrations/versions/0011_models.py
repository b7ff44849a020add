"""models: AI models, versions, lineage, job links, sandboxes

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ai_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=30), nullable=False),
        sa.Column("intended_purpose", sa.Text(), nullable=False),
        sa.Column("licence", sa.String(length=200), nullable=True),
        sa.Column("openness", sa.String(length=20), nullable=False),
        sa.Column("monetised", sa.Boolean(), nullable=False),
        sa.Column("input_modalities", sa.JSON(), nullable=False),
        sa.Column("output_modalities", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_ai_models_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_ai_models_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_models")),
        sa.UniqueConstraint("name", name=op.f("uq_ai_models_name")),
    )
    with op.batch_alter_table("ai_models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ai_models_project_id"), ["project_id"], unique=False)

    op.create_table(
        "ai_model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("parameters", sa.BigInteger(), nullable=True),
        sa.Column("active_parameters", sa.BigInteger(), nullable=True),
        sa.Column("training_tokens", sa.BigInteger(), nullable=True),
        sa.Column("architecture", sa.String(length=30), nullable=False),
        sa.Column("release_date", sa.Date(), nullable=True),
        sa.Column("distribution", sa.String(length=500), nullable=True),
        sa.Column("documentation", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["ai_models.id"],
            name=op.f("fk_ai_model_versions_model_id_ai_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_model_versions")),
        sa.UniqueConstraint("model_id", "version", name=op.f("uq_ai_model_versions_model_id")),
    )
    with op.batch_alter_table("ai_model_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ai_model_versions_model_id"), ["model_id"], unique=False
        )

    op.create_table(
        "ai_model_bases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("base_version_id", sa.Integer(), nullable=True),
        sa.Column("external_name", sa.String(length=200), nullable=True),
        sa.Column("external_training_flop", sa.Double(), nullable=True),
        sa.Column("external_systemic_risk", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["ai_model_versions.id"],
            name=op.f("fk_ai_model_bases_version_id_ai_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["base_version_id"],
            ["ai_model_versions.id"],
            name=op.f("fk_ai_model_bases_base_version_id_ai_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_model_bases")),
    )
    with op.batch_alter_table("ai_model_bases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ai_model_bases_version_id"), ["version_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ai_model_bases_base_version_id"), ["base_version_id"], unique=False
        )

    op.create_table(
        "ai_model_jobs",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("projected_flop", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_ai_model_jobs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["ai_model_versions.id"],
            name=op.f("fk_ai_model_jobs_version_id_ai_model_versions"),
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_ai_model_jobs")),
    )
    with op.batch_alter_table("ai_model_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ai_model_jobs_version_id"), ["version_id"], unique=False
        )

    op.create_table(
        "ai_job_reports",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("mfu", sa.Double(), nullable=True),
        sa.Column("tokens", sa.BigInteger(), nullable=True),
        sa.Column("reported_by", sa.Integer(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_ai_job_reports_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["reported_by"], ["users.id"], name=op.f("fk_ai_job_reports_reported_by_users")
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_ai_job_reports")),
    )

    op.create_table(
        "ai_threshold_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("line", sa.String(length=40), nullable=False),
        sa.Column("before_flop", sa.Double(), nullable=False),
        sa.Column("after_flop", sa.Double(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        sa.Column("notify_by", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["ai_model_versions.id"],
            name=op.f("fk_ai_threshold_events_version_id_ai_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_ai_threshold_events_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["acknowledged_by"],
            ["users.id"],
            name=op.f("fk_ai_threshold_events_acknowledged_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_threshold_events")),
    )
    with op.batch_alter_table("ai_threshold_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ai_threshold_events_version_id"), ["version_id"], unique=False
        )

    op.create_table(
        "ai_systems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("role", sa.String(length=30), nullable=False),
        sa.Column("intended_purpose", sa.Text(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("risk_assessment_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_ai_systems_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["ai_model_versions.id"],
            name=op.f("fk_ai_systems_model_version_id_ai_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_ai_systems_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_systems")),
        sa.UniqueConstraint("name", name=op.f("uq_ai_systems_name")),
    )
    with op.batch_alter_table("ai_systems", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ai_systems_project_id"), ["project_id"], unique=False)

    op.create_table(
        "sandboxes",
        sa.Column("allocation_id", sa.Integer(), nullable=False),
        sa.Column("authority", sa.String(length=200), nullable=False),
        sa.Column("member_state", sa.String(length=2), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("marked_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_sandboxes_allocation_id_allocations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["marked_by"], ["users.id"], name=op.f("fk_sandboxes_marked_by_users")
        ),
        sa.PrimaryKeyConstraint("allocation_id", name=op.f("pk_sandboxes")),
    )

    op.create_table(
        "sandbox_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("allocation_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("media_type", sa.String(length=40), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("filed_by", sa.Integer(), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["sandboxes.allocation_id"],
            name=op.f("fk_sandbox_documents_allocation_id_sandboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["filed_by"], ["users.id"], name=op.f("fk_sandbox_documents_filed_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_documents")),
    )
    with op.batch_alter_table("sandbox_documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sandbox_documents_allocation_id"), ["allocation_id"], unique=False
        )


def downgrade() -> None:
    for table in (
        "sandbox_documents",
        "sandboxes",
        "ai_systems",
        "ai_threshold_events",
        "ai_job_reports",
        "ai_model_jobs",
        "ai_model_bases",
        "ai_model_versions",
        "ai_models",
    ):
        op.drop_table(table)
