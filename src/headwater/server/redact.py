"""Masking secrets that travel inside URLs (``postgresql://user:secret@host/db``).

Why its own module: the server must never echo a password it was given — not in a response, not
in a log line, not in an ingested event it stores. Catalog URLs, OpenLineage namespaces (some
producers put credentials in them) and error messages all pass through :func:`redact`; a logging
filter applies it to every record the server's loggers emit. What counts as a secret is not
decided here but in :mod:`headwater.sensitive`, shared with the adapters.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from headwater.sensitive import MASK, mask_secrets


def redact(text: str) -> str:
    """``text`` with any URL password or the value of a secret-named ``name=value`` masked
    (:func:`headwater.sensitive.mask_secrets`: the rule the Beam launch record uses too)."""
    if not isinstance(text, str):
        return text
    return mask_secrets(text, MASK)


def redact_json(value: Any) -> Any:
    """A JSON-able value with every string passed through :func:`redact`."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): redact_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(json.dumps(value, default=str))


class RedactingFilter(logging.Filter):
    """Masks secrets in a log record's message (formatted with its arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_filter(*names: str) -> None:
    """Add the filter to the named loggers (and their handlers) once."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


__all__ = ["MASK", "RedactingFilter", "install_log_filter", "redact", "redact_json"]
