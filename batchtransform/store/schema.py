"""The tables as the code reads and writes them today, and the schema revision they are.

These definitions describe the newest migration's result; the migrations in
``migrations/versions/`` are what create and change real databases. The two must agree:
``SCHEMA_REVISION`` names the newest migration, and a test compares the migrated
database with these tables.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_REVISION = "0004"
"""The migration that produced the tables below; the database must be at this revision."""

metadata = sa.MetaData()

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("arn", sa.String(2048), nullable=False),
    sa.Column("creation_time", sa.Float, nullable=False, index=True),
    sa.Column("request", sa.JSON, nullable=False),
)

transform_jobs = sa.Table(
    "transform_jobs",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("arn", sa.String(256), nullable=False),
    sa.Column("model_name", sa.String(63), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("creation_time", sa.Float, nullable=False, index=True),
    sa.Column("last_modified_time", sa.Float, nullable=False),
    sa.Column("start_time", sa.Float),
    sa.Column("end_time", sa.Float),
    sa.Column("failure_reason", sa.Text),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("model", sa.JSON, nullable=False),
    sa.Column("progress", sa.JSON, nullable=False),
    sa.Column("controller_pid", sa.Integer),
    sa.Column("controller_host", sa.String(255)),  # migrations/versions/0003
)

committed_outputs = sa.Table(
    "committed_outputs",
    metadata,
    sa.Column("job_name", sa.String(63), primary_key=True),
    sa.Column("item_key", sa.String(2048), primary_key=True),
    sa.Column("output_url", sa.Text, nullable=False),
    sa.Column("stamp", sa.String(512), nullable=False),
    sa.Column("counters", sa.JSON, nullable=False),
    sa.Column("committed_time", sa.Float, nullable=False),
)
"""What each work item of a job committed (``migrations/versions/0002``), for resume."""

job_samples = sa.Table(
    "job_samples",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_name", sa.String(63), nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("instance", sa.String(63), nullable=False),  # "": the whole job
    sa.Column("values", sa.JSON, nullable=False),
    sa.Index("ix_job_samples_job_name_time", "job_name", "time"),
)
"""A job's telemetry over time (``migrations/versions/0004``): ``SampleRecord`` rows."""
