"""Connected components of an edge list, computed with Beam (no worker holds the graph).

Why this algorithm: ID merge turns matched pairs into people, i.e. connected components of the
match graph. Collecting all edges into one ``UnionFind`` caps the input at one worker's memory;
instead this alternates the *large-star* and *small-star* operations of Kiveris et al.,
"Connected Components in MapReduce and Beyond" (SoCC 2014) for a fixed number of rounds, each
one ``GroupByKey`` by vertex. Both preserve connectivity, and repeated they turn every component
into a star around its smallest vertex (in O(log² n) rounds; match-graph components are small,
so two or three rounds suffice in practice).

A Beam graph cannot loop until convergence, so the rounds are unrolled and the result is made
exact by a residual step: in a star forest no vertex has two or more neighbours of which one is
smaller, so every vertex that does ("violating") sends its edges to a ``UnionFind`` (a
``CombineGlobally`` — empty once converged, and only the unconverged remainder otherwise). Each
vertex is labelled with the smallest vertex of its union-find set if its provisional label
``min(itself, neighbours)`` is in one, else with that provisional label. Every edge then has
equal labels at both ends, labels never cross components, and the label is the smallest vertex
of the component (see ``docs/beam.md`` for the argument). Output: ``(vertex, label)`` for every
vertex with at least one edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.display import DisplayDataItem

from headwater.errors import InvalidArgument
from headwater.steps.linkage.clustering import UnionFind
from headwater_beam.metrics import counter

__all__ = ["ConnectedComponents"]

V = TypeVar("V", str, int)
_RESIDUAL = "residual"


def _both_ways(edge: tuple[V, V]) -> Iterator[tuple[V, V]]:
    a, b = edge
    yield a, b
    yield b, a


def _large_star(item: tuple[V, Iterable[V]]) -> Iterator[tuple[V, V]]:
    """Connect every larger neighbour of ``u`` to the smallest of ``u`` and its neighbours."""
    u, neighbours = item
    nbrs = set(neighbours)
    m = min(min(nbrs), u)
    for v in nbrs:
        if v > u:
            yield m, v


def _small_star(item: tuple[V, Iterable[V]]) -> Iterator[tuple[V, V]]:
    """Connect ``u`` and its smaller neighbours to the smallest of them."""
    u, smaller = item
    nbrs = set(smaller)
    m = min(nbrs)
    for v in nbrs:
        if v != m:
            yield m, v
    yield m, u


class _Finish(beam.DoFn):
    """Provisional label per vertex; edges of non-star vertices go to the residual output."""

    def setup(self) -> None:
        self._residual = counter("components", "residual_edges")

    def process(self, item: tuple[V, Iterable[V]]) -> Iterator[Any]:
        u, neighbours = item
        nbrs = set(neighbours)
        m = min(min(nbrs), u)
        if len(nbrs) >= 2 and m < u:  # neither a star's leaf nor its centre
            self._residual.inc(len(nbrs))
            for v in nbrs:
                yield pvalue.TaggedOutput(_RESIDUAL, (u, v))
        yield u, m


class _UnionFindFn(beam.CombineFn):  # type: ignore[misc]
    """Residual edges → ``{vertex: smallest vertex of its set}``."""

    def create_accumulator(self) -> UnionFind[Any]:
        return UnionFind()

    def add_input(self, acc: UnionFind[Any], edge: tuple[Any, Any]) -> UnionFind[Any]:
        acc.union(edge[0], edge[1])
        return acc

    def merge_accumulators(self, accs: Iterable[UnionFind[Any]]) -> UnionFind[Any]:
        it = iter(accs)
        first = next(it)
        for other in it:
            first.merge(other)
        return first

    def extract_output(self, acc: UnionFind[Any]) -> dict[Any, Any]:
        return {x: group[0] for group in acc.groups() for x in group}


def _relabel(item: tuple[V, V], canon: dict[V, V]) -> tuple[V, V]:
    vertex, provisional = item
    return vertex, canon.get(provisional, provisional)


class ConnectedComponents(beam.PTransform):  # type: ignore[misc]
    """``(a, b)`` edges → ``(vertex, smallest vertex of its component)``.

    ``rounds`` of large-star + small-star (two ``GroupByKey`` each) precede the exact residual
    step; more rounds shrink the residual, fewer save shuffles. Vertices must be mutually
    comparable (all ``str`` or all ``int``).
    """

    def __init__(self, *, rounds: int = 3, label: str | None = None) -> None:
        super().__init__(label)
        if not isinstance(rounds, int) or rounds < 0:
            raise InvalidArgument(f"rounds must be an int >= 0, not {rounds!r}")
        self.rounds = rounds

    def expand(self, edges: beam.PCollection) -> beam.PCollection:
        for i in range(self.rounds):
            edges = (
                edges
                | f"LargeStarKeys{i}" >> beam.FlatMap(_both_ways)
                | f"LargeStarGroup{i}" >> beam.GroupByKey()
                | f"LargeStar{i}" >> beam.FlatMap(_large_star)
                | f"SmallStarKeys{i}" >> beam.Map(lambda e: (max(e), min(e)))
                | f"SmallStarGroup{i}" >> beam.GroupByKey()
                | f"SmallStar{i}" >> beam.FlatMap(_small_star)
            )
        finished = (
            edges
            | "FinalKeys" >> beam.FlatMap(_both_ways)
            | "FinalGroup" >> beam.GroupByKey()
            | "Finish" >> beam.ParDo(_Finish()).with_outputs(_RESIDUAL, main="labels")
        )
        canon = finished[_RESIDUAL] | "Residual" >> beam.CombineGlobally(_UnionFindFn())
        return finished["labels"] | "Relabel" >> beam.Map(
            _relabel, canon=beam.pvalue.AsSingleton(canon))

    def display_data(self) -> dict[str, Any]:
        return {"rounds": DisplayDataItem(self.rounds, label="Large/small-star rounds"),
                "algorithm": DisplayDataItem("large-star/small-star + residual union-find",
                                             label="Algorithm")}
