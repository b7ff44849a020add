"""endpoints: models served behind the OpenAI-compatible gateway, their replicas, keys and usage

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 17:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("image", sa.String(length=500), nullable=True),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("gpu_type", sa.String(length=40), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("min_replicas", sa.Integer(), nullable=False),
        sa.Column("max_replicas", sa.Integer(), nullable=False),
        sa.Column("idle_s", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_request_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"],
                                name=op.f("fk_endpoints_created_by_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["model_version_id"], ["ai_model_versions.id"],
                                name=op.f("fk_endpoints_model_version_id_ai_model_versions"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name=op.f("fk_endpoints_project_id_projects"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"],
                                name=op.f("fk_endpoints_site_id_sites"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoints")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_endpoints_project_id")),
    )  # fmt: skip
    op.create_index(op.f("ix_endpoints_project_id"), "endpoints", ["project_id"])
    op.create_table(
        "endpoint_replicas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("healthy_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"],
                                name=op.f("fk_endpoint_replicas_endpoint_id_endpoints"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"],
                                name=op.f("fk_endpoint_replicas_job_id_jobs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_version_id"], ["ai_model_versions.id"],
                                name=op.f("fk_endpoint_replicas_model_version_id_ai_model_versions"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoint_replicas")),
        sa.UniqueConstraint("job_id", name=op.f("uq_endpoint_replicas_job_id")),
    )  # fmt: skip
    op.create_index(op.f("ix_endpoint_replicas_endpoint_id"), "endpoint_replicas", ["endpoint_id"])
    op.create_index(op.f("ix_endpoint_replicas_state"), "endpoint_replicas", ["state"])
    op.create_table(
        "endpoint_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("endpoint_ids", sa.JSON(), nullable=True),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("tokens_per_minute", sa.Integer(), nullable=True),
        sa.Column("tokens_per_month", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"],
                                name=op.f("fk_endpoint_keys_created_by_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name=op.f("fk_endpoint_keys_project_id_projects"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoint_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_endpoint_keys_prefix")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_endpoint_keys_secret_hash")),
    )  # fmt: skip
    op.create_index(op.f("ix_endpoint_keys_project_id"), "endpoint_keys", ["project_id"])
    op.create_table(
        "endpoint_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("caller", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"],
                                name=op.f("fk_endpoint_usage_endpoint_id_endpoints"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["key_id"], ["endpoint_keys.id"],
                                name=op.f("fk_endpoint_usage_key_id_endpoint_keys"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name=op.f("fk_endpoint_usage_project_id_projects"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_endpoint_usage_user_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoint_usage")),
        sa.UniqueConstraint("endpoint_id", "caller", "day",
                            name=op.f("uq_endpoint_usage_endpoint_id")),
    )  # fmt: skip
    op.create_index(op.f("ix_endpoint_usage_endpoint_id"), "endpoint_usage", ["endpoint_id"])
    op.create_index(op.f("ix_endpoint_usage_key_id"), "endpoint_usage", ["key_id"])
    op.create_index(op.f("ix_endpoint_usage_project_id"), "endpoint_usage", ["project_id"])


def downgrade() -> None:
    for table in ("endpoint_usage", "endpoint_keys", "endpoint_replicas", "endpoints"):
        op.drop_table(table)
