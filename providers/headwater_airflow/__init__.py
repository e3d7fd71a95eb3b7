"""Headwater's Airflow provider: versioned steps as operators, Assets, OpenLineage facets.

It adapts Airflow's task context to the Headwater core and holds no catalog or storage logic of
its own: every version, run and lineage edge is written by ``headwater`` (``Catalog.run``).
"""

__version__ = "0.1.0"
