"""Damage a stored object in place, whatever its layout (loose file or a range of a pack).

Local stores pack small objects by default (ADR 0005), so a test that flips a byte of "the
object" must find where its bytes are: the loose file ``objects/ab/cdef…`` if there is one,
else its range in ``packs/<pack>.pack``. Tests about the loose layout itself (truncating or
deleting one object's file) pin it with the ``loose_store`` marker instead.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from headwater.store.objects import ObjectStore


def stored_range(store: ObjectStore, digest: str) -> tuple[Path, int, int]:
    """The file holding ``digest``'s bytes, their offset in it and their length."""
    loose = Path(store.object_path(digest))
    if loose.exists():
        return loose, 0, loose.stat().st_size
    store.packs.ensure()
    at = store.packs.find(digest)
    assert at is not None, f"{digest} is neither loose nor packed"
    return Path(store.root) / "packs" / f"{at.pack}.pack", at.offset, at.length


def corrupt(store: ObjectStore, digest: str, *, at: int | None = None) -> None:
    """Flip one byte of a stored object (``at``: its offset in the object, default the middle);
    sizes stay as they were, so only reading the bytes can tell."""
    path, offset, length = stored_range(store, digest)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    with open(path, "r+b") as f:
        f.seek(offset + (length // 2 if at is None else at))
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def stored_digests(store: ObjectStore) -> set[str]:
    """Every digest the store holds, loose or packed."""
    store.packs.ensure()
    packed: set[str] = store.packs.present()
    return {o.digest for o in store.iter_objects()} | packed
