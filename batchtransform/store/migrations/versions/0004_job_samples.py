"""Job samples: a job's telemetry over time, for charts and metrics.

One row per sample: the job, when (epoch seconds), which instance (``""`` for the whole
job) and the sampled values as a JSON object of numbers (records and bytes so far for the
whole job; CPU and memory for an instance). Read per job in time order, hence the index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_samples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_name", sa.String(63), nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("instance", sa.String(63), nullable=False),
        sa.Column("values", sa.JSON, nullable=False),
    )
    op.create_index("ix_job_samples_job_name_time", "job_samples", ["job_name", "time"])


def downgrade() -> None:
    op.drop_index("ix_job_samples_job_name_time", table_name="job_samples")
    op.drop_table("job_samples")
