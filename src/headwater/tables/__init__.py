"""Tables as first-class versions: formats, schema, column stats, a layout-free fingerprint."""

from headwater.tables.fingerprint import TableFingerprinter, table_fingerprint
from headwater.tables.formats import TABLE_FORMATS, detect_format, read_table
from headwater.tables.profile import TableProfile, TableProfiler, profile_table, schema_to_json

__all__ = [
    "TABLE_FORMATS",
    "TableFingerprinter",
    "TableProfile",
    "TableProfiler",
    "detect_format",
    "profile_table",
    "read_table",
    "schema_to_json",
    "table_fingerprint",
]
