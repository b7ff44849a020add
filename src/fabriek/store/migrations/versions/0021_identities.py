"""identities: several federated identities per person, the assurance a token was issued
under, and memberships managed by entitlements

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 03:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_identities_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_identities")),
        sa.UniqueConstraint("issuer", "subject", name=op.f("uq_user_identities_issuer")),
    )
    with op.batch_alter_table("user_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_identities_user_id"), ["user_id"])
    # Every user made by a sign-in so far has that one identity.
    op.execute(
        "INSERT INTO user_identities (user_id, issuer, subject, email, linked_at) "
        "SELECT id, oidc_issuer, oidc_sub, email, created_at FROM users "
        "WHERE oidc_issuer IS NOT NULL AND oidc_sub IS NOT NULL"
    )
    op.create_table(
        "identity_link_offers",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_key", sa.String(length=12), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("assurance", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_identity_link_offers_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_identity_link_offers")),
    )
    with op.batch_alter_table("identity_link_offers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_link_offers_user_id"), ["user_id"])
        batch_op.create_index(batch_op.f("ix_identity_link_offers_created_at"), ["created_at"])
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assurance", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("identity_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_tokens_identity_id"), ["identity_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_api_tokens_identity_id_user_identities"),
            "user_identities",
            ["identity_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("oidc_logins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("link_token_key", sa.String(length=12), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_oidc_logins_link_user_id_users"),
            "users",
            ["link_user_id"],
            ["id"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("source")
    with op.batch_alter_table("oidc_logins", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_oidc_logins_link_user_id_users"), type_="foreignkey"
        )
        batch_op.drop_column("link_token_key")
        batch_op.drop_column("link_user_id")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_api_tokens_identity_id_user_identities"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_api_tokens_identity_id"))
        batch_op.drop_column("identity_id")
        batch_op.drop_column("assurance")
    with op.batch_alter_table("identity_link_offers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_link_offers_created_at"))
        batch_op.drop_index(batch_op.f("ix_identity_link_offers_user_id"))
    op.drop_table("identity_link_offers")
    with op.batch_alter_table("user_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_identities_user_id"))
    op.drop_table("user_identities")
