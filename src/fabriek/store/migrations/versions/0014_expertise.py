"""expertise: experts, skills, consultations, knowledge-base articles

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# The full-text index of the knowledge base is each store's own (one service function
# reads either, see fabriek.services.support.knowledge). PostgreSQL: a generated tsvector, the
# title weighted above the body, stemmed with the configuration of the article's language.
_CONFIG = "CASE WHEN language = 'nl' THEN 'dutch'::regconfig ELSE 'english'::regconfig END"
PG_SEARCH = (
    f"setweight(to_tsvector({_CONFIG}, coalesce(title, '')), 'A') || "
    f"setweight(to_tsvector({_CONFIG}, coalesce(body, '')), 'B')"
)
# SQLite: FTS5 tables, rowid = the article's id. Dutch text is stemmed by Fabriek before
# it is stored (FTS5 has no Dutch stemmer); English by FTS5's own porter tokenizer.
SQLITE_SEARCH = {
    "kb_search_nl": "unicode61 remove_diacritics 2",
    "kb_search_en": "porter unicode61 remove_diacritics 2",
}


def upgrade() -> None:
    op.create_table(
        "experts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("organisation", sa.String(length=200), nullable=False),
        sa.Column("hub", sa.String(length=40), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("hours_per_month", sa.Double(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_experts_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experts")),
    )
    op.create_index(op.f("ix_experts_hub"), "experts", ["hub"], unique=False)

    op.create_table(
        "expert_skills",
        sa.Column("expert_id", sa.Integer(), nullable=False),
        sa.Column("skill", sa.String(length=63), nullable=False),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["experts.id"], name=op.f("fk_expert_skills_expert_id_experts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("expert_id", "skill", name=op.f("pk_expert_skills")),
    )  # fmt: skip
    op.create_index(op.f("ix_expert_skills_skill"), "expert_skills", ["skill"], unique=False)

    op.create_table(
        "expertise_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("hours", sa.Double(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("province", sa.String(length=40), nullable=False),
        sa.Column("hub", sa.String(length=40), nullable=False),
        sa.Column("sector", sa.String(length=40), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_expertise_requests_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"],
            name=op.f("fk_expertise_requests_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["proposals.id"],
            name=op.f("fk_expertise_requests_proposal_id_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expertise_requests")),
    )  # fmt: skip
    for column in ("ticket_id", "proposal_id", "organisation_id", "hub"):
        op.create_index(
            op.f(f"ix_expertise_requests_{column}"), "expertise_requests", [column], unique=False
        )

    op.create_table(
        "expert_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("hours", sa.Double(), nullable=False),
        sa.Column("assigned_by", sa.Integer(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assigned_by"], ["users.id"], name=op.f("fk_expert_assignments_assigned_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["experts.id"], name=op.f("fk_expert_assignments_expert_id_experts")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["expertise_requests.id"],
            name=op.f("fk_expert_assignments_request_id_expertise_requests"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expert_assignments")),
        sa.UniqueConstraint("request_id", "expert_id", name=op.f("uq_expert_assignments_request_id")),
    )  # fmt: skip
    for column in ("request_id", "expert_id"):
        op.create_index(
            op.f(f"ix_expert_assignments_{column}"), "expert_assignments", [column], unique=False
        )

    op.create_table(
        "consultations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hours", sa.Double(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("hub", sa.String(length=40), nullable=False),
        sa.Column("sector", sa.String(length=40), nullable=False),
        sa.Column("logged_by", sa.Integer(), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["experts.id"], name=op.f("fk_consultations_expert_id_experts")
        ),
        sa.ForeignKeyConstraint(
            ["logged_by"], ["users.id"], name=op.f("fk_consultations_logged_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["expertise_requests.id"],
            name=op.f("fk_consultations_request_id_expertise_requests"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultations")),
    )  # fmt: skip
    for column in ("request_id", "expert_id"):
        op.create_index(op.f(f"ix_consultations_{column}"), "consultations", [column], unique=False)
    op.create_index("ix_consultations_hub_day", "consultations", ["hub", "day"], unique=False)

    op.create_table(
        "kb_articles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("translation", sa.String(length=80), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_kb_articles_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name=op.f("fk_kb_articles_updated_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_articles")),
        sa.UniqueConstraint("slug", name=op.f("uq_kb_articles_slug")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER TABLE kb_articles ADD COLUMN search tsvector "
            f"GENERATED ALWAYS AS ({PG_SEARCH}) STORED"
        )
        op.execute("CREATE INDEX ix_kb_articles_search ON kb_articles USING gin (search)")
    else:
        for table, tokenizer in SQLITE_SEARCH.items():
            op.execute(
                f"CREATE VIRTUAL TABLE {table} USING fts5(title, body, tokenize='{tokenizer}')"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for table in SQLITE_SEARCH:
            op.execute(f"DROP TABLE {table}")
    op.drop_table("kb_articles")
    op.drop_index("ix_consultations_hub_day", table_name="consultations")
    op.drop_table("consultations")
    op.drop_table("expert_assignments")
    op.drop_table("expertise_requests")
    op.drop_table("expert_skills")
    op.drop_table("experts")
