"""Committed outputs: what each work item of a job wrote, so that a resumed job skips it.

One row per job and work item key (a relative input name, or a range of one): the output's
URL, its stamp (size and ETag or modification time) when it was committed, the item's
counters, and when. A resumed job compares each stamp with the object now and redoes the
work whose output changed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "committed_outputs",
        sa.Column("job_name", sa.String(63), primary_key=True),
        sa.Column("item_key", sa.String(2048), primary_key=True),
        sa.Column("output_url", sa.Text, nullable=False),
        sa.Column("stamp", sa.String(512), nullable=False),
        sa.Column("counters", sa.JSON, nullable=False),
        sa.Column("committed_time", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("committed_outputs")
