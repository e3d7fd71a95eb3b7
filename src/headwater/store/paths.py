"""Manifest paths: relative, POSIX, and unable to escape the directory they are checked out to.

Checked when a manifest is built and again on checkout, because a manifest may come from a store
that someone else wrote.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from headwater.errors import UnsafePath

#: Drive-absolute on Windows (``C:/x``, ``C:``); backslashes are refused separately. ``C:data.txt``
#: is an ordinary relative name on POSIX, where Headwater checks out, so it is allowed there.
_DRIVE = re.compile(r"^[A-Za-z]:(/|\Z)")
#: Drive-relative (``C:data.txt``): resolved against drive C's current directory on Windows.
_DRIVE_RELATIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_relpath(path: str) -> str:
    """Return ``path`` if it is a safe relative POSIX path, else raise :class:`UnsafePath`."""
    if not isinstance(path, str) or not path:
        raise UnsafePath("empty path in manifest")
    if _CONTROL.search(path):
        raise UnsafePath(f"path {path!r} contains a control character (NUL, newline, ...)")
    if "\\" in path:
        raise UnsafePath(f"path {path!r} contains a backslash; manifest paths use '/'")
    if path.startswith("/") or _DRIVE.match(path):
        raise UnsafePath(f"path {path!r} is absolute; manifest paths are relative")
    if os.name == "nt" and _DRIVE_RELATIVE.match(path):
        raise UnsafePath(f"path {path!r} names a drive and would escape its directory on Windows")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePath(
                f"path {path!r} has an empty, '.' or '..' segment and could escape its directory"
            )
    return path


def safe_join(root: Path, relpath: str) -> Path:
    """``root / relpath``, refusing anything that resolves outside ``root``."""
    check_relpath(relpath)
    base = root.resolve()
    target = (base / relpath).resolve()
    if target != base and base not in target.parents:
        raise UnsafePath(f"path {relpath!r} resolves outside {root} (through a symlink?)")
    return target
