"""Delivering outbox rows through openlineage-python's own client and transports.

The transport is whatever openlineage-python resolves for ``OpenLineageClient()``:
``OPENLINEAGE_CONFIG`` / ``./openlineage.yml`` / ``~/.openlineage/openlineage.yml``,
``OPENLINEAGE__TRANSPORT__*`` variables, ``OPENLINEAGE_URL``, or (nothing configured) the
console. Headwater adds no transport of its own.

Delivery rules (see ``docs/lineage.md``):

* At-least-once. A row is marked delivered only after the transport returned; a crash in
  between means it is sent again. Consumers deduplicate on ``(run.runId, eventType, eventTime)``,
  which never changes because the stored event is never rewritten.
* In order per run: a run's COMPLETE is not sent while its START is still undelivered (even
  when the START has given up: ``flush --include-failed`` then sends both, in order).
* Rows are *claimed* (``claimed_until``) in a short transaction, sent with no transaction open,
  then marked in another short one, so delivery never holds a database lock across the network
  and two emitters (two processes) do not send the same row at once.
* A failed send is retried a few times at once (tenacity, exponential backoff), then the row
  waits ``backoff_base * 2**(attempts-1)`` seconds (capped) before it is due again; after
  ``max_attempts`` failed attempts it is ``failed`` (kept, never deleted: ``headwater lineage
  flush --include-failed`` retries it). The first failure stops a drain: the backend is down.
* Nothing here raises into a run: :class:`BackgroundDelivery` logs errors with their class.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Table, func, or_, select, update
from tenacity import Retrying, stop_after_attempt, wait_exponential

from headwater.catalog.models import LineageOutbox, utcnow
from headwater.lineage.facets import event_from_dict

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport import Transport

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
_T: Table = LineageOutbox.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard and how often to try."""

    #: attempts per event within one drain (tenacity), waiting ``retry_wait`` · 2ⁿ between
    attempts_per_drain: int = 2
    retry_wait: float = 0.05
    retry_wait_max: float = 0.5
    #: between drains: a failed row is due again after ``backoff_base · 2^(attempts-1)`` s
    backoff_base: float = 5.0
    backoff_max: float = 3600.0
    #: failed attempts after which a row is ``failed`` (about 3.5 hours with the defaults)
    max_attempts: int = 12
    #: how long a claim protects a row being sent from other emitters
    lease_seconds: float = 60.0
    batch_size: int = 100

    def backoff(self, attempts: int) -> float:
        return float(min(self.backoff_max, self.backoff_base * 2 ** max(0, attempts - 1)))


@dataclass
class DeliveryResult:
    """What one drain or flush did."""

    delivered: int = 0
    failed_attempts: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def merge(self, other: DeliveryResult) -> None:
        self.delivered += other.delivered
        self.failed_attempts += other.failed_attempts
        self.errors.extend(other.errors)


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()[:2000]


