"""Initial registry schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 03:04:45.627897
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Upgrade the schema."""
    op.create_table(
        "awardee",
        sa.Column("awardee_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("awardee_id", name=op.f("pk_awardee")),
    )
    op.create_table(
        "organization",
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("awardee_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["awardee_id"], ["awardee.awardee_id"], name=op.f("fk_organization_awardee_id_awardee")
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_organization")),
    )
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_organization_awardee_id"), ["awardee_id"], unique=False
        )

    op.create_table(
        "site",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=True),
        sa.Column("imperial_units", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.organization_id"],
            name=op.f("fk_site_organization_id_organization"),
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_site")),
    )
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_site_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "participant",
        sa.Column("participant_id", sa.String(length=16), nullable=False),
        sa.Column("research_id", sa.Integer(), nullable=False),
        sa.Column("biobank_id", sa.String(length=16), nullable=False),
        sa.Column("date_shift_days", sa.SmallInteger(), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=True),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("sign_up_date", sa.Date(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("guardian_linked", sa.Boolean(), nullable=False),
        sa.Column("sex_at_birth", sa.String(length=32), nullable=False),
        sa.Column("gender_identity", sa.String(length=32), nullable=False),
        sa.Column("sexual_orientation", sa.String(length=32), nullable=False),
        sa.Column("race_ethnicity", sa.String(length=32), nullable=False),
        sa.Column("education", sa.String(length=32), nullable=False),
        sa.Column("income", sa.String(length=32), nullable=False),
        sa.Column("employment", sa.String(length=32), nullable=False),
        sa.Column("disability", sa.Boolean(), nullable=False),
        sa.Column("limited_access_to_care", sa.Boolean(), nullable=False),
        sa.Column("zip", sa.String(length=5), nullable=True),
        sa.Column("state", sa.String(length=2), nullable=True),
        sa.CheckConstraint(
            "date_shift_days BETWEEN 1 AND 364", name=op.f("ck_participant_date_shift")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.site_id"], name=op.f("fk_participant_site_id_site")
        ),
        sa.PrimaryKeyConstraint("participant_id", name=op.f("pk_participant")),
        sa.UniqueConstraint("biobank_id", name=op.f("uq_participant_biobank_id")),
        sa.UniqueConstraint("research_id", name=op.f("uq_participant_research_id")),
    )
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_participant_site_id"), ["site_id"], unique=False)

    op.create_table(
        "biospecimen_order",
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("participant_id", sa.String(length=16), nullable=False),
        sa.Column("collection_method", sa.String(length=32), nullable=False),
        sa.Column("created_date", sa.Date(), nullable=False),
        sa.Column("collected_date", sa.Date(), nullable=True),
        sa.Column("processed_date", sa.Date(), nullable=True),
        sa.Column("finalized_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.participant_id"],
            name=op.f("fk_biospecimen_order_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_biospecimen_order")),
    )
    with op.batch_alter_table("biospecimen_order", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_biospecimen_order_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "consent",
        sa.Column("consent_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("participant_id", sa.String(length=16), nullable=False),
        sa.Column("consent_type", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("signer", sa.String(length=32), nullable=False),
        sa.Column("authored_date", sa.Date(), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.participant_id"],
            name=op.f("fk_consent_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("consent_id", name=op.f("pk_consent")),
        sa.UniqueConstraint(
            "participant_id",
            "consent_type",
            "version",
            "status",
            "authored_date",
            name=op.f("uq_consent_participant_id"),
        ),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "deceased_report",
        sa.Column("deceased_report_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.String(length=16), nullable=False),
        sa.Column("death_date", sa.Date(), nullable=True),
        sa.Column("reported_date", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("review_status", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.participant_id"],
            name=op.f("fk_deceased_report_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("deceased_report_id", name=op.f("pk_deceased_report")),
        sa.UniqueConstraint(
            "participant_id", "reported_date", name=op.f("uq_deceased_report_participant_id")
        ),
    )
    with op.batch_alter_table("deceased_report", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deceased_report_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "participant_identity",
        sa.Column("participant_id", sa.String(length=16), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("middle_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("street_address", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("ssn", sa.String(length=11), nullable=True),
        sa.Column("mrn", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.participant_id"],
            name=op.f("fk_participant_identity_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("participant_id", name=op.f("pk_participant_identity")),
    )
    op.create_table(
        "physical_measurement",
        sa.Column("physical_measurement_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.String(length=16), nullable=False),
        sa.Column("measured_date", sa.Date(), nullable=False),
        sa.Column("height_cm", sa.Float(), nullable=True),
        sa.Column("weight_kg", sa.Float(), nullable=True),
        sa.Column("waist_cm", sa.Float(), nullable=True),
        sa.Column("hip_cm", sa.Float(), nullable=True),
        sa.Column("systolic_bp", sa.Float(), nullable=True),
        sa.Column("diastolic_bp", sa.Float(), nullable=True),
        sa.Column("heart_rate", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.participant_id"],
            name=op.f("fk_physical_measurement_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("physical_measurement_id", name=op.f("pk_physical_measurement")),
        sa.UniqueConstraint(
            "participant_id", "measured_date", name=op.f("uq_physical_measurement_participant_id")
        ),
    )
    with op.batch_alter_table("physical_measurement", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_physical_measurement_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "survey_completion",
        sa.Column("survey_completion_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.String(length=16), nullable=False),
        sa.Column("module", sa.String(length=100), nullable=False),
        sa.Column("authored_date", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.participant_id"],
            name=op.f("fk_survey_completion_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("survey_completion_id", name=op.f("pk_survey_completion")),
        sa.UniqueConstraint(
            "participant_id",
            "module",
            "authored_date",
            name=op.f("uq_survey_completion_participant_id"),
        ),
    )
    with op.batch_alter_table("survey_completion", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_survey_completion_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "suspension_event",
        sa.Column("suspension_event_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("event_date", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.participant_id"],
            name=op.f("fk_suspension_event_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("suspension_event_id", name=op.f("pk_suspension_event")),
        sa.UniqueConstraint(
            "participant_id",
            "status",
            "event_date",
            name=op.f("uq_suspension_event_participant_id"),
        ),
    )
    with op.batch_alter_table("suspension_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_suspension_event_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "withdrawal_event",
        sa.Column("withdrawal_event_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("authored_date", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("aian_ceremony", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.participant_id"],
            name=op.f("fk_withdrawal_event_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("withdrawal_event_id", name=op.f("pk_withdrawal_event")),
        sa.UniqueConstraint(
            "participant_id",
            "status",
            "authored_date",
            name=op.f("uq_withdrawal_event_participant_id"),
        ),
    )
    with op.batch_alter_table("withdrawal_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_withdrawal_event_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "sample",
        sa.Column("sample_id", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("participant_id", sa.String(length=16), nullable=False),
        sa.Column("test_code", sa.String(length=32), nullable=False),
        sa.Column("received_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["biospecimen_order.order_id"],
            name=op.f("fk_sample_order_id_biospecimen_order"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.participant_id"],
            name=op.f("fk_sample_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("sample_id", name=op.f("pk_sample")),
    )
    with op.batch_alter_table("sample", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sample_order_id"), ["order_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sample_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "genomic_event",
        sa.Column("genomic_event_id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("event_date", sa.Date(), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["sample.sample_id"], name=op.f("fk_genomic_event_sample_id_sample")
        ),
        sa.PrimaryKeyConstraint("genomic_event_id", name=op.f("pk_genomic_event")),
        sa.UniqueConstraint(
            "sample_id", "state", "event_date", "detail", name=op.f("uq_genomic_event_sample_id")
        ),
    )
    with op.batch_alter_table("genomic_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_genomic_event_sample_id"), ["sample_id"], unique=False)

    op.create_table(
        "sample_event",
        sa.Column("sample_event_id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("event_date", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["sample.sample_id"], name=op.f("fk_sample_event_sample_id_sample")
        ),
        sa.PrimaryKeyConstraint("sample_event_id", name=op.f("pk_sample_event")),
        sa.UniqueConstraint(
            "sample_id", "state", "event_date", name=op.f("uq_sample_event_sample_id")
        ),
    )
    with op.batch_alter_table("sample_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sample_event_sample_id"), ["sample_id"], unique=False)


def downgrade() -> None:
    """Downgrade the schema."""
    with op.batch_alter_table("sample_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sample_event_sample_id"))

    op.drop_table("sample_event")
    with op.batch_alter_table("genomic_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_genomic_event_sample_id"))

    op.drop_table("genomic_event")
    with op.batch_alter_table("sample", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sample_participant_id"))
        batch_op.drop_index(batch_op.f("ix_sample_order_id"))

    op.drop_table("sample")
    with op.batch_alter_table("withdrawal_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_withdrawal_event_participant_id"))

    op.drop_table("withdrawal_event")
    with op.batch_alter_table("suspension_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suspension_event_participant_id"))

    op.drop_table("suspension_event")
    with op.batch_alter_table("survey_completion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_completion_participant_id"))

    op.drop_table("survey_completion")
    with op.batch_alter_table("physical_measurement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_physical_measurement_participant_id"))

    op.drop_table("physical_measurement")
    op.drop_table("participant_identity")
    with op.batch_alter_table("deceased_report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deceased_report_participant_id"))

    op.drop_table("deceased_report")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_participant_id"))

    op.drop_table("consent")
    with op.batch_alter_table("biospecimen_order", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_biospecimen_order_participant_id"))

    op.drop_table("biospecimen_order")
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participant_site_id"))

    op.drop_table("participant")
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_organization_id"))

    op.drop_table("site")
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organization_awardee_id"))

    op.drop_table("organization")
    op.drop_table("awardee")
