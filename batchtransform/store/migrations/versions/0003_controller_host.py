"""The host of a job's controller, beside its process id.

Several servers may share one database from different machines; a process id only means
something on the machine that has it, so a server checks (and ends) only the jobs whose
controller runs on its own host. Jobs recorded before this revision have no host and are
checked by every server, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("transform_jobs", sa.Column("controller_host", sa.String(255)))


def downgrade() -> None:
    with op.batch_alter_table("transform_jobs") as batch:
        batch.drop_column("controller_host")
