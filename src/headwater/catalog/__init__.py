"""The catalog database: what exists (datasets, versions, aliases) and what happened (jobs, runs,
and the run inputs/outputs that are the lineage graph). SQLAlchemy 2 typed ORM, Alembic migrations.

Nothing in this package touches object storage or lineage delivery.
"""