class Emitter:
    """Sends outbox rows with an ``OpenLineageClient``; safe to share between threads.

    ``transport`` (or a ready ``client``) overrides openlineage-python's configuration, for tests
    and for embedding; otherwise the client is created on first use, not in the constructor.
    """

    def __init__(
        self,
        *,
        transport: Transport | None = None,
        client: OpenLineageClient | None = None,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self._transport = transport
        self._client = client
        self.policy = policy or DeliveryPolicy()
        self._client_lock = threading.Lock()
        #: ``time.monotonic()`` before which after-commit delivery is not even tried: set to
        #: ``backoff_base`` seconds ahead by a failed send, cleared by a successful one (a
        #: circuit breaker, so a dead backend costs a step nothing). ``flush`` ignores it.
        self.down_until = 0.0

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self.down_until

    def _went_down(self, error: str, row_id: int) -> None:
        was_healthy = self.down_until == 0.0
        self.down_until = time.monotonic() + self.policy.backoff_base
        # one warning per outage, not one per event
        log.log(
            logging.WARNING if was_healthy else logging.DEBUG,
            "headwater lineage: delivery of outbox row %s failed (%s); events stay queued and "
            "are retried with backoff (`headwater lineage status` shows the backlog)",
            row_id,
            error,
        )

    @property
    def client(self) -> OpenLineageClient:
        with self._client_lock:
            if self._client is None:
                from openlineage.client import OpenLineageClient

                self._client = (
                    OpenLineageClient(transport=self._transport)
                    if self._transport is not None
                    else OpenLineageClient()
                )
            return self._client

    # -- sending --------------------------------------------------------------------------------
    def send(self, event: Mapping[str, Any]) -> None:
        """Send one stored event, retrying a few times; raises the last error."""
        client = self.client
        p = self.policy
        for attempt in Retrying(
            stop=stop_after_attempt(max(1, p.attempts_per_drain)),
            wait=wait_exponential(multiplier=p.retry_wait, max=p.retry_wait_max),
            reraise=True,
        ):
            with attempt:
                client.emit(event_from_dict(event))

    # -- draining the outbox --------------------------------------------------------------------
    def deliver(
        self,
        engine: Engine,
        *,
        run_ids: Collection[str] | None = None,
        ignore_backoff: bool = False,
        include_failed: bool = False,
        limit: int | None = None,
    ) -> DeliveryResult:
        """Send due rows (of ``run_ids`` only, if given) oldest first until none is left, one
        fails, or ``limit`` were sent. ``ignore_backoff`` sends pending rows that are waiting
        out a backoff too (``headwater lineage flush``)."""
        result = DeliveryResult()
        states = (PENDING, FAILED) if include_failed else (PENDING,)
        while limit is None or result.delivered < limit:
            batch = self._claim(
                engine,
                states=states,
                run_ids=run_ids,
                ignore_backoff=ignore_backoff,
                size=min(self.policy.batch_size, (limit - result.delivered) if limit else 10**9),
            )
            if not batch:
                break
            for i, (row_id, attempts, event) in enumerate(batch):
                try:
                    self.send(event)
                except Exception as exc:  # any transport error: keep the row for later
                    result.failed_attempts += 1
                    result.errors.append(describe(exc))
                    self._went_down(describe(exc), row_id)
                    self._mark_failed(engine, row_id, attempts + 1, describe(exc))
                    self._release(engine, [r[0] for r in batch[i + 1 :]])
                    return result
                self.down_until = 0.0
                self._mark_delivered(engine, row_id, attempts + 1)
                result.delivered += 1
        return result

    def _claim(
        self,
        engine: Engine,
        *,
        states: tuple[str, ...],
        run_ids: Collection[str] | None,
        ignore_backoff: bool,
        size: int,
    ) -> list[tuple[int, int, dict[str, Any]]]:
        now = utcnow()
        free = or_(_T.c.claimed_until.is_(None), _T.c.claimed_until < now)
        with engine.begin() as conn:
            q = select(_T.c.id, _T.c.run_id, _T.c.attempts, _T.c.event).where(
                _T.c.state.in_(states), free
            )
            if not ignore_backoff:
                q = q.where(_T.c.next_attempt_at <= now)
            if run_ids is not None:
                q = q.where(_T.c.run_id.in_(list(run_ids)))
            rows = conn.execute(q.order_by(_T.c.id).limit(size)).all()
            if not rows:
                return []
            # In order per run: a row waits while an older row of its run is undelivered
            # (backing off, given up, or being sent by someone else) and not ahead of it in
            # this batch.
            runs = {r.run_id for r in rows}
            older: dict[str, set[int]] = {}
            for run_id, row_id in conn.execute(
                select(_T.c.run_id, _T.c.id).where(
                    _T.c.state.in_((PENDING, FAILED)),
                    _T.c.run_id.in_(list(runs)),
                    _T.c.id <= max(r.id for r in rows),
                )
            ):
                older.setdefault(run_id, set()).add(row_id)
            lease = now + timedelta(seconds=self.policy.lease_seconds)
            taken: list[tuple[int, int, dict[str, Any]]] = []
            taken_ids: set[int] = set()
            blocked: set[str] = set()
            for r in rows:
                before = {i for i in older.get(r.run_id, ()) if i < r.id}
                if r.run_id in blocked or not before <= taken_ids:
                    blocked.add(r.run_id)
                    continue
                got = conn.execute(
                    update(_T)
                    .where(_T.c.id == r.id, _T.c.state.in_(states), free)
                    .values(claimed_until=lease)
                ).rowcount
                if got == 1:
                    taken.append((r.id, r.attempts, dict(r.event)))
                    taken_ids.add(r.id)
                else:
                    blocked.add(r.run_id)
            return taken

    def _mark_delivered(self, engine: Engine, row_id: int, attempts: int) -> None:
        with engine.begin() as conn:
            conn.execute(
                update(_T)
                .where(_T.c.id == row_id)
                .values(
                    state=DELIVERED,
                    delivered_at=utcnow(),
                    attempts=attempts,
                    claimed_until=None,
                    last_error=None,
                )
            )

    def _mark_failed(self, engine: Engine, row_id: int, attempts: int, error: str) -> None:
        now = utcnow()
        gave_up = attempts >= self.policy.max_attempts
        with engine.begin() as conn:
            conn.execute(
                update(_T)
                .where(_T.c.id == row_id)
                .values(
                    state=FAILED if gave_up else PENDING,
                    attempts=attempts,
                    next_attempt_at=now + timedelta(seconds=self.policy.backoff(attempts)),
                    claimed_until=None,
                    last_error=error,
                )
            )

    def _release(self, engine: Engine, row_ids: Iterable[int]) -> None:
        ids = list(row_ids)
        if ids:
            with engine.begin() as conn:
                conn.execute(update(_T).where(_T.c.id.in_(ids)).values(claimed_until=None))


# -- status -------------------------------------------------------------------------------------
def outbox_status(engine: Engine) -> dict[str, Any]:
    """Counts per state, the oldest undelivered event and the latest delivery error."""
    with engine.connect() as conn:
        counts: dict[str, int] = {
            state: int(n)
            for state, n in conn.execute(select(_T.c.state, func.count()).group_by(_T.c.state))
        }
        oldest = conn.execute(
            select(func.min(_T.c.created_at)).where(_T.c.state.in_((PENDING, FAILED)))
        ).scalar()
        last = conn.execute(
            select(_T.c.last_error)
            .where(_T.c.last_error.is_not(None), _T.c.state.in_((PENDING, FAILED)))
            .order_by(_T.c.id.desc())
            .limit(1)
        ).scalar()
    oldest_text = None
    if oldest is not None:
        oldest_text = oldest.isoformat() if hasattr(oldest, "isoformat") else str(oldest)
    return {
        PENDING: int(counts.get(PENDING, 0)),
        FAILED: int(counts.get(FAILED, 0)),
        DELIVERED: int(counts.get(DELIVERED, 0)),
        "oldest_undelivered": oldest_text,
        "last_error": last,
    }


def openlineage_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the user configured an openlineage-python transport (the places it looks).

    With nothing configured, openlineage-python falls back to printing every event on the
    console; Headwater then keeps the events in the outbox instead (``headwater lineage status``
    counts them, ``flush`` sends them once a transport is configured) rather than flooding the
    output of every command and step.
    """
    import os
    from pathlib import Path

    env = os.environ if environ is None else environ
    if env.get("OPENLINEAGE_DISABLED", "").lower() in ("1", "true", "yes"):
        return False
    if env.get("OPENLINEAGE_CONFIG") or env.get("OPENLINEAGE_URL"):
        return True
    if any(k.startswith("OPENLINEAGE__TRANSPORT") and v for k, v in env.items()):
        return True
    return Path("openlineage.yml").is_file() or (
        Path.home() / ".openlineage" / "openlineage.yml"
    ).is_file()


# -- after-commit delivery ----------------------------------------------------------------------
class BackgroundDelivery:
    """Delivers the events of a just-committed transaction on one daemon thread.

    The committing thread waits at most ``wait`` seconds, so a slow backend never holds a step
    up for long; while the backend is known to be down (:attr:`Emitter.healthy`) nothing is
    tried at all. What is not delivered stays in the outbox for the next drain or ``flush``.
    At interpreter exit the thread gets ``exit_wait`` more seconds to finish; a row it was
    sending when killed is sent again later.
    """

    def __init__(self, emitter: Emitter, *, wait: float = 1.0, exit_wait: float = 2.0) -> None:
        self.emitter = emitter
        self.wait = wait
        self.exit_wait = exit_wait
        self.backlog_limit = 100
        self._lock = threading.Lock()
        self._queue: list[tuple[Engine, frozenset[str], threading.Event]] = []
        self._thread: threading.Thread | None = None

    def kick(self, engine: Engine, run_ids: Iterable[str]) -> None:
        """Queue delivery of ``run_ids``' events and wait briefly for it. Never raises."""
        try:
            if not self.emitter.healthy:  # backend down: leave the rows for a later drain
                return
            done = threading.Event()
            with self._lock:
                self._queue.append((engine, frozenset(run_ids), done))
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="headwater-lineage-delivery", daemon=True
                    )
                    self._thread.start()
                _register_for_exit(self)
            done.wait(self.wait)
        except Exception as exc:  # e.g. no thread can be started
            log.warning("headwater lineage: could not start delivery (%s)", describe(exc))

    def join(self, timeout: float | None = None) -> bool:
        """Wait for queued deliveries; True when idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                thread = self._thread
            if thread is None:
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            thread.join(remaining)

    def _run(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._thread = None
                    return
            runs: dict[Engine, set[str]] = {}
            for engine, ids, _ in batch:
                runs.setdefault(engine, set()).update(ids)
            for engine, run_ids in runs.items():
                try:
                    result = self.emitter.deliver(engine, run_ids=run_ids)
                    if result.ok and result.delivered:  # the backend is up: catch up
                        self.emitter.deliver(engine, limit=self.backlog_limit)
                except Exception as exc:  # a database error, a transport that cannot be built
                    self.emitter.down_until = time.monotonic() + self.emitter.policy.backoff_base
                    log.warning(
                        "headwater lineage: delivery failed (%s); events stay queued",
                        describe(exc),
                    )
            for *_, done in batch:
                done.set()


_LIVE: weakref.WeakSet[BackgroundDelivery] = weakref.WeakSet()
_EXIT_HOOK: list[bool] = []
_EXIT_LOCK = threading.Lock()


def _register_for_exit(delivery: BackgroundDelivery) -> None:
    """One interpreter-exit hook for all deliveries, holding none of them alive."""
    with _EXIT_LOCK:
        _LIVE.add(delivery)
        if not _EXIT_HOOK:
            atexit.register(_join_all_at_exit)
            _EXIT_HOOK.append(True)


def _join_all_at_exit() -> None:
    for delivery in list(_LIVE):
        delivery.join(delivery.exit_wait)


__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "BackgroundDelivery",
    "DeliveryPolicy",
    "DeliveryResult",
    "Emitter",
    "openlineage_configured",
    "outbox_status",
]
