"""The README's code blocks, by the section they sit in: the tests run them as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(lang: str | None = None) -> dict[str, list[str]]:
    """``{section heading: [code of each fenced block in it]}`` (``lang`` None: every block)."""
    out: dict[str, list[str]] = {}
    section = ""
    for m in re.finditer(r"^## ([^\n]+)$|^```(\w*)\n(.*?)^```$", README.read_text(), re.M | re.S):
        if m.group(1):
            section = m.group(1).strip()
        elif lang is None or m.group(2) == lang:
            out.setdefault(section, []).append(m.group(3))
    return out
