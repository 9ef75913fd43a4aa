"""The first versioned schema: models and transform jobs, as releases before migrations
created them (``MetaData.create_all``).

A database made by such a release has these tables and no ``alembic_version``; the
upgrade stamps it at this revision instead of running it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("arn", sa.String(2048), nullable=False),
        sa.Column("creation_time", sa.Float, nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
    )
    op.create_index("ix_models_creation_time", "models", ["creation_time"])
    op.create_table(
        "transform_jobs",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("arn", sa.String(256), nullable=False),
        sa.Column("model_name", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("creation_time", sa.Float, nullable=False),
        sa.Column("last_modified_time", sa.Float, nullable=False),
        sa.Column("start_time", sa.Float),
        sa.Column("end_time", sa.Float),
        sa.Column("failure_reason", sa.Text),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("model", sa.JSON, nullable=False),
        sa.Column("progress", sa.JSON, nullable=False),
        sa.Column("controller_pid", sa.Integer),
    )
    op.create_index("ix_transform_jobs_status", "transform_jobs", ["status"])
    op.create_index("ix_transform_jobs_creation_time", "transform_jobs", ["creation_time"])


def downgrade() -> None:
    op.drop_table("transform_jobs")
    op.drop_table("models")
