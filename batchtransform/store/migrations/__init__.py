"""Alembic's environment and the schema's migrations; see ``batchtransform.store``."""
