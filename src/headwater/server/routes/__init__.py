"""Route modules of the catalog server, one per resource (mounted under ``/api/v1``)."""
