"""Clustering matched pairs into people, and giving each person a stable ID.

Why: pairwise matches are not transitive on their own; a person is a connected component of the
match graph, found with union-find (near-constant time per edge). :class:`UnionFind` can merge
another instance, so Beam can use it as the accumulator of a ``CombineFn`` over the edges.

IDs must survive new versions: a person who already had an ID keeps it when records arrive,
even if the new records change which record is the smallest. :func:`assign_stable_ids` lets
each cluster claim the previous ID most of its members had (largest claim wins, ties go to the
cluster with the smallest record id), and derives a new ID for an unclaimed cluster from a hash
of its smallest record id — deterministic, so re-running the same input gives the same IDs.

Connected components alone chain strangers through one hub record (A matches H, H matches B, so
A and B become one person even when A and B disagree on everything). :func:`consistent_clusters`
re-clusters a component greedily, strongest match first, refusing any merge that would put two
records with a *cannot-link* (a clearly negative pair score or a veto) into one person.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Generic, TypeVar

__all__ = ["UnionFind", "assign_stable_ids", "clusters_from_pairs", "consistent_clusters",
           "new_user_id"]

T = TypeVar("T", str, int)


class UnionFind(Generic[T]):
    """Disjoint sets with path halving and union by size. Pickleable, mergeable."""

    def __init__(self, items: Iterable[T] = ()) -> None:
        self.parent: dict[T, T] = {}
        self.size: dict[T, int] = {}
        for x in items:
            self.add(x)

    def add(self, x: T) -> None:
        if x not in self.parent:
            self.parent[x] = x
            self.size[x] = 1

    def find(self, x: T) -> T:
        self.add(x)
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: T, b: T) -> T:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size.pop(rb)
        return ra

    def merge(self, other: UnionFind[T]) -> UnionFind[T]:
        """Fold ``other``'s sets into this one (a CombineFn's ``merge_accumulators``)."""
        for x in other.parent:
            self.union(x, other.find(x))
        return self

    def groups(self) -> list[list[T]]:
        """The sets, each sorted, ordered by their smallest member."""
        out: dict[T, list[T]] = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return sorted((sorted(g) for g in out.values()), key=lambda g: g[0])


def clusters_from_pairs(ids: Iterable[str], pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Connected components over ``ids`` (singletons included) given matched ``pairs``."""
    uf: UnionFind[str] = UnionFind(ids)
    for a, b in pairs:
        uf.union(a, b)
    return uf.groups()


def consistent_clusters(
    members: Sequence[T], edges: Iterable[tuple[float, T, T]],
    cannot_link: Iterable[tuple[T, T]],
) -> list[list[T]]:
    """Split one component: merge along ``edges`` ``(score, a, b)`` in order of descending
    score (ties by ids), skipping a merge that would join a cannot-link pair. Pure and
    deterministic, so the table path and Beam's per-component ``FlatMap`` agree."""
    uf: UnionFind[T] = UnionFind(members)
    group: dict[T, set[T]] = {x: {x} for x in members}
    banned: dict[T, set[T]] = {x: set() for x in members}
    for a, b in cannot_link:
        banned[a].add(b)
        banned[b].add(a)
    for _, a, b in sorted(edges, key=lambda e: (-e[0], e[1], e[2])):
        ra, rb = uf.find(a), uf.find(b)
        if ra == rb or not banned[ra].isdisjoint(group[rb]):
            continue
        root = uf.union(ra, rb)
        other = rb if root == ra else ra
        group[root] |= group.pop(other)
        banned[root] |= banned.pop(other)
    return uf.groups()


def new_user_id(smallest_record_id: str, prefix: str = "u_", salt: int = 0) -> str:
    """Deterministic ID for a new person, from its smallest record id."""
    material = smallest_record_id if salt == 0 else f"{smallest_record_id}#{salt}"
    return prefix + hashlib.blake2b(material.encode(), digest_size=8).hexdigest()


def assign_stable_ids(
    clusters: Sequence[Sequence[str]],
    previous: Mapping[str, str] | None = None,
    *,
    prefix: str = "u_",
) -> tuple[dict[str, str], dict[str, int]]:
    """``(record id → user id, counts)`` for sorted clusters; see the module docstring.

    ``counts`` has ``kept`` (clusters that kept a previous ID), ``new`` and ``split`` (clusters
    whose members' previous ID went to another cluster).
    """
    prev = previous or {}
    claims: list[tuple[int, str, int, str]] = []  # (-votes, smallest member, cluster no, uid)
    for ci, members in enumerate(clusters if prev else ()):
        votes = Counter(prev[r] for r in members if r in prev)
        for uid, n in votes.items():
            claims.append((-n, members[0], ci, uid))
    claims.sort()
    owner: dict[int, str] = {}
    taken: set[str] = set()
    for _, _, ci, uid in claims:
        if ci not in owner and uid not in taken:
            owner[ci] = uid
            taken.add(uid)
    taken.update(prev.values())  # never hand an old ID to a different person
    counts = {"kept": len(owner), "new": 0, "split": 0}
    mapping: dict[str, str] = {}
    for ci, members in enumerate(clusters):
        uid_or_none = owner.get(ci)
        if uid_or_none is None:
            counts["new"] += 1
            if prev and any(r in prev for r in members):
                counts["split"] += 1
            salt = 0
            uid = new_user_id(members[0], prefix, salt)
            while uid in taken:
                salt += 1
                uid = new_user_id(members[0], prefix, salt)
            taken.add(uid)
        else:
            uid = uid_or_none
        for r in members:
            mapping[r] = uid
    return mapping, counts
